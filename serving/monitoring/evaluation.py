"""Effect evaluation of resolved warnings (效果评估) and the quarterly report per department.

For each resolved warning of a department: its daily negative volume, negative share and negative reach in the
`window_days` before the warning opened and after it was resolved, against matched control departments (none
with a warning resolved in that span), by difference-in-differences (serving.monitoring.effects). Culture
warnings add the team's leavers (rates per 100 people and 30 days, the same contrast) and its attrition risk
today beside the company's: the roster is scored once at start, so there is no history of risk to difference.

The quarterly report sums a department's quarter: warnings by grade and loss type, how fast they were handled,
true and false alarms, spikes, negative volume against the previous quarter, and the measured effects.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.contracts import LOSS_TYPE_ZH
from serving.monitoring.effects import MIN_DAYS, did_rare, evaluate_counts, match_controls
from serving.monitoring.series import daily
from serving.store import WarningRecord
from serving.store.schema import _utc

STATUS_ZH = {"estimated": "已评估", "pending": "整改后数据不足，待评估", "insufficient_data": "数据不足，无法评估"}


def describe(effect: dict | None, what: str = "负面声量") -> str:
    """One sentence for people: direction, size, interval, whether it is clear."""
    if not effect:
        return f"{what}：数据不足"
    if effect["scale"] == "difference":
        size = f"{effect['estimate'] * 100:+.1f} 个百分点（{effect['level']:.0%} 区间 {effect['low'] * 100:+.1f} ~ " \
               f"{effect['high'] * 100:+.1f}）"
    else:
        size = f"{effect['estimate']:+.0%}（{effect['level']:.0%} 区间 {effect['low']:+.0%} ~ {effect['high']:+.0%}）"
    verdict = "改善显著" if effect["high"] < 0 else "显著恶化" if effect["low"] > 0 else "无显著变化"
    return f"整改后{what}相对对照组变化 {size}，{verdict}"


class Evaluator:
    """Effects of resolved warnings, read from the monitor's store and org chart."""

    def __init__(self, monitor, people: pd.DataFrame | None = None, roster: pd.DataFrame | None = None):
        self.monitor = monitor
        self.people = people  # employee_id, department_id, hire_date, leave_date (for leavers)
        self.roster = roster  # current employees with propensity (attrition risk now)

    @property
    def window(self) -> int:
        return self.monitor.config.effects.window_days

    def effects(self, records: list[WarningRecord], resolved: list[WarningRecord], now: datetime | None = None
                ) -> list[dict]:
        """One entry per resolved warning in `records`; `resolved` (all resolved warnings) picks the controls."""
        now = _utc(now)
        return [self.effect(r, resolved, now) for r in records if r.status == "resolved" and r.resolved_at]

    def effect(self, record: WarningRecord, resolved: list[WarningRecord], now: datetime) -> dict:
        monitor, days, config = self.monitor, self.window, self.monitor.config.effects
        department = monitor.rollup(record.department_id)
        created, done = record.created_at, record.resolved_at
        pre_start, post_end = created - timedelta(days=days), done + timedelta(days=days)
        post_days = min(days, int((now - done) / timedelta(days=1)))
        out = {"warning_id": record.id, "department_id": department, "grade": record.grade,
               "department_name": monitor.chart.units[department].name if department in monitor.chart.units else None,
               "loss_type": record.loss_type, "loss_type_zh": LOSS_TYPE_ZH.get(record.loss_type, record.loss_type),
               "event_kind": record.event_kind, "outcome": record.outcome, "created_at": _iso(created),
               "resolved_at": _iso(done), "pre": [_iso(pre_start), _iso(created)],
               "post": [_iso(done), _iso(done + timedelta(days=max(post_days, 0)))], "metrics": {}, "controls": [],
               "chart": None}
        if not department or post_days < MIN_DAYS:
            return self._status(out, "pending" if department else "insufficient_data")
        busy = {monitor.rollup(r.department_id) for r in resolved
                if r.id != record.id and r.resolved_at and pre_start <= r.resolved_at <= post_end}
        before = monitor.store.series_frame(pre_start, created, by=("department_id",))
        after = monitor.store.series_frame(done, done + timedelta(days=post_days), by=("department_id",))
        arrays = {}
        for name, column in (("total", "total"), ("negative", "negative"), ("reach", "neg_reach")):
            pre = self._daily(before, created, days, column, True)
            post = self._daily(after, done, post_days, column, False)
            arrays[name] = {k: np.concatenate([pre.get(k, np.zeros(days)), post.get(k, np.zeros(post_days))])
                            for k in set(pre) | set(post)}
        treated_total = arrays["negative"].get(department)
        candidates = sorted(k for k in arrays["negative"] if k and k != department and k not in busy
                            and k in monitor.chart.units and monitor.chart.units[k].level == 2)
        if treated_total is None or treated_total[:days].sum() == 0 or len(candidates) < 2:
            return self._status(out, "insufficient_data")
        treated = {n: arrays[n].get(department, np.zeros(days + post_days)) for n in arrays}
        controls = {n: np.array([arrays[n].get(k, np.zeros(days + post_days)) for k in candidates]) for n in arrays}
        pre, post = slice(0, days), slice(days, days + post_days)
        metrics = evaluate_counts(treated, controls, pre, post, k=config.controls, level=config.level)
        out["metrics"] = {name: effect.as_dict() if effect else None for name, effect in metrics.items()}
        if record.loss_type == "culture":
            out["metrics"].update(self._people(department, created, done, post_days, config.level))
        chosen = match_controls(treated["negative"][pre], controls["negative"][:, pre], config.controls)
        out["controls"] = [candidates[i] for i in chosen]
        control = controls["negative"][chosen].sum(axis=0)
        scale = treated["negative"][pre].mean() / max(control[pre].mean(), 1e-9)
        out["chart"] = {"pre_days": [_iso(pre_start + timedelta(days=i)) for i in range(days)],
                        "post_days": [_iso(done + timedelta(days=i)) for i in range(post_days)],
                        "treated": treated["negative"].round(1).tolist(),
                        "control": (control * scale).round(1).tolist()}
        return self._status(out, "estimated")

    def _daily(self, frame: pd.DataFrame, anchor: datetime, days: int, column: str, before: bool) -> dict:
        if frame.empty or days <= 0:
            return {}
        frame = frame.assign(department_id=frame["department_id"].map(self.monitor.rollup))
        keys, values = daily(frame, anchor, days, "department_id", column, before)
        return dict(zip(keys, values, strict=True))

    def _people(self, department: str, created: datetime, done: datetime, post_days: int, level: float) -> dict:
        """Leavers before/after against the rest of the company, and attrition risk today (culture warnings)."""
        out: dict = {"leavers": None, "attrition_risk_now": None}
        if self.people is not None and len(self.people):
            people = self.people.assign(department_id=self.people["department_id"].map(self.monitor.rollup))
            mine = people["department_id"] == department
            windows = ((created - timedelta(days=self.window), created), (done, done + timedelta(days=post_days)))
            counts, exposure = [], []
            for group in (mine, ~mine):
                for start, end in windows:
                    leave = pd.to_datetime(people.loc[group, "leave_date"])
                    hire = pd.to_datetime(people.loc[group, "hire_date"])
                    counts.append(int(((leave >= start) & (leave < end)).sum()))
                    first = hire.fillna(pd.Timestamp(start)).clip(lower=pd.Timestamp(start))  # max(hire, start)
                    last = leave.fillna(pd.Timestamp(end)).clip(upper=pd.Timestamp(end))      # min(leave, end)
                    exposure.append(float(((last - first) / pd.Timedelta(days=1)).clip(lower=0).sum()))
            if min(exposure) > 0:
                effect = did_rare("leavers", (counts[0], counts[1]), (counts[2], counts[3]), tuple(exposure),
                                  level=level)
                out["leavers"] = effect.as_dict() if effect else None
        if self.roster is not None and len(self.roster):
            mine = self.roster["department_id"].map(self.monitor.rollup) == department
            out["attrition_risk_now"] = {"team": round(float(self.roster.loc[mine, "propensity"].mean()), 4)
                                         if mine.any() else None,
                                         "company": round(float(self.roster["propensity"].mean()), 4),
                                         "note": "风险分每次启动时按当前名册评分，暂无历史，无法做前后对比"}
        return out

    @staticmethod
    def _status(out: dict, status: str) -> dict:
        out["status"], out["status_zh"] = status, STATUS_ZH[status]
        metrics = out["metrics"]
        out["summary_zh"] = [describe(metrics.get("negative"), "负面声量"),
                             describe(metrics.get("negative_share"), "负面占比"),
                             describe(metrics.get("reach"), "负面内容触达")] if status == "estimated" else \
            [STATUS_ZH[status]]
        if metrics.get("leavers"):
            out["summary_zh"].append(describe(metrics["leavers"], "离职率"))
        return out

    # ---- the quarterly report -------------------------------------------------------------------------------
    def quarterly(self, department: str, year: int, quarter: int, records: list[WarningRecord],
                  resolved: list[WarningRecord], now: datetime | None = None) -> dict:
        """A department's quarter: `records` are the warnings of its subtree."""
        now = _utc(now)
        start = datetime(year, 3 * quarter - 2, 1)
        end = datetime(year + (quarter == 4), 1 if quarter == 4 else 3 * quarter + 1, 1)
        previous = datetime(year - (quarter == 1), 10 if quarter == 1 else 3 * quarter - 5, 1)
        inside = [r for r in records if start <= r.created_at < end]
        closed = [r for r in inside if r.status == "resolved"]
        units = self.monitor._units_of(department)
        volume = self.monitor.store.series_frame(previous, end, departments=units, by=("department_id",))
        this = volume[volume["bucket_start"] >= pd.Timestamp(start)]
        last = volume[volume["bucket_start"] < pd.Timestamp(start)]
        effects = self.effects([r for r in records if r.resolved_at and start <= r.resolved_at < end], resolved, now)
        estimated = [e for e in effects if e["status"] == "estimated" and e["metrics"].get("negative")]
        negative = [e["metrics"]["negative"] for e in estimated]

        def hours(a, b):
            values = [(getattr(r, b) - getattr(r, a)).total_seconds() / 3600 for r in inside
                      if getattr(r, a) and getattr(r, b)]
            return round(float(np.median(values)), 1) if values else None

        unit = self.monitor.chart.units.get(department)
        report = {
            "department_id": department, "department_name": unit.name if unit else department,
            "quarter": f"{year}Q{quarter}", "period": [_iso(start), _iso(end)],
            "warnings": {"total": len(inside), "by_grade": dict(Counter(r.grade for r in inside)),
                         "by_loss_type": dict(Counter(r.loss_type for r in inside)),
                         "by_kind": dict(Counter(r.event_kind for r in inside)), "resolved": len(closed),
                         "true_alarm": sum(r.outcome == "true_alarm" for r in closed),
                         "false_alarm": sum(r.outcome == "false_alarm" for r in closed),
                         "escalated": sum(r.escalation_level > 0 for r in inside),
                         "median_hours_to_ack": hours("created_at", "acknowledged_at"),
                         "median_hours_to_resolve": hours("created_at", "resolved_at")},
            "spikes": sum(r.event_kind == "trend" for r in inside),
            "volume": {"total": int(this["total"].sum()), "negative": int(this["negative"].sum()),
                       "negative_share": round(float(this["negative"].sum() / max(this["total"].sum(), 1)), 4),
                       "previous_negative": int(last["negative"].sum()),
                       "change": round(float(this["negative"].sum() / last["negative"].sum() - 1), 4)
                       if last["negative"].sum() else None},
            "effects": {"resolved": len(effects), "estimated": len(estimated),
                        "improved": sum(e["high"] < 0 for e in negative), "worse": sum(e["low"] > 0 for e in negative),
                        "no_change": sum(e["low"] <= 0 <= e["high"] for e in negative),
                        "median_change": round(float(np.median([e["estimate"] for e in negative])), 4)
                        if negative else None},
            "items": effects,
        }
        report["summary_zh"] = _report_lines(report)
        return report


def _report_lines(report: dict) -> list[str]:
    w, v, e = report["warnings"], report["volume"], report["effects"]
    grades = "、".join(f"{g} {n}" for g, n in sorted(w["by_grade"].items())) or "无"
    lines = [f"{report['department_name']} {report['quarter']}：预警 {w['total']} 条（{grades}），"
             f"已关闭 {w['resolved']} 条，"
             f"其中属实 {w['true_alarm']}、误报 {w['false_alarm']}；声量异常 {report['spikes']} 次",
             f"负面声量 {v['negative']:,} 条，负面占比 {v['negative_share']:.0%}" +
             (f"，较上季度 {v['change']:+.0%}" if v["change"] is not None else "")]
    if w["median_hours_to_resolve"] is not None:
        lines.append(f"处理时效：确认中位 {w['median_hours_to_ack']} 小时，"
                     f"关闭中位 {w['median_hours_to_resolve']} 小时")
    lines.append(f"整改效果：已评估 {e['estimated']} 项，显著改善 {e['improved']} 项、无显著变化 {e['no_change']} 项、"
                 f"显著恶化 {e['worse']} 项")
    return lines


def _iso(value) -> str | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).isoformat()

