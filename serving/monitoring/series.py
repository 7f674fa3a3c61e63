"""Series rows: scored events folded into counts per time bucket and key, in memory, before one upsert.

A batch of /assess events (or a chunk of a batch import) becomes at most one row per (bucket, department,
channel, loss type, keyword category, kind), so the store is written once per batch however many events it held.
Pure functions; the store adds the rows to what is there (serving.store.series).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

# Which category names an event's series when it hits several: the most severe hit, ties in this order.
CATEGORY_ORDER = ("sensitive", "value", "company")


@dataclass(frozen=True)
class SeriesEvent:
    created: datetime          # naive UTC
    department_id: str | None
    channel: str
    loss_type: str
    keyword_category: str
    kind: str                  # post | complaint
    negative: bool
    reach: int                 # the author's followers (0 when unknown)


def bucket_start(moment: datetime, minutes: int) -> datetime:
    """The start of the bucket holding `moment` (buckets are aligned to the hour)."""
    return moment.replace(second=0, microsecond=0) - timedelta(minutes=moment.minute % minutes)


def keyword_category(hits: Iterable[dict]) -> str:
    """The category of the most severe keyword hit (ties: sensitive, value, company), or "none"."""
    ranked = [((int(hit.get("severity") or 0), -CATEGORY_ORDER.index(hit["category"])), hit["category"])
              for hit in hits if hit.get("category") in CATEGORY_ORDER]
    return max(ranked)[1] if ranked else "none"


def fold(events: Iterable[SeriesEvent], minutes: int) -> list[dict]:
    """One row per bucket and key with total, negative and negative reach."""
    rows: dict[tuple, list[int]] = {}
    for event in events:
        key = (bucket_start(event.created, minutes), event.department_id or "", event.channel, event.loss_type,
               event.keyword_category, event.kind)
        counts = rows.setdefault(key, [0, 0, 0])
        counts[0] += 1
        if event.negative:
            counts[1] += 1
            counts[2] += max(int(event.reach), 0)
    names = ("bucket_start", "department_id", "channel", "loss_type", "keyword_category", "kind")
    return [{**dict(zip(names, key, strict=True)), "total": c[0], "negative": c[1], "neg_reach": c[2]}
            for key, c in rows.items()]


def dense(frame: pd.DataFrame, start: datetime, end: datetime, minutes: int, key: str,
          column: str = "negative") -> tuple[list[str], np.ndarray]:
    """A long frame (bucket_start, key, column) as a (keys, buckets) array over [start, end), zeros filled."""
    n = int((end - start) / timedelta(minutes=minutes))
    keys = sorted(frame[key].unique()) if len(frame) else []
    out = np.zeros((len(keys), n), dtype=float)
    if keys:
        row = frame[key].map({k: i for i, k in enumerate(keys)}).to_numpy()
        col = ((frame["bucket_start"] - pd.Timestamp(start)) / pd.Timedelta(minutes=minutes)).to_numpy().astype(int)
        ok = (col >= 0) & (col < n)
        np.add.at(out, (row[ok], col[ok]), frame[column].to_numpy(dtype=float)[ok])
    return keys, out


def daily(frame: pd.DataFrame, anchor: datetime, days: int, key: str, column: str, before: bool) -> tuple[
        list[str], np.ndarray]:
    """Daily sums per key in `days` whole days before `anchor` (before=True) or from it, anchored at `anchor`
    itself so no partial day enters; returns (keys, array keys x days), oldest day first."""
    start = anchor - timedelta(days=days) if before else anchor
    keys = sorted(frame[key].unique()) if len(frame) else []
    out = np.zeros((len(keys), days))
    if keys:
        sub = frame[(frame["bucket_start"] >= pd.Timestamp(start))
                    & (frame["bucket_start"] < pd.Timestamp(start + timedelta(days=days)))]
        row = sub[key].map({k: i for i, k in enumerate(keys)}).to_numpy()
        day = ((sub["bucket_start"] - pd.Timestamp(start)) // pd.Timedelta(days=1)).to_numpy().astype(int)
        np.add.at(out, (row, day), sub[column].to_numpy(dtype=float))
    return keys, out
