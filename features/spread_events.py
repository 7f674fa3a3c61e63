"""Repost streams as arrays: timestamps in any zone, duplicates, clock skew, missing optional columns, tree depth.

Real feeds are not the synthetic company: a Weibo crawl has no reposter follower counts and no regions, some feeds
have no parent ids or texts, timestamps arrive tz-aware in any zone or naive, and the same event can be delivered
twice. `cascade_events` turns whatever a feed carries into one `Events` batch that the features read, and says
which optional inputs were there (`has_*`), so a feature that cannot be computed becomes NaN with a flag instead of
a zero that looks like data. A row that is really broken (an unparseable time, a repost well before its post, a
follower count that is not a number) is refused with `ContractError`, naming the row and the field.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contracts import ContractError, RowError

CLOCK_SKEW_S = 60.0  # reposts up to this much before their post are clock skew: clamped to delay 0 (as CED does)
MAX_REPORTED_ERRORS = 20
_NAT = np.iinfo(np.int64).min


# --------------------------------------------------------------------------------------------------- time
def utc_ns(values) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC; NaT (missing or unparseable) as the int64 minimum.

    tz-aware values in any zone are converted, naive ones are read as UTC (the project's convention), strings are
    parsed (ISO first, then any format pandas knows). Vectorised: `.to_numpy()` of a tz-aware column would box
    every value into a Timestamp (seconds per million rows)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not (isinstance(series.dtype, pd.DatetimeTZDtype) or series.dtype.kind == "M"):
        parsed = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
        retry = parsed.isna().to_numpy() & series.notna().to_numpy()
        if retry.any():  # mixed formats or Python datetimes of several zones: one by one, only those
            parsed[retry] = pd.to_datetime(series[retry], errors="coerce", utc=True, format="mixed")
        series = parsed
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert(None)
    return series.astype("datetime64[ns]").to_numpy().view(np.int64)


def local_hours(created_ns: np.ndarray, timezone: str) -> np.ndarray:
    """Hours since the epoch on the audience's wall clock (hour of day = this mod 24): the offset of `timezone`
    at each post's time (DST included), vectorised."""
    utc = pd.DatetimeIndex(created_ns.view("datetime64[ns]"), tz="UTC")
    offset = utc.tz_convert(timezone).tz_localize(None).asi8 - utc.tz_localize(None).asi8
    return (created_ns + offset) / 3.6e12


# ------------------------------------------------------------------------------------------------- events
@dataclass
class Events:
    """The events of a batch of posts, sorted by (post, delay); every array has one value per event.

    `has_*` say whether the feed carried an optional input at all; per event, NaN (or None) marks a value it did
    not carry."""

    post: np.ndarray  # int64 position of the post in `posts`
    delay: np.ndarray  # seconds since the post, ≥ 0
    followers: np.ndarray  # float, NaN = unknown
    region: np.ndarray  # object, None = unknown
    depth: np.ndarray  # float: 1 = a reaction to the post itself, 2 = to such a reaction …; NaN = unknown
    parent: np.ndarray  # int64 position of the parent event; -1 = the post; -2 = unknown
    text_len: np.ndarray  # float characters, NaN = no text column
    p_neg: np.ndarray  # float negative score of the reaction text, NaN = empty or not scored
    n_posts: int
    created: np.ndarray | None = None  # each post's created_at, UTC ns
    has_followers: bool = False
    has_regions: bool = False
    has_tree: bool = False
    has_text: bool = False

    def __len__(self) -> int:
        return len(self.post)

    def starts(self) -> np.ndarray:
        """Index of each post's first event (len n_posts + 1, CSR style)."""
        return np.searchsorted(self.post, np.arange(self.n_posts + 1))


def _empty(n_posts: int, created: np.ndarray) -> Events:
    none = np.zeros(0)
    return Events(np.zeros(0, np.int64), none, none, np.zeros(0, dtype=object), none, np.zeros(0, np.int64), none,
                  none, n_posts, created)


def post_times(posts: pd.DataFrame) -> np.ndarray:
    """created_at as UTC ns; ContractError naming the rows whose time is missing or unparseable, or whose id
    repeats (a forecast per post needs one post per id)."""
    created = utc_ns(posts["created_at"])
    errors = [RowError(int(row), "created_at", f"无法解析的时间 {posts['created_at'].iloc[row]!r}")
              for row in np.flatnonzero(created == _NAT)[:MAX_REPORTED_ERRORS]]
    ids = posts["post_id"].to_numpy(dtype=object)
    repeated = pd.Index(ids).duplicated()
    errors += [RowError(int(row), "post_id", f"重复的帖子 ID {ids[row]!r}")
               for row in np.flatnonzero(repeated)[:MAX_REPORTED_ERRORS]]
    if errors:
        raise ContractError("Post", errors)
    return created


def _optional_numbers(reposts: pd.DataFrame, rows: np.ndarray, column: str) -> np.ndarray:
    """A numeric optional column as float (NaN where empty); a value that is there but not a non-negative number
    is a broken row."""
    if column not in reposts:
        return np.full(len(rows), np.nan)
    raw = reposts[column].iloc[rows]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = (np.isnan(values) & raw.notna().to_numpy()) | (values < 0)
    if bad.any():
        raise ContractError("Repost", [RowError(int(rows[i]), column, f"应为非负数字, 实为 {raw.iloc[i]!r}")
                                       for i in np.flatnonzero(bad)[:MAX_REPORTED_ERRORS]])
    return values


def cascade_events(posts: pd.DataFrame, reposts: pd.DataFrame | None, *, tree: bool = True, text: bool = True
                   ) -> Events:
    """The events of `posts` (row order kept) in a repost stream; reposts of other posts are left out.

    reposts: post_id, timestamp; optional repost_id (an event delivered twice counts once), parent_id (tree
    depth), user_followers, region, text and p_neg (a score of the text, computed once per event upstream).
    A repost up to CLOCK_SKEW_S before its post is clamped to delay 0; earlier, or with no parseable time, is the
    caller's data error: ContractError names the row (position in `reposts`) and the field. tree / text: False
    skips the parent and text columns (a model that does not read them need not pay for them: they are the
    costliest part of a batch).
    """
    n = len(posts)
    created = post_times(posts)
    if reposts is None or len(reposts) == 0:
        return _empty(n, created)
    ids = pd.Index(posts["post_id"].to_numpy(dtype=object))
    # factorize the stream's ids first (Arrow strings stay Arrow), then look up only the distinct ones
    codes, distinct = pd.factorize(reposts["post_id"])
    post = np.append(ids.get_indexer(np.asarray(distinct, dtype=object)), -1)[codes]
    keep = post >= 0
    if "repost_id" in reposts:  # the same event delivered twice (493 times in the CED crawl) counts once
        event_id, _ = pd.factorize(reposts["repost_id"])
        repeated = pd.Index(post.astype(np.int64) * (int(event_id.max()) + 2) + event_id).duplicated()
        keep &= ~repeated | (event_id < 0)
    rows = np.flatnonzero(keep)
    if not len(rows):
        return _empty(n, created)
    post = post[rows].astype(np.int64)
    stamps = utc_ns(reposts["timestamp"].iloc[rows])
    unparsed = stamps == _NAT
    delay = np.where(unparsed, 0, stamps - created[post]) / 1e9
    early = delay < -CLOCK_SKEW_S
    errors = [RowError(int(rows[i]), "timestamp", f"无法解析的时间 {reposts['timestamp'].iloc[rows[i]]!r}")
              for i in np.flatnonzero(unparsed)[:MAX_REPORTED_ERRORS]]
    errors += [RowError(int(rows[i]), "timestamp", f"转发时间 {reposts['timestamp'].iloc[rows[i]]} 早于原帖发布 "
                                                   f"{-delay[i]:.0f} 秒")
               for i in np.flatnonzero(early)[:MAX_REPORTED_ERRORS]]
    if errors:
        raise ContractError("Repost", errors)
    delay = np.maximum(delay, 0.0)
    order = np.lexsort((delay, post))  # stable: equal times keep their input order
    rows, post, delay = rows[order], post[order], delay[order]

    followers = _optional_numbers(reposts, rows, "user_followers")
    region = (reposts["region"].iloc[rows].to_numpy(dtype=object) if "region" in reposts
              else np.full(len(rows), None, dtype=object))
    region = np.where(pd.isna(region), None, region)
    has_text = text and "text" in reposts
    text_len = (reposts["text"].iloc[rows].fillna("").astype(str).str.strip().str.len().to_numpy(dtype=float)
                if has_text else np.full(len(rows), np.nan))
    p_neg = _optional_numbers(reposts, rows, "p_neg") if text else np.full(len(rows), np.nan)
    p_neg = np.where(text_len > 0, p_neg, np.nan) if has_text else p_neg
    has_tree = tree and "parent_id" in reposts and "repost_id" in reposts
    parent = _parents(reposts, rows, post) if has_tree else np.full(len(rows), -2, np.int64)
    return Events(post, delay, followers, region, _depths(parent), parent, text_len, p_neg, n, created,
                  has_followers=bool(np.isfinite(followers).any()),
                  has_regions=bool(pd.notna(region).any()), has_tree=has_tree,
                  has_text=has_text and bool(np.isfinite(p_neg).any()))


def _parents(reposts: pd.DataFrame, rows: np.ndarray, post: np.ndarray) -> np.ndarray:
    """Position of each event's parent among the events (-1: the post itself; -2: a parent not in the stream)."""
    own, wanted = (reposts[c].iloc[rows].astype("string").reset_index(drop=True) for c in ("repost_id", "parent_id"))
    codes, _ = pd.factorize(pd.concat([own, wanted], ignore_index=True))  # Arrow strings: 4x faster than objects
    m, width = len(rows), int(codes.max()) + 2
    own_key, wanted_key = post * width + codes[:m], post * width + codes[m:]  # ids are unique within a post
    sorter = np.argsort(own_key, kind="stable")
    at = np.minimum(np.searchsorted(own_key, wanted_key, sorter=sorter), m - 1)
    found = (codes[m:] >= 0) & (own_key[sorter[at]] == wanted_key)
    return np.where(codes[m:] < 0, -1, np.where(found, sorter[at], -2)).astype(np.int64)


def _depths(parent: np.ndarray) -> np.ndarray:
    """Depth by pointer chasing, one level per step (real cascades are < 60 deep); NaN where the chain reaches an
    unknown parent or never ends (a cycle)."""
    depth = np.ones(len(parent))
    hop = parent.copy()
    for _ in range(256):
        live = hop >= 0
        if not live.any():
            break
        depth[live] += 1.0
        hop[live] = parent[hop[live]]
    depth[hop != -1] = np.nan
    return depth


# ------------------------------------------------------------------------------------------------ outcome
def cascade_outcomes(posts: pd.DataFrame, events: Events, horizon_hours: float, threshold: int) -> pd.DataFrame:
    """Truth per post at the horizon: final count, reach (author + reposters' followers; NaN where a follower
    count is missing), provinces reached (NaN when the feed has no regions), and the minute the count passed
    `threshold` (NaN if it did not)."""
    n = len(posts)
    inside = events.delay <= horizon_hours * 3600.0
    post = events.post[inside]
    author = pd.to_numeric(posts["author_followers"], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
        if "author_followers" in posts else np.full(n, np.nan)
    reach = author + np.bincount(post, events.followers[inside], minlength=n)  # NaN propagates: unknown, not 0
    return pd.DataFrame({
        "post_id": posts["post_id"].to_numpy(),
        "final": np.bincount(post, minlength=n).astype(float),
        "reach": reach,
        "regions": regions_reached(post, events.region[inside], n) if events.has_regions else np.full(n, np.nan),
        "time_to_threshold_min": threshold_crossing(events, threshold, horizon_hours * 60.0),
    })


def regions_reached(post: np.ndarray, region: np.ndarray, n_posts: int) -> np.ndarray:
    """Distinct known regions among each post's events."""
    known = pd.notna(region)
    if not known.any():
        return np.zeros(n_posts)
    codes, uniques = pd.factorize(region[known])
    pairs = np.unique(post[known].astype(np.int64) * len(uniques) + codes)
    return np.bincount(pairs // len(uniques), minlength=n_posts).astype(float)


def threshold_crossing(events: Events, threshold: int, within_minutes: float | np.ndarray) -> np.ndarray:
    """Minute each post's count passed `threshold` within the first `within_minutes` (one value, or one per post),
    NaN where it did not."""
    starts = events.starts()
    nth = starts[:-1] + threshold - 1
    reached = nth < starts[1:]
    minutes = np.full(events.n_posts, np.nan)
    minutes[reached] = events.delay[nth[reached]] / 60.0
    return np.where(minutes <= within_minutes, minutes, np.nan)
