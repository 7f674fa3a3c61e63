"""Warning store: the lifecycle of a warning and a trace of it that nobody can quietly rewrite.

Lifecycle: open → acknowledged → assigned → resolved (assigning an open warning acknowledges it on the way;
resolving needs someone to have acknowledged it first; resolved is final). Alertmanager-like intake: events about
one subject within the grouping window update one warning, an open red warning mutes lower ones on the same
subject (inhibition), silences mute until they expire, and a still-firing warning is re-notified only after its
grade's interval. Every change is appended to a hash-chained audit log whose head is stored too, so an edited,
inserted or deleted entry - or a warning edited behind the log's back - shows up in `verify_audit`.

Writers are serialised (SQLite: BEGIN IMMEDIATE; other databases: a row lock on the audit head), which keeps the
chain linear and makes concurrent writers lose nothing. SQLAlchemy Core only, so a Postgres URL
(`postgresql://user@host/db`, driver psycopg 3) works unchanged; the store tests run on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

import pandas as pd
import sqlalchemy as sa

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.settings import settings
from serving.db import create_schema, make_engine, write_connection
from serving.owners import Owners
from serving.policy import GRADE_LEVEL, GRADE_ZH, GRADES, Policy, grade_rank
from serving.rules import Decision, RiskInput
from serving.webhooks import WebhookDispatcher

STATUSES = ("open", "acknowledged", "assigned", "resolved")
STATUS_ZH = {"open": "待确认", "acknowledged": "已确认", "assigned": "已指派", "resolved": "已关闭"}
OUTCOMES = ("true_alarm", "false_alarm")
CORRECTABLE_LABELS = {"sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS}
ACTION_ZH = {"open": "新建", "update": "合并更新", "acknowledge": "确认", "assign": "指派", "resolve": "关闭",
             "escalate": "超时升级", "remind": "再次提醒", "silence": "新建静默"}
GENESIS = "0" * 64
SYSTEM_ACTOR = "system"
# Delivery bookkeeping changes on every re-notification; it is not part of the audited state.
_UNAUDITED = ("last_notified_at", "notify_count")


class StoreError(ValueError):
    """A request the store refuses (bad field, unknown id, illegal transition); nothing was written."""


class WarningNotFound(StoreError):
    pass


class IllegalTransition(StoreError):
    pass


metadata = sa.MetaData()

warnings_table = sa.Table(
    "warnings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject", sa.String(256), nullable=False, index=True),
    sa.Column("event_kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("grade", sa.String(8), nullable=False),
    sa.Column("loss_type", sa.String(16), nullable=False),
    sa.Column("function", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("internal", sa.Boolean, nullable=False),
    sa.Column("department_id", sa.String(64), index=True),
    sa.Column("employee_id", sa.String(64)),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("risk", sa.JSON, nullable=False),
    sa.Column("decision", sa.JSON, nullable=False),
    sa.Column("owners", sa.JSON),
    sa.Column("muted_reason", sa.String(16)),
    sa.Column("muted_by", sa.Integer),
    sa.Column("events_count", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("last_event_at", sa.DateTime, nullable=False),
    sa.Column("deadline_at", sa.DateTime, nullable=False),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("escalated_to", sa.String(64)),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("assignee", sa.String(128)),
    sa.Column("assigned_at", sa.DateTime),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("resolved_by", sa.String(128)),
    sa.Column("outcome", sa.String(16)),
    sa.Column("actual_spread", sa.BigInteger),  # the API takes up to 1e10: over 32 bits
    sa.Column("resolution_notes", sa.Text),
    sa.Column("corrected_labels", sa.JSON),
    sa.Column("last_notified_at", sa.DateTime),
    sa.Column("notify_count", sa.Integer, nullable=False),
)

silences_table = sa.Table(
    "silences", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_pattern", sa.String(256), nullable=False),
    sa.Column("loss_type", sa.String(16)),
    sa.Column("department_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

audit_table = sa.Table(
    "audit_log", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("entity", sa.String(16), nullable=False),
    sa.Column("entity_id", sa.Integer, nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("before", sa.Text, nullable=False),
    sa.Column("after", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# One row: the last seq and hash. It anchors the chain's end (a deleted tail is otherwise invisible) and is the
# lock every writer takes first.
audit_head_table = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

_ENTITY_TABLES = {"warning": warnings_table, "silence": silences_table}


def _utc(moment: datetime | None) -> datetime:
    """Naive UTC, the one form stored (naive input is taken as UTC already)."""
    if moment is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _canonical(state: dict[str, Any] | None) -> str:
    if state is None:
        return "null"
    return json.dumps({k: _jsonable(v) for k, v in state.items()}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))


def _entry_hash(prev_hash: str, seq: int, entity: str, entity_id: int, action: str, actor: str, at: datetime,
                before: str, after: str) -> str:
    payload = json.dumps([prev_hash, seq, entity, entity_id, action, actor, at.isoformat(), before, after],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_stored(state: dict[str, Any]) -> dict[str, Any]:
    """A JSON column's value as the database gives it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(state, ensure_ascii=False))


def _audited(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _UNAUDITED}


@dataclass(frozen=True)
class WarningRecord:
    id: int
    subject: str
    event_kind: str
    status: str
    grade: str
    loss_type: str
    function: str
    channel: str
    internal: bool
    department_id: str | None
    employee_id: str | None
    text: str
    risk: dict
    decision: dict
    owners: dict | None
    muted_reason: str | None
    muted_by: int | None
    events_count: int
    created_at: datetime
    updated_at: datetime
    last_event_at: datetime
    deadline_at: datetime
    escalation_level: int
    escalated_to: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assignee: str | None
    assigned_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    actual_spread: int | None
    resolution_notes: str | None
    corrected_labels: dict | None
    last_notified_at: datetime | None
    notify_count: int

    def as_dict(self) -> dict[str, Any]:
        out = {k: _jsonable(v) for k, v in asdict(self).items()}
        out.update(grade_zh=GRADE_ZH[self.grade], grade_level=GRADE_LEVEL[self.grade],
                   status_zh=STATUS_ZH[self.status])
        return out


@dataclass(frozen=True)
class SilenceRecord:
    id: int
    subject_pattern: str
    loss_type: str | None
    department_id: str | None
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime

    def covers(self, subject: str, loss_type: str, department_id: str | None, now: datetime) -> bool:
        return (self.expires_at > now and fnmatch.fnmatchcase(subject, self.subject_pattern)
                and self.loss_type in (None, loss_type) and self.department_id in (None, department_id))


@dataclass(frozen=True)
class UpsertResult:
    record: WarningRecord
    created: bool  # False: the event was grouped into an existing warning
    notified: bool  # whether owners are told now (new, grade rose, or re-notify interval passed; never when muted)


@dataclass(frozen=True)
class Escalation:
    warning_id: int
    level: int
    escalated_to: dict | None  # the person (Owners.escalation entry) now told, None when nobody is left
    note: str


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    entity: str
    entity_id: int
    action: str
    actor: str
    at: datetime
    before: dict | None
    after: dict | None
    hash: str

    @property
    def warning_id(self) -> int | None:
        return self.entity_id if self.entity == "warning" else None


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    checked: int
    problem: str | None = None


class _Chain:
    """The audit chain's end inside one write transaction."""

    def __init__(self, conn: sa.Connection, seq: int, last_hash: str):
        self.conn, self.seq, self.hash = conn, seq, last_hash

    def append(self, entity: str, entity_id: int, action: str, actor: str, at: datetime,
               before: dict | None, after: dict | None) -> None:
        seq = self.seq + 1
        before_text, after_text = _canonical(before), _canonical(after)
        digest = _entry_hash(self.hash, seq, entity, entity_id, action, actor, at, before_text, after_text)
        self.conn.execute(sa.insert(audit_table), dict(  # parameters apart: the compiled INSERT is reused
            seq=seq, entity=entity, entity_id=entity_id, action=action, actor=actor, at=at,
            before=before_text, after=after_text, prev_hash=self.hash, hash=digest))
        self.seq, self.hash = seq, digest


class WarningStore:
    """Warnings, silences and the audit chain in one database; safe to share across threads and processes."""

    def __init__(self, url: str | None = None, *, policy: Policy | None = None,
                 webhooks: WebhookDispatcher | None = None):
        self.url = url or settings.warnings_db
        self._policy = policy
        self.webhooks = webhooks
        self.engine = make_engine(self.url)
        if self.engine.dialect.name == "postgresql":
            sa.event.listen(self.engine, "before_cursor_execute", _refuse_nul)
        self._inhibit_queries: dict[tuple, sa.Select] = {}
        with self._write_connection() as conn, conn.begin():
            create_schema(conn, metadata)
            if conn.execute(sa.select(audit_head_table.c.id)).first() is None:
                conn.execute(sa.insert(audit_head_table).values(id=1, seq=0, hash=GENESIS))

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = Policy.load()
        return self._policy

    def _write_connection(self) -> sa.Connection:
        return write_connection(self.engine)

    @contextmanager
    def _writing(self) -> Iterator[_Chain]:
        """One serialised write transaction; the audit head is locked first and advanced at the end."""
        with self._write_connection() as conn, conn.begin():
            head = conn.execute(sa.select(audit_head_table).where(audit_head_table.c.id == 1)
                                .with_for_update()).one()
            chain = _Chain(conn, head.seq, head.hash)
            yield chain
            if chain.seq != head.seq:
                conn.execute(sa.update(audit_head_table).where(audit_head_table.c.id == 1)
                             .values(seq=chain.seq, hash=chain.hash))

    # --- reading ----------------------------------------------------------------------------------------------

    @staticmethod
    def _row(conn: sa.Connection, warning_id: int) -> dict[str, Any]:
        row = conn.execute(sa.select(warnings_table).where(warnings_table.c.id == warning_id)).mappings().first()
        if row is None:
            raise WarningNotFound(f"预警 #{warning_id} 不存在")
        return dict(row)

    def get(self, warning_id: int) -> WarningRecord:
        with self.engine.connect() as conn:
            return WarningRecord(**self._row(conn, warning_id))

    def list(self, *, status: str | Iterable[str] | None = None, grade: str | Iterable[str] | None = None,
             loss_type: str | None = None, subject: str | None = None, units: Iterable[str] | None = None,
             include_muted: bool = True, limit: int = 100, offset: int = 0) -> list[WarningRecord]:
        """Newest first. `units` restricts to warnings of those departments (e.g. OrgChart.subtree(unit))."""
        query = sa.select(warnings_table)
        for name, value, allowed in (("status", status, STATUSES), ("grade", grade, GRADES)):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise StoreError(f"筛选条件 {name}: 取值 {bad[0]!r} 不在允许范围 {list(allowed)}")
            query = query.where(warnings_table.c[name].in_(values))
        if loss_type is not None:
            query = query.where(warnings_table.c.loss_type == loss_type)
        if subject is not None:
            query = query.where(warnings_table.c.subject == subject)
        if units is not None:
            query = query.where(warnings_table.c.department_id.in_(list(units)))
        if not include_muted:
            query = query.where(warnings_table.c.muted_reason.is_(None))
        if limit < 1 or offset < 0:
            raise StoreError("limit 应为正整数, offset 应为非负整数")
        query = query.order_by(warnings_table.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [WarningRecord(**row) for row in conn.execute(query).mappings()]

    def silences(self, *, active_at: datetime | None = None) -> list[SilenceRecord]:
        query = sa.select(silences_table).order_by(silences_table.c.id)
        if active_at is not None:
            query = query.where(silences_table.c.expires_at > _utc(active_at))
        with self.engine.connect() as conn:
            return [SilenceRecord(**row) for row in conn.execute(query).mappings()]

    # --- intake -----------------------------------------------------------------------------------------------

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
            silences = [SilenceRecord(**r) for r in chain.conn.execute(
                sa.select(silences_table).where(silences_table.c.expires_at > now)
                .order_by(silences_table.c.id)).mappings()]
            return [self._file(chain, decision, risk, owners, now, silences) for decision, risk, owners in items]

    def _file(self, chain: "_Chain", decision: Decision, risk: RiskInput, owners: Owners | None, now: datetime,
              silences: list[SilenceRecord]) -> UpsertResult:
        """Group or open, mute, decide whether to notify, then write the row once and chain its audit entry. The
        state after is composed from what is written (JSON as it reads back), not read again."""
        conn, policy, table = chain.conn, self.policy, warnings_table
        risk_state = _as_stored({f.name: _jsonable(getattr(risk, f.name)) for f in fields(risk)})
        decision_state = _as_stored(decision.as_dict())
        owners_state = _as_stored(owners.as_dict()) if owners is not None else None
        window_start = now - timedelta(minutes=policy.grouping_window_minutes)
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
        return UpsertResult(WarningRecord(**after), created, notified)

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
            for name, absent in zip(policy.inhibit_equal, missing):
                query = query.where(table.c[name].is_(None) if absent else table.c[name] == sa.bindparam(f"eq_{name}"))
            if warning_id is not None:
                query = query.where(table.c.id != sa.bindparam("self_id"))
            query = self._inhibit_queries[shape] = query.order_by(table.c.id).limit(1)
        values = {f"eq_{name}": row[name] for name, absent in zip(policy.inhibit_equal, missing) if not absent}
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
        return SilenceRecord(**stored)

    # --- lifecycle --------------------------------------------------------------------------------------------

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
                raise IllegalTransition(f"预警 #{warning_id} 已于 {row['resolved_at']:%Y-%m-%d %H:%M} 关闭，不能重复关闭")
            if row["status"] == "open":
                raise IllegalTransition(f"预警 #{warning_id} 尚未确认，不能直接关闭；请先确认或指派负责人")
            return {"status": "resolved", "resolved_at": now, "resolved_by": actor, "outcome": outcome,
                    "actual_spread": actual_spread, "resolution_notes": notes, "corrected_labels": labels}

        record = self._transition(warning_id, "resolve", actor, now, change)
        self._dispatch("resolved", record, now)
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

    # --- audit ------------------------------------------------------------------------------------------------

    def audit_entries(self, warning_id: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_table).order_by(audit_table.c.seq)
        if warning_id is not None:
            query = query.where(audit_table.c.entity == "warning", audit_table.c.entity_id == warning_id)
        with self.engine.connect() as conn:
            return [AuditEntry(row.seq, row.entity, row.entity_id, row.action, row.actor, row.at,
                               json.loads(row.before), json.loads(row.after), row.hash)
                    for row in conn.execute(query)]

    def verify_audit(self) -> AuditReport:
        """Walk the chain, compare its end with the head, and every warning/silence with its last audited state."""
        with self.engine.connect() as conn:
            if conn.dialect.name != "sqlite":  # READ COMMITTED (Postgres' default) snapshots each statement anew
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():  # one snapshot for the whole check
                return self._verify(conn)

    @staticmethod
    def _verify(conn: sa.Connection) -> AuditReport:
        checked, previous = 0, GENESIS
        last_state: dict[tuple[str, int], tuple[int, str]] = {}  # (entity, id) -> (seq, digest of its after-state)
        for row in conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)):
            what = f"审计记录 #{row.seq}（{_entity_zh(row.entity, row.entity_id)}的{ACTION_ZH.get(row.action, row.action)}）"
            if row.seq != checked + 1:
                missing = f"#{checked + 1}" if row.seq == checked + 2 else f"#{checked + 1}–#{row.seq - 1}"
                return AuditReport(False, checked, f"审计记录 {missing} 缺失（被删除），链在 {what} 处断开")
            if row.prev_hash != previous:
                return AuditReport(False, checked, f"{what} 的前序哈希与上一条记录不符（上一条被改动或被替换）")
            digest = _entry_hash(row.prev_hash, row.seq, row.entity, row.entity_id, row.action, row.actor, row.at,
                                 row.before, row.after)
            if digest != row.hash:
                return AuditReport(False, checked, f"{what} 的内容与哈希不符（该记录被修改或伪造插入）")
            previous, checked = row.hash, checked + 1
            last_state[(row.entity, row.entity_id)] = (row.seq, _digest(row.after))

        head = conn.execute(sa.select(audit_head_table).where(audit_head_table.c.id == 1)).first()
        if head is None:
            return AuditReport(False, checked, "审计链头记录缺失（被删除）")
        if head.seq > checked:
            return AuditReport(False, checked, f"审计记录 #{checked + 1}–#{head.seq} 缺失（末尾记录被删除）")
        if head.seq < checked:
            return AuditReport(False, checked, f"审计记录 #{head.seq + 1} 起不在链头登记范围内（被追加插入）")
        if head.hash != previous:
            return AuditReport(False, checked, f"审计记录 #{checked} 与链头登记的哈希不符（末尾记录被替换）")

        for entity, table in _ENTITY_TABLES.items():
            present = set()
            for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings():
                name = _entity_zh(entity, row["id"])
                present.add(row["id"])
                if (entity, row["id"]) not in last_state:
                    return AuditReport(False, checked, f"{name}没有任何审计记录（绕过审计写入）")
                seq, audited = last_state[(entity, row["id"])]
                if audited != _digest(_canonical(_audited(dict(row)))):
                    return AuditReport(False, checked, f"{name}的当前内容与审计记录 #{seq} 不符（数据表被直接修改）")
            for (kind, entity_id), (seq, _) in sorted(last_state.items()):
                if kind == entity and entity_id not in present:
                    return AuditReport(False, checked, f"{_entity_zh(entity, entity_id)}已从数据表中删除"
                                                       f"（最后审计记录 #{seq}）")
        return AuditReport(True, checked)

    # --- feedback for retraining ------------------------------------------------------------------------------

    def export_feedback(self) -> pd.DataFrame:
        """Resolved warnings with outcome, actual spread and corrected labels: the labels retraining learns from."""
        columns = ["warning_id", "subject", "event_kind", "text", "channel", "internal", "department_id", "grade",
                   "loss_type", "function", "sentiment_label", "p_neg", "reach_p50", "reach_p90",
                   "velocity_per_hour", "outcome", "actual_spread", "resolution_notes", "resolved_at",
                   "corrected_sentiment", "corrected_loss_type", "corrected_function"]
        records = []
        for warning in self._all_resolved():
            labels = warning.corrected_labels or {}
            risk = warning.risk
            records.append({
                "warning_id": warning.id, "subject": warning.subject, "event_kind": warning.event_kind,
                "text": warning.text, "channel": warning.channel, "internal": warning.internal,
                "department_id": warning.department_id, "grade": warning.grade, "loss_type": warning.loss_type,
                "function": warning.function, "sentiment_label": risk.get("sentiment_label"),
                "p_neg": risk.get("p_neg"), "reach_p50": risk.get("reach_p50"), "reach_p90": risk.get("reach_p90"),
                "velocity_per_hour": risk.get("velocity_per_hour"), "outcome": warning.outcome,
                "actual_spread": warning.actual_spread, "resolution_notes": warning.resolution_notes,
                "resolved_at": warning.resolved_at, **{f"corrected_{k}": labels.get(k) for k in CORRECTABLE_LABELS},
            })
        return pd.DataFrame.from_records(records, columns=columns)

    def _all_resolved(self) -> list[WarningRecord]:
        query = sa.select(warnings_table).where(warnings_table.c.status == "resolved").order_by(warnings_table.c.id)
        with self.engine.connect() as conn:
            return [WarningRecord(**row) for row in conn.execute(query).mappings()]

    # --- integrations -----------------------------------------------------------------------------------------

    def _dispatch(self, event_name: str, record: WarningRecord, now: datetime) -> None:
        """Queue the lifecycle event for the integrations the warning's routes name (never blocks)."""
        if self.webhooks is None:
            return
        warning = None  # serialised once, and only when some target has a URL (most routes have none)
        for target in record.decision.get("webhooks", {}).get(event_name, []):
            if target not in self.webhooks.targets:
                self.webhooks.send(target, event_name, {})  # logs that the target has no URL; sends nothing
                continue
            actions = [{**action, "due_at": (now + timedelta(hours=action["due_hours"])).isoformat()
                        if action["due_hours"] else None}
                       for action in record.decision.get("actions", []) if action["system"] == target]
            warning = warning or record.as_dict()
            self.webhooks.send(target, event_name, {"warning": warning, "actions": actions})

    def close(self) -> None:
        self.engine.dispose()


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): refuse it naming the field rather than fail with a 500."""
    for row in parameters if executemany else (parameters,):
        for name, value in row.items() if isinstance(row, dict) else ():
            if isinstance(value, str) and "\x00" in value:
                raise StoreError(f"{name}: 含有空字符 (\\x00)，PostgreSQL 无法保存")


def _entity_zh(entity: str, entity_id: int) -> str:
    return f"{'预警' if entity == 'warning' else '静默规则'} #{entity_id} "


def _require_actor(actor: Any) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise StoreError("actor: 操作人不能为空")


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
