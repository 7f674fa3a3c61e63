"""What people read: a warning and a team as the API returns them, masked by the caller's role.

The Engine decides what a caller may see (scope, NotFound); these functions only shape it for reading: Chinese
labels beside codes, times in ISO with their zone, owners labelled, and field-level permission carried into the
explanations too (a pay driver quotes the pay ratio, so a caller who may not read pay does not read the driver).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from features.contracts import LOSS_TYPE_ZH
from features.sanitize import visible
from serving.auth import Principal, mask_record
from serving.owners import OrgChart
from serving.policy import Policy
from serving.store import ACTION_ZH, STATUS_ZH

BAND_ZH = {"high": "高", "medium": "中", "low": "低"}
# Drivers that would reveal a masked field through their text ("薪酬/带宽比 0.82，低于部门中位数").
SENSITIVE_DRIVERS = {"pay_vs_band": "pay_vs_band", "performance_rating": "performance_rating"}
DRIVER_MASKED = "薪酬或绩效相关因素（无权查看明细）"
TEAM_EMPLOYEES_SHOWN = 50


def warning_view(record, policy: Policy, chart: OrgChart, audit: Iterable | None = None) -> dict:
    """A warning as people read it; `audit` (流程留痕) is included when one warning is read or changed."""
    decision = record.decision or {}
    view = {
        "id": record.id, "subject": record.subject, "event_kind": record.event_kind,
        "status": record.status, "status_zh": STATUS_ZH[record.status],
        "grade": record.grade, "grade_zh": decision.get("grade_zh"), "grade_level": decision.get("grade_level"),
        "label": decision.get("label"),
        "loss_type": record.loss_type, "loss_type_zh": LOSS_TYPE_ZH.get(record.loss_type, record.loss_type),
        "function": record.function, "channel": record.channel,
        "channel_zh": policy.channel_names.get(record.channel, record.channel),
        "department_id": record.department_id,
        "department_name": chart.units[record.department_id].name
        if record.department_id in chart.units else None,
        "text": visible(record.text), "reasons": list(decision.get("reasons", [])),
        "actions": [a["text"] for a in decision.get("actions", [])],
        "action_items": _action_items(decision.get("actions", []), record.owners or {}, record.created_at),
        "owners": _owner_labels(record.owners or {}), "deadline": _iso(record.deadline_at),
        "created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at),
        "events_count": record.events_count, "muted": record.muted_reason,
        "escalation_level": record.escalation_level, "escalated_to": record.escalated_to,
        "acknowledged_by": record.acknowledged_by, "assignee": record.assignee,
        "outcome": record.outcome,
        "resolution_notes": visible(record.resolution_notes) if record.resolution_notes else record.resolution_notes,
        # a trend: what rose against what baseline; a clustered complaint: the count and examples
        "monitoring": (record.risk or {}).get("monitoring"),
    }
    if audit is not None:
        view["audit"] = [
            {"seq": e.seq, "at": _iso(e.at), "actor": e.actor, "action": e.action,
             "action_zh": ACTION_ZH.get(e.action, e.action),
             "before_status": (e.before or {}).get("status"), "after_status": (e.after or {}).get("status")}
            for e in audit
        ]
    return view


def team_view(unit_id: str, unit_name: str, members: pd.DataFrame, principal: Principal, *, horizon_days: int,
              model_version: str, note: str | None = None) -> dict:
    """Headcount, expected leavers and the riskiest people of a unit's subtree (`members`); masked by role.

    Members the attrition model could not score (`note` says why: a model trained on other inputs than the
    roster's) are counted but carry no propensity; the figures are then null, never a guess."""
    scored = members[members["propensity"].notna()].sort_values("propensity", ascending=False, kind="stable")
    employees = [
        mask_record({
            "employee_id": row.employee_id, "department_id": row.department_id, "role": _plain(row.role),
            "is_key": bool(row.is_key), "propensity": round(float(row.propensity), 4), "band": row.band,
            "band_zh": BAND_ZH.get(row.band, row.band),
            "drivers": _drivers_for(principal, list(row.drivers), list(row.driver_features)),
            "pay_vs_band": _number(row.pay_vs_band, 3), "performance_rating": _number(row.performance_rating, 2),
        }, principal)
        for row in scored.head(TEAM_EMPLOYEES_SHOWN).itertuples(index=False)
    ]
    high = scored["band"] == "high"
    unscored = len(members) > 0 and scored.empty
    view = {
        "unit_id": unit_id, "unit_name": unit_name, "headcount": int(len(members)),
        "horizon_days": horizon_days,
        "expected_leavers": None if unscored else round(float(scored["propensity"].sum()), 2),
        "high_share": None if unscored else (round(float(high.mean()), 4) if len(scored) else 0.0),
        "high_risk_key_employees": None if unscored else int((high & scored["is_key"].astype(bool)).sum()),
        "top_drivers": [_drivers_for(principal, [d], [f])[0] for d, f in _top_first_drivers(scored)],
        "employees": employees, "model_version": model_version,
    }
    if note and unscored:
        view["note"] = note
    return view


def _number(value, digits: int) -> float | None:
    """A figure for JSON: NaN (not in every export) becomes null, not an invalid reply."""
    return None if value is None or pd.isna(value) else round(float(value), digits)


def _plain(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def _top_first_drivers(members: pd.DataFrame, top: int = 3) -> list[tuple[str, str]]:
    """The features most often first among the team's drivers, as (Chinese label with head count, name)."""
    from features.attrition_explain import FEATURE_ZH

    firsts = pd.Series([f[0] for f in members["driver_features"] if len(f)], dtype=object).value_counts()
    return [(f"{FEATURE_ZH.get(name, (name, ''))[0]}（{count} 人）", name)
            for name, count in firsts.head(top).items()]


def _drivers_for(principal: Principal, drivers: list[str], features: list[str]) -> list[str]:
    """Field-level permission reaches the explanations too: a pay driver quotes the pay ratio."""
    return [DRIVER_MASKED if i < len(features) and features[i] in SENSITIVE_DRIVERS
            and not principal.may_read(SENSITIVE_DRIVERS[features[i]]) else text
            for i, text in enumerate(drivers)]


def _iso(value) -> str | None:
    """Stored times are naive UTC; say so, so the page's countdown is right in any time zone."""
    if value is None:
        return None
    return pd.Timestamp(value).tz_localize("UTC").isoformat() if pd.Timestamp(value).tzinfo is None \
        else pd.Timestamp(value).isoformat()


def _action_items(actions: list[dict], owners: dict, created_at) -> list[dict]:
    """Each action with who does it (the person behind its catalog owner when the warning names one) and by when
    (counted from when the warning was opened)."""
    people = {p.get("owner"): p for group in ("functional", "co_owners") for p in owners.get(group, [])
              if p.get("owner")}
    items = []
    for action in actions:
        person = people.get(action.get("owner"))
        due = action.get("due_hours")
        items.append({
            "text": action["text"], "system": action.get("system"), "owner": action.get("owner"),
            "owner_title": action.get("owner_title"), "employee_id": person["employee_id"] if person else None,
            "owner_label": f"{person['role']} {person['employee_id']}" if person else action.get("owner_title"),
            "due_hours": due, "due_at": _iso(pd.Timestamp(created_at) + pd.Timedelta(hours=due))
            if due and created_at is not None else None,
        })
    return items


def _owner_labels(owners: dict) -> dict:
    def label(person: dict | None) -> dict | None:
        if not person:
            return None
        return {**person, "label": f"{person.get('role', '')} {person.get('employee_id', '')}".strip()}

    return {
        "functional": [label(p) for p in owners.get("functional", [])],
        "co_owners": [label(p) for p in owners.get("co_owners", [])],
        "direct": [label(p) for p in owners.get("direct", [])],
        "management": [label(p) for p in owners.get("management", [])],
        "executive": label(owners.get("executive")),
        "notes": list(owners.get("notes", [])),
    }
