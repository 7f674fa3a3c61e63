"""The review page's dashboard data: how risk moves, for the units the caller may see and nothing else.

Four charts, each cut to the caller's scope before anything is summed (a manager's figures come from their
subtree's rows only, so no total leaks what lies outside it): warnings by grade per day; negative volume per
department per hour with the trend warnings (spikes) marked; attrition risk over the org chart (a treemap: area
= headcount, colour = mean propensity); and the before/after chart of each resolved warning (from /effects).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from serving.monitoring.series import dense
from serving.policy import GRADES
from serving.store.schema import _utc

MAX_DEPARTMENTS = 8      # lines on the volume chart (the busiest in scope)
TREE_DEPTH = 3           # levels of the org chart below the scope's root on the heatmap


def _iso(moment) -> str:
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).isoformat()


class Dashboard:
    def __init__(self, monitor, roster: pd.DataFrame | None = None):
        self.monitor, self.roster = monitor, roster

    def display_unit(self, unit_id: str | None, units: set[str] | None, root: str | None) -> str | None:
        """The department a row is shown under: its level-2 department when the caller sees all of it, else the
        caller's own unit (a team manager sees their team's rows under their team)."""
        if not unit_id:
            return None if units is not None else ""
        if units is not None and unit_id not in units:
            return None
        department = self.monitor.rollup(unit_id)
        return department if units is None or department in units else root

    def data(self, units: set[str] | None, root: str | None, start: datetime, end: datetime,
             records: list) -> dict:
        start, end = _utc(start), _utc(end)
        return {"from": _iso(start), "to": _iso(end), "grades": self._grades(records, start, end),
                "volume": self._volume(units, root, start, end, records), "heatmap": self._heatmap(units, root)}

    def _grades(self, records: list, start: datetime, end: datetime) -> dict:
        days = pd.date_range(start.date(), end.date(), freq="D")
        counts = {g: np.zeros(len(days), dtype=int) for g in GRADES}
        for r in records:
            if start <= r.created_at < end:
                counts[r.grade][(pd.Timestamp(r.created_at.date()) - days[0]).days] += 1
        return {"days": [d.date().isoformat() for d in days], "series": {g: c.tolist() for g, c in counts.items()}}

    def _volume(self, units: set[str] | None, root: str | None, start: datetime, end: datetime, records: list) -> dict:
        store = self.monitor.store
        frame = store.series_frame(start, end, departments=units, by=("department_id",))
        frame["department_id"] = [self.display_unit(u, units, root) for u in frame["department_id"]]
        frame = frame[frame["department_id"].notna() & (frame["department_id"] != "")]
        hourly = frame.assign(bucket_start=frame["bucket_start"].dt.floor("h"))
        hour_start = pd.Timestamp(start).floor("h").to_pydatetime()
        keys, negative = dense(hourly, hour_start, end, 60, "department_id")
        order = np.argsort(-negative.sum(axis=1), kind="stable")[:MAX_DEPARTMENTS] if len(keys) else []
        spikes = defaultdict(list)
        for r in records:
            if r.event_kind == "trend" and start <= r.created_at < end:
                monitoring = (r.risk or {}).get("monitoring") or {}
                spikes[r.department_id].append({"at": _iso(r.created_at), "warning_id": r.id, "grade": r.grade,
                                                "ratio": monitoring.get("ratio"), "status": r.status})
        chart = self.monitor.chart
        times = [_iso(hour_start + timedelta(hours=i)) for i in range(negative.shape[1])] if len(keys) else []
        return {"times": times, "departments": [
            {"id": keys[i], "name": chart.units[keys[i]].name if keys[i] in chart.units else keys[i],
             "negative": negative[i].astype(int).tolist(), "spikes": spikes.get(keys[i], [])} for i in order]}

    def _heatmap(self, units: set[str] | None, root: str | None) -> dict | None:
        roster, chart = self.roster, self.monitor.chart
        if roster is None or not len(roster):
            return None
        top = root if root in chart.units else next(u for u, unit in chart.units.items() if unit.parent_id is None)
        members = roster[roster["department_id"].isin(units)] if units is not None else roster
        own = members.groupby("department_id").agg(n=("propensity", "size"), risk=("propensity", "sum"),
                                                   high=("band", lambda b: int((b == "high").sum())))
        children = defaultdict(list)
        for unit in chart.units.values():
            if unit.parent_id is not None:
                children[unit.parent_id].append(unit.unit_id)

        def node(unit_id: str, depth: int) -> dict:
            kids = [node(k, depth + 1) for k in sorted(children[unit_id])]
            n = int(own["n"].get(unit_id, 0)) + sum(k["headcount"] for k in kids)
            risk = float(own["risk"].get(unit_id, 0.0)) + sum(k["_risk"] for k in kids)
            high = int(own["high"].get(unit_id, 0)) + sum(k["high"] for k in kids)
            out = {"id": unit_id, "name": chart.units[unit_id].name, "headcount": n, "high": high, "_risk": risk,
                   "risk": round(risk / n, 4) if n else None, "children": kids}
            return out

        tree = node(top, 0)

        def prune(item: dict, depth: int) -> dict:
            kept = [prune(k, depth + 1) for k in item["children"] if k["headcount"] > 0] if depth < TREE_DEPTH else []
            return {**{k: v for k, v in item.items() if k not in ("_risk", "children")}, "children": kept}

        return prune(tree, 0)
