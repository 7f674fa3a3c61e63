"""The audit chain: every change to a warning or silence is an entry hashed over the one before it.

The head row (last seq and hash) anchors the chain's end, so a deleted tail shows, and it is the lock every writer
takes first, so the chain stays linear however many writers (threads, processes, replicas) append at once.
`verify_audit` walks the chain and compares each warning/silence with its last audited state, so an edited,
inserted or deleted entry, or a row edited behind the log's back, is named.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

import sqlalchemy as sa

from serving.db import write_connection
from serving.store.schema import (
    _ENTITY_TABLES,
    ACTION_ZH,
    GENESIS,
    AuditEntry,
    AuditReport,
    _audited,
    _canonical,
    audit_head_table,
    audit_table,
)


def _entry_hash(prev_hash: str, seq: int, entity: str, entity_id: int, action: str, actor: str, at: datetime,
                before: str, after: str) -> str:
    payload = json.dumps([prev_hash, seq, entity, entity_id, action, actor, at.isoformat(), before, after],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


class AuditLog:
    """The chain as seen by the store: serialised write transactions that append to it, and reading it back.

    A mixin of WarningStore: it expects `self.engine`; every other concern writes through `_writing`.
    """

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


def _entity_zh(entity: str, entity_id: int) -> str:
    return f"{'预警' if entity == 'warning' else '静默规则'} #{entity_id} "
