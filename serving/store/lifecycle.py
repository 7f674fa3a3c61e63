"""Lifecycle: what people and the clock do to a warning after it is filed.

open → acknowledged → assigned → resolved: assigning an open warning acknowledges it on the way, resolving needs
someone to have acknowledged it first, resolved is final. The clock escalates a warning nobody acknowledged by its
deadline to the next person up the chain, and reminds the owners of one still open after its re-notify interval.
Every change is one audited transition; an illegal one raises IllegalTransition and writes nothing.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from serving.store.schema import (
    CORRECTABLE_LABELS,
    OUTCOMES,
    STATUS_ZH,
    SYSTEM_ACTOR,
    Escalation,
    IllegalTransition,
    StoreError,
    WarningRecord,
    _audited,
    _require_actor,
    _utc,
    warnings_table,
)


class Lifecycle:
    """A mixin of WarningStore: it expects `self.policy`, `_row`, `_writing` (AuditLog), `_dispatch`
    (WebhookDispatch) and `refresh_mutes` (Intake: resolving a warning ends the muting it caused)."""

    def _transition(self, warning_id: int, action: str, actor: str, now: datetime, change) -> WarningRecord:
        """Apply `change(before) -> new values` (which raises IllegalTransition to refuse) and audit it."""
        with self._writing() as chain:
            before = self._row(chain.conn, warning_id)
            values = change(before)
            chain.conn.execute(sa.update(warnings_table).where(warnings_table.c.id == warning_id)
                               .values(updated_at=now, **values))
            after = self._row(chain.conn, warning_id)
            chain.append("warning", warning_id, action, actor, now, _audited(before), _audited(after))
        return WarningRecord(**after)

    def acknowledge(self, warning_id: int, actor: str, *, now: datetime | None = None) -> WarningRecord:
        now = _utc(now)
        _require_actor(actor)

        def change(row):
            if row["status"] != "open":
                raise IllegalTransition(f"预警 #{warning_id} 当前状态为「{STATUS_ZH[row['status']]}」"
                                        f"（{row['acknowledged_by'] or '—'} 已确认），不能重复确认")
            return {"status": "acknowledged", "acknowledged_at": now, "acknowledged_by": actor}

        record = self._transition(warning_id, "acknowledge", actor, now, change)
        self._dispatch("acknowledged", record, now)
        return record

    def assign(self, warning_id: int, actor: str, assignee: str, *, now: datetime | None = None) -> WarningRecord:
        """Assign (or reassign) the response; assigning an open warning also records its acknowledgement."""
        now = _utc(now)
        _require_actor(actor)
        if not isinstance(assignee, str) or not assignee.strip():
            raise StoreError("assignee: 指派对象不能为空")

        def change(row):
            if row["status"] == "resolved":
                raise IllegalTransition(f"预警 #{warning_id} 已关闭，不能再指派")
            values = {"status": "assigned", "assignee": assignee, "assigned_at": now}
            if row["acknowledged_at"] is None:
                values.update(acknowledged_at=now, acknowledged_by=actor)
            return values

        record = self._transition(warning_id, "assign", actor, now, change)
        self._dispatch("assigned", record, now)
        return record

    def resolve(self, warning_id: int, actor: str, outcome: str, actual_spread: int | None = None, notes: str = "",
                corrected_labels: dict | None = None, *, now: datetime | None = None) -> WarningRecord:
        """Close with the outcome (true/false alarm), the spread actually seen and what was done and achieved."""
        now = _utc(now)
        _require_actor(actor)
        if outcome not in OUTCOMES:
            raise StoreError(f"outcome: 取值 {outcome!r} 不在允许范围 {list(OUTCOMES)}")
        if actual_spread is not None and (isinstance(actual_spread, bool) or not isinstance(actual_spread, int)
                                          or actual_spread < 0):
            raise StoreError(f"actual_spread: 应为非负整数或空, 实为 {actual_spread!r}")
        if not isinstance(notes, str):
            raise StoreError("notes: 应为文本")
        labels = _check_labels(corrected_labels)

        def change(row):
            if row["status"] == "resolved":
                raise IllegalTransition(f"预警 #{warning_id} 已于 {row['resolved_at']:%Y-%m-%d %H:%M} 关闭，"
                                        "不能重复关闭")
            if row["status"] == "open":
                raise IllegalTransition(f"预警 #{warning_id} 尚未确认，不能直接关闭；请先确认或指派负责人")
            return {"status": "resolved", "resolved_at": now, "resolved_by": actor, "outcome": outcome,
                    "actual_spread": actual_spread, "resolution_notes": notes, "corrected_labels": labels}

        record = self._transition(warning_id, "resolve", actor, now, change)
        self._dispatch("resolved", record, now)
        table = warnings_table  # the warnings it inhibited lose their cause (Intake.refresh_mutes)
        self.refresh_mutes(now, where=(table.c.muted_reason == "inhibited") & (table.c.muted_by == warning_id))
        return record

    def escalate_overdue(self, now: datetime | None = None) -> list[Escalation]:
        """Tell the next person up the chain about every unmuted warning nobody acknowledged by its deadline."""
        now = _utc(now)
        table = warnings_table
        escalations, records = [], []
        with self._writing() as chain:
            overdue = chain.conn.execute(
                sa.select(table).where(table.c.status == "open", table.c.muted_reason.is_(None),
                                       table.c.deadline_at <= now).order_by(table.c.id)).mappings().all()
            for row in map(dict, overdue):
                ladder = (row["owners"] or {}).get("escalation", [])
                level = row["escalation_level"] + 1
                person = ladder[min(level, len(ladder)) - 1] if ladder else None
                if person is None:
                    note = "组织架构中没有可升级的负责人"
                elif level > len(ladder):
                    note = f"已升级至最高层级，再次提醒 {person['employee_id']}（{person['role']}）"
                else:
                    note = f"超时未确认，升级至 {person['employee_id']}（{person['role']}）"
                values = {"escalation_level": level, "escalated_to": person["employee_id"] if person else None,
                          "deadline_at": now + timedelta(hours=self.policy.grades[row["grade"]].deadline_hours),
                          "updated_at": now}
                chain.conn.execute(sa.update(table).where(table.c.id == row["id"]).values(**values))
                after = self._row(chain.conn, row["id"])
                chain.append("warning", row["id"], "escalate", SYSTEM_ACTOR, now, _audited(row), _audited(after))
                escalations.append(Escalation(row["id"], level, person, note))
                records.append(WarningRecord(**after))
        for record in records:
            self._dispatch("escalated", record, now)
        return escalations

    def renotify_due(self, now: datetime | None = None) -> list[WarningRecord]:
        """Remind the owners of every unacknowledged, unmuted warning whose grade's re-notify interval has passed
        since they were last told, even when no new event arrives (the service calls it on its timer). Each
        reminder is an audit entry, so the trail shows who was reminded when."""
        now = _utc(now)
        table, reminded = warnings_table, []
        with self._writing() as chain:
            rows = chain.conn.execute(
                sa.select(table).where(table.c.status == "open", table.c.muted_reason.is_(None),
                                       table.c.last_notified_at.is_not(None)).order_by(table.c.id)).mappings().all()
            for row in map(dict, rows):
                interval = timedelta(minutes=self.policy.grades[row["grade"]].renotify_minutes)
                if now - row["last_notified_at"] < interval:
                    continue
                notice = {"last_notified_at": now, "notify_count": row["notify_count"] + 1}
                chain.conn.execute(sa.update(table).where(table.c.id == sa.bindparam("warning_id")),
                                   {**notice, "warning_id": row["id"]})
                chain.append("warning", row["id"], "remind", SYSTEM_ACTOR, now, _audited(row), _audited(row))
                reminded.append(WarningRecord(**{**row, **notice}))
        for record in reminded:
            self._dispatch("reminded", record, now)
        return reminded


def _check_labels(labels: dict | None) -> dict | None:
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise StoreError("corrected_labels: 应为字典，如 {\"loss_type\": \"culture\"}")
    for key, value in labels.items():
        if key not in CORRECTABLE_LABELS:
            raise StoreError(f"corrected_labels.{key}: 未知标签; 可用: {', '.join(CORRECTABLE_LABELS)}")
        if value not in CORRECTABLE_LABELS[key]:
            raise StoreError(f"corrected_labels.{key}: 取值 {value!r} 不在允许范围 {list(CORRECTABLE_LABELS[key])}")
    return dict(labels)
