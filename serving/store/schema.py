"""The warning store's vocabulary: tables, the records read back from them, constants and small pure helpers.

Everything here is data or a pure function of it: the other store modules build on it and it imports none of
them, so what a warning, a silence or an audit entry is can be read in one place, apart from what is done to them.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.errors import Conflict, InputError, NotFound
from serving.policy import GRADE_LEVEL, GRADE_ZH

STATUSES = ("open", "acknowledged", "assigned", "resolved")
STATUS_ZH = {"open": "待确认", "acknowledged": "已确认", "assigned": "已指派", "resolved": "已关闭"}
OUTCOMES = ("true_alarm", "false_alarm")
CORRECTABLE_LABELS = {"sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS}
ACTION_ZH = {"open": "新建", "update": "合并更新", "acknowledge": "确认", "assign": "指派", "resolve": "关闭",
             "escalate": "超时升级", "remind": "再次提醒", "silence": "新建静默", "mute": "静默/抑制",
             "unmute": "解除静默/抑制", "rekey": "启用审计密钥"}
GENESIS = "0" * 64
SYSTEM_ACTOR = "system"
# Delivery bookkeeping changes on every re-notification; it is not part of the audited state.
_UNAUDITED = ("last_notified_at", "notify_count")


class StoreError(InputError):
    """A request the store refuses (bad field, unknown id, illegal transition); nothing was written."""


class WarningNotFound(NotFound):
    pass


class IllegalTransition(Conflict):
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
    sa.Column("key_id", sa.String(16)),  # the HMAC key that signed the entry; NULL: SHA-256, before any key
)

# One row: the last seq and hash. It anchors the chain's end (a deleted tail is otherwise invisible) and is the
# lock every writer takes first.
audit_head_table = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(16)),  # the key of the last entry: a writer with a newer one appends a rekey
)

_ENTITY_TABLES = {"warning": warnings_table, "silence": silences_table}


def _utc(moment: datetime | None) -> datetime:
    """Naive UTC, the one form stored (naive input is taken as UTC already)."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _canonical(state: dict[str, Any] | None) -> str:
    if state is None:
        return "null"
    return json.dumps({k: _jsonable(v) for k, v in state.items()}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))


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
    unkeyed: int = 0  # entries from before any key (SHA-256 only)
    anchored: int | None = None  # seq of the latest anchor the chain was checked against
    anchors: int = 0


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): refuse it naming the field rather than fail with a 500."""
    for row in parameters if executemany else (parameters,):
        for name, value in row.items() if isinstance(row, dict) else ():
            if isinstance(value, str) and "\x00" in value:
                raise StoreError(f"{name}: 含有空字符 (\\x00)，PostgreSQL 无法保存")


def _require_actor(actor: Any) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise StoreError("actor: 操作人不能为空")
