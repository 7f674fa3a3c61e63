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

One concern per module, as Alertmanager splits them: `schema` (tables, records, constants), `audit` (the hash
chain and the serialised write transaction), `intake` (grouping, inhibition, silences), `lifecycle` (ack, assign,
resolve, escalation, reminders), `export` (feedback for retraining), `dispatch` (webhooks), `series` (counts
per time bucket and complaint clusters: what monitoring reads). `WarningStore` here composes them and stays the
one entry point; the names callers import from `serving.store` are re-exported.
Imports run one way: schema <- audit, dispatch <- intake, lifecycle, export <- this module; series <- schema.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from features.settings import settings
from serving.db import create_schema, make_engine
from serving.policy import GRADES, Policy
from serving.store.audit import AuditLog, _entry_hash, verify_store
from serving.store.dispatch import WebhookDispatch
from serving.store.export import FeedbackExport
from serving.store.intake import Intake
from serving.store.lifecycle import Lifecycle
from serving.store.schema import (
    ACTION_ZH,
    CORRECTABLE_LABELS,
    GENESIS,
    OUTCOMES,
    STATUS_ZH,
    STATUSES,
    SYSTEM_ACTOR,
    AuditEntry,
    AuditReport,
    Escalation,
    IllegalTransition,
    SilenceRecord,
    StoreError,
    UpsertResult,
    WarningNotFound,
    WarningRecord,
    _refuse_nul,
    audit_head_table,
    audit_table,
    metadata,
    silences_table,
    warnings_table,
)
from serving.store.sealing import AnchorLog, AuditKeys, anchor_path, load_keys, store_name
from serving.store.series import SeriesStore, clusters_table, series_table
from serving.webhooks import WebhookDispatcher

__all__ = [
    "WarningStore",
    # re-exported: the records, constants, errors and tables callers import from serving.store
    "ACTION_ZH", "CORRECTABLE_LABELS", "GENESIS", "OUTCOMES", "STATUSES", "STATUS_ZH", "SYSTEM_ACTOR",
    "AuditEntry", "AuditReport", "Escalation", "SilenceRecord", "UpsertResult", "WarningRecord",
    "IllegalTransition", "StoreError", "WarningNotFound",
    "audit_head_table", "audit_table", "metadata", "silences_table", "warnings_table", "_entry_hash",
    "AnchorLog", "AuditKeys", "audit_keys", "anchors_for", "verify_store",
    "clusters_table", "series_table",
]


def audit_keys(*, create: bool = True) -> AuditKeys | None:
    """The audit key ring from settings (LOSSGUARD_AUDIT_KEYS or the key file, created on first use when
    `create`)."""
    return load_keys(settings.audit_keys, settings.audit_key_file, create=create)


def anchors_for(url: str, path: str | None = None) -> AnchorLog:
    """The anchor file of the store at `url` (settings.audit_anchor_dir), or the one given."""
    return AnchorLog(path or anchor_path(url, settings.audit_anchor_dir), store_name(url))


class WarningStore(Intake, Lifecycle, FeedbackExport, AuditLog, WebhookDispatch, SeriesStore):
    """Warnings, silences and the audit chain in one database; safe to share across threads and processes.

    The concerns are mixins (see the module docstring); this class owns what they share: the engine, the policy,
    the webhook dispatcher, the tables' creation and reading warnings back."""

    def __init__(self, url: str | None = None, *, policy: Policy | None = None,
                 webhooks: WebhookDispatcher | None = None, keys: AuditKeys | None = None,
                 anchors: AnchorLog | None = None):
        self.url = url or settings.warnings_db
        self._policy = policy
        self.webhooks = webhooks
        self.audit_keys = keys or audit_keys(create=True)
        self.anchors = anchors or anchors_for(self.url)
        self.engine = make_engine(self.url)
        if self.engine.dialect.name == "postgresql":
            sa.event.listen(self.engine, "before_cursor_execute", _refuse_nul)
        self._inhibit_queries: dict[tuple, sa.Select] = {}
        with self._write_connection() as conn, conn.begin():
            create_schema(conn, metadata)
            if conn.execute(sa.select(audit_head_table.c.id)).first() is None:
                conn.execute(sa.insert(audit_head_table).values(id=1, seq=0, hash=GENESIS))
        self.seal()  # a chain from before keys (or before a rotation) is signed and anchored from now on

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = Policy.load()
        return self._policy

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

    def close(self) -> None:
        self.engine.dispose()
        if getattr(self, "_aggregate_engine", None) is not None:
            self._aggregate_engine.dispose()
