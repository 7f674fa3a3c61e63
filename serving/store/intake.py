"""Intake: file graded events as warnings, Alertmanager-like.

Events about one subject within the grouping window update one warning instead of opening another; an open warning
of a source grade mutes lower ones that share the inhibition fields (inhibition); silences mute matching warnings
until they expire; a still-firing warning notifies again only after its grade's re-notify interval. Muting and
notifying are decided before the row is written, so each event is one write and one audit entry.

Muting follows its cause, as in Alertmanager, where it is computed rather than stored: a warning filed during a
silence is unmuted when the silence expires, one inhibited by a red warning when that one is resolved, and a new
silence (or a new red warning) mutes the matching warnings already open. `refresh_mutes` recomputes it on the
service's timer, and the changes that can end or start a cause (a silence added, an inhibiting warning resolved
or filed) recompute the warnings they touch at once. Each change is an audited mute/unmute entry; an open warning
that comes out of muting is notified then, with its full response time from that moment.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from features.contracts import LOSS_TYPES
from serving.owners import Owners
from serving.policy import grade_rank
from serving.rules import Decision, RiskInput
from serving.store.audit import _Chain
from serving.store.schema import (
    SYSTEM_ACTOR,
    SilenceRecord,
    StoreError,
    UpsertResult,
    WarningRecord,
    _as_stored,
    _audited,
    _jsonable,
    _require_actor,
    _utc,
    silences_table,
    warnings_table,
)


class Intake:
    """A mixin of WarningStore: it expects `self.engine`, `self.policy`, `self._inhibit_queries` (a dict: the
    inhibition queries by shape, compiled once), `_writing` (AuditLog) and `_dispatch` (WebhookDispatch)."""

    def silences(self, *, active_at: datetime | None = None) -> list[SilenceRecord]:
        query = sa.select(silences_table).order_by(silences_table.c.id)
        if active_at is not None:
            query = query.where(silences_table.c.expires_at > _utc(active_at))
        with self.engine.connect() as conn:
            return [SilenceRecord(**row) for row in conn.execute(query).mappings()]

    def upsert_from_decision(self, decision: Decision, risk: RiskInput, owners: Owners | None = None, *,
                             now: datetime | None = None) -> UpsertResult:
        """File one graded event: group it into the subject's recent warning or open a new one, then mute or notify."""
        result = self.upsert_many([(decision, risk, owners)], now=now)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def upsert_many(self, items: Iterable[tuple[Decision, RiskInput, Owners | None]], *,
                    now: datetime | None = None) -> list[UpsertResult | Exception]:
        """File several graded events in one write transaction (one commit, one audit-head lock): under load the
        per-transaction cost, not the rows, is what serialises writers. Events are filed in order, so two
        events of one subject group as they would one by one. If one fails, the batch is rolled back and filed
        again one event per transaction, so the failure is that event's result and the others are kept."""
        items = list(items)
        for decision, risk, _ in items:
            if not isinstance(decision, Decision) or not isinstance(risk, RiskInput):
                raise StoreError("upsert_from_decision 需要 evaluate() 返回的 Decision（未触发规则时为 None，无需建档）"
                                 "和对应的 RiskInput")
        now = _utc(now)
        if not items:
            return []
        try:
            results: list[UpsertResult | Exception] = self._file_all(items, now)
        except Exception:  # noqa: BLE001 - nothing was written; find the culprit one transaction at a time
            if len(items) == 1:
                raise
            results = []
            for item in items:
                try:
                    results += self._file_all([item], now)
                except Exception as exc:  # noqa: BLE001 - this event's error, returned to its caller
                    results.append(exc)
        for result in results:
            if isinstance(result, UpsertResult) and result.notified:
                self._dispatch("opened" if result.created else "updated", result.record, now)
        return results

    def _file_all(self, items: list[tuple[Decision, RiskInput, Owners | None]], now: datetime) -> list[UpsertResult]:
        with self._writing() as chain:
            silences = self._active_silences(chain.conn, now)
            return [self._file(chain, decision, risk, owners, now, silences) for decision, risk, owners in items]

    @staticmethod
    def _active_silences(conn: sa.Connection, now: datetime) -> list[SilenceRecord]:
        return [SilenceRecord(**r) for r in conn.execute(
            sa.select(silences_table).where(silences_table.c.expires_at > now)
            .order_by(silences_table.c.id)).mappings()]

    def _file(self, chain: _Chain, decision: Decision, risk: RiskInput, owners: Owners | None, now: datetime,
              silences: list[SilenceRecord]) -> UpsertResult:
        """Group or open, mute, decide whether to notify, then write the row once and chain its audit entry. The
        state after is composed from what is written (JSON as it reads back), not read again."""
        conn, policy, table = chain.conn, self.policy, warnings_table
        risk_state = _as_stored({f.name: _jsonable(getattr(risk, f.name)) for f in fields(risk)})
        decision_state = _as_stored(decision.as_dict())
        owners_state = _as_stored(owners.as_dict()) if owners is not None else None
        window = policy.monitoring.grouping_minutes.get(risk.event_kind, policy.grouping_window_minutes)
        window_start = now - timedelta(minutes=window)
        current = conn.execute(
            sa.select(table).where(table.c.subject == risk.subject, table.c.status != "resolved",
                                   table.c.last_event_at >= window_start)
            .order_by(table.c.id.desc()).limit(1)).mappings().first()
        if current is None:
            before, created, grade_rose = None, True, True
            after = {
                "subject": risk.subject, "event_kind": risk.event_kind, "status": "open", "grade": decision.grade,
                "loss_type": decision.loss_type, "function": risk.function, "channel": risk.channel,
                "internal": risk.internal, "department_id": risk.department_id, "employee_id": risk.employee_id,
                "text": risk.text, "risk": risk_state, "decision": decision_state, "owners": owners_state,
                "events_count": 1, "created_at": now, "updated_at": now, "last_event_at": now,
                "deadline_at": now + timedelta(hours=decision.deadline_hours), "escalation_level": 0,
                "escalated_to": None, "acknowledged_at": None, "acknowledged_by": None, "assignee": None,
                "assigned_at": None, "resolved_at": None, "resolved_by": None, "outcome": None,
                "actual_spread": None, "resolution_notes": None, "corrected_labels": None,
                "last_notified_at": None, "notify_count": 0,
            }
            after["muted_reason"], after["muted_by"] = self._mute(conn, after, None, now, silences)
            change = after
        else:
            before = dict(current)
            created = False
            change = {"events_count": before["events_count"] + 1, "updated_at": now, "last_event_at": now}
            grade_rose = grade_rank(decision.grade) > grade_rank(before["grade"])
            if grade_rank(decision.grade) >= grade_rank(before["grade"]):  # fresher inputs, same or higher grade
                change.update(grade=decision.grade, loss_type=decision.loss_type, text=risk.text, risk=risk_state,
                              decision=decision_state, owners=owners_state or before["owners"])
            if grade_rose:
                change["deadline_at"] = min(before["deadline_at"], now + timedelta(hours=decision.deadline_hours))
            change["muted_reason"], change["muted_by"] = self._mute(conn, {**before, **change}, before["id"], now,
                                                                    silences)
            after = {**before, **change}
        last = after["last_notified_at"]
        renotify = timedelta(minutes=policy.grades[after["grade"]].renotify_minutes)
        notified = after["muted_reason"] is None and (grade_rose or last is None or now - last >= renotify)
        if notified:
            notice = {"last_notified_at": now, "notify_count": after["notify_count"] + 1}
            change.update(notice)
            after.update(notice)
        # Parameters apart from the statement: SQLAlchemy then reuses its compiled SQL (a third of the cost).
        if created:
            warning_id = conn.execute(sa.insert(table), change).inserted_primary_key[0]
            after = {"id": warning_id, **after}
        else:
            warning_id = before["id"]
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("warning_id")),
                         {**change, "warning_id": warning_id})
        chain.append("warning", warning_id, "open" if created else "update", SYSTEM_ACTOR, now,
                     _audited(before) if before else None, _audited(after))
        if grade_rose and after["grade"] in policy.inhibit_source_grades:  # a new cause for muting others
            self._inhibit_others(chain, after, now, silences)
        return UpsertResult(WarningRecord(**after), created, notified)

    def _inhibit_others(self, chain: _Chain, source: dict[str, Any], now: datetime,
                        silences: list[SilenceRecord]) -> None:
        """A warning that just reached a source grade mutes the lower, unmuted warnings it inhibits."""
        table, policy = warnings_table, self.policy
        lower = [g for g in policy.grades if grade_rank(g) < grade_rank(source["grade"])]
        query = sa.select(table).where(table.c.status != "resolved", table.c.muted_reason.is_(None),
                                       table.c.id != source["id"], table.c.grade.in_(lower))
        for name in policy.inhibit_equal:
            value = source[name]
            query = query.where(table.c[name].is_(None) if value is None else table.c[name] == value)
        for row in map(dict, chain.conn.execute(query.order_by(table.c.id)).mappings().all()):
            self._apply_mute(chain, row, now, silences)

    def refresh_mutes(self, now: datetime | None = None, *, where: Any = None) -> list[WarningRecord]:
        """Recompute the muting of unresolved warnings (by default the muted ones; `where` narrows or widens it) from
        the silences active now and the warnings that inhibit. Returns the warnings whose muting changed; owners of
        those that came out of it are told (webhooks)."""
        now, table = _utc(now), warnings_table
        condition = table.c.muted_reason.is_not(None) if where is None else where
        query = sa.select(table).where(table.c.status != "resolved", condition).order_by(table.c.id)
        with self.engine.connect() as conn:
            if conn.execute(sa.select(table.c.id).where(table.c.status != "resolved", condition).limit(1)).first() \
                    is None:
                return []
        changed = []
        with self._writing() as chain:
            silences = self._active_silences(chain.conn, now)
            for row in map(dict, chain.conn.execute(query).mappings().all()):
                if (result := self._apply_mute(chain, row, now, silences)) is not None:
                    changed.append(result)
        for record, told in changed:
            if told:
                self._dispatch("opened" if record.notify_count == 1 else "updated", record, now)
        return [record for record, _ in changed]

    def _apply_mute(self, chain: _Chain, row: dict[str, Any], now: datetime,
                    silences: list[SilenceRecord]) -> tuple[WarningRecord, bool] | None:
        """Set a warning's muting to what its causes say now, audited; an open warning coming out of it is told
        now (re-notify bookkeeping) and gets its grade's full response time from now."""
        reason, source = self._mute(chain.conn, row, row["id"], now, silences)
        if (reason, source) == (row["muted_reason"], row["muted_by"]):
            return None
        values: dict[str, Any] = {"muted_reason": reason, "muted_by": source, "updated_at": now}
        told = reason is None and row["status"] == "open"
        if told:
            hours = self.policy.grades[row["grade"]].deadline_hours
            values.update(last_notified_at=now, notify_count=row["notify_count"] + 1,
                          deadline_at=max(row["deadline_at"], now + timedelta(hours=hours)))
        chain.conn.execute(sa.update(warnings_table).where(warnings_table.c.id == row["id"]).values(**values))
        after = {**row, **values}
        chain.append("warning", row["id"], "unmute" if reason is None else "mute", SYSTEM_ACTOR, now,
                     _audited(row), _audited(after))
        return WarningRecord(**after), told

    def _mute(self, conn: sa.Connection, row: dict[str, Any], warning_id: int | None, now: datetime,
              silences: list[SilenceRecord]) -> tuple[str | None, int | None]:
        """Silenced (by an active silence), inhibited (by an open higher warning of a source grade), or neither."""
        for silence in silences:
            if silence.covers(row["subject"], row["loss_type"], row["department_id"], now):
                return "silenced", silence.id
        policy = self.policy
        sources = [g for g in policy.inhibit_source_grades if grade_rank(g) > grade_rank(row["grade"])]
        if not sources:
            return None, None
        missing = tuple(row[name] is None for name in policy.inhibit_equal)
        shape = (tuple(sources), policy.inhibit_equal, missing, warning_id is None)
        query = self._inhibit_queries.get(shape)
        if query is None:  # built once per shape, values bound per call: building a select costs more than running it
            table = warnings_table
            query = sa.select(table.c.id).where(table.c.status != "resolved", table.c.grade.in_(sources))
            for name, absent in zip(policy.inhibit_equal, missing, strict=True):
                query = query.where(table.c[name].is_(None) if absent else table.c[name] == sa.bindparam(f"eq_{name}"))
            if warning_id is not None:
                query = query.where(table.c.id != sa.bindparam("self_id"))
            query = self._inhibit_queries[shape] = query.order_by(table.c.id).limit(1)
        values = {f"eq_{name}": row[name]
                  for name, absent in zip(policy.inhibit_equal, missing, strict=True) if not absent}
        if warning_id is not None:
            values["self_id"] = warning_id
        source = conn.execute(query, values).scalar()
        return ("inhibited", source) if source is not None else (None, None)

    def add_silence(self, subject_pattern: str, *, actor: str, reason: str, expires_at: datetime | None = None,
                    duration_hours: float | None = None, loss_type: str | None = None,
                    department_id: str | None = None, now: datetime | None = None) -> SilenceRecord:
        """Mute matching warnings (subject glob such as "post:*", optionally one loss type/department) until expiry."""
        now = _utc(now)
        _require_actor(actor)
        if not isinstance(subject_pattern, str) or not subject_pattern.strip():
            raise StoreError("subject_pattern: 不能为空")
        if not isinstance(reason, str) or not reason.strip():
            raise StoreError("reason: 静默必须说明原因")
        if (expires_at is None) == (duration_hours is None):
            raise StoreError("expires_at 与 duration_hours 需且只需提供一个")
        if duration_hours is not None and (not isinstance(duration_hours, (int, float)) or duration_hours <= 0):
            raise StoreError(f"duration_hours: 应为正数, 实为 {duration_hours!r}")
        expiry = _utc(expires_at) if expires_at is not None else now + timedelta(hours=duration_hours)
        if expiry <= now:
            raise StoreError("expires_at: 到期时间应晚于当前时间")
        if loss_type is not None and loss_type not in LOSS_TYPES:
            raise StoreError(f"loss_type: 取值 {loss_type!r} 不在允许范围 {list(LOSS_TYPES)}")
        row = {"subject_pattern": subject_pattern, "loss_type": loss_type, "department_id": department_id,
               "reason": reason, "created_by": actor, "created_at": now, "expires_at": expiry}
        with self._writing() as chain:
            silence_id = chain.conn.execute(sa.insert(silences_table).values(**row)).inserted_primary_key[0]
            stored = dict(chain.conn.execute(sa.select(silences_table)
                                             .where(silences_table.c.id == silence_id)).mappings().one())
            chain.append("silence", silence_id, "silence", actor, now, None, stored)
            silence, table = SilenceRecord(**stored), warnings_table
            silences = self._active_silences(chain.conn, now)
            for open_row in map(dict, chain.conn.execute(  # warnings already there that it now covers
                    sa.select(table).where(table.c.status != "resolved", table.c.muted_reason.is_distinct_from(
                        "silenced")).order_by(table.c.id)).mappings().all()):
                if silence.covers(open_row["subject"], open_row["loss_type"], open_row["department_id"], now):
                    self._apply_mute(chain, open_row, now, silences)
        return silence
