"""The audit chain: every change to a warning or silence is an entry signed over the one before it.

Each entry is HMAC-SHA256 signed with the audit key (serving.store.sealing: a key outside the database, with a
key id per entry so keys rotate), so someone who can write the database but not read the key cannot rewrite an
entry and recompute the rest. Entries from before any key stay SHA-256 (`_entry_hash` without a key) and are
covered by the keyed entry that follows them. The head row (last seq and hash) anchors the chain's end inside
the database, so a deleted tail shows, and it is the lock every writer takes first, so the chain stays linear
however many writers (threads, processes, replicas) append at once; signed checkpoints of the head outside the
database (anchors) show a tail cut off together with the head. `verify_audit` walks the chain, checks it against
the anchors and compares each warning/silence with its last audited state, so an edited, inserted or deleted
entry, a rolled-back chain, or a row edited behind the log's back, is named.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from features.errors import NotFound, Unavailable
from serving.db import read_only_engine, write_connection
from serving.store.schema import (
    _ENTITY_TABLES,
    ACTION_ZH,
    GENESIS,
    SYSTEM_ACTOR,
    AuditEntry,
    AuditReport,
    _audited,
    _canonical,
    _utc,
    audit_head_table,
    audit_table,
)
from serving.store.sealing import AnchorLog, AuditKeys

REKEY_ENTITY = "audit"  # entity of the entries that start signing with a (new) key


def _entry_hash(prev_hash: str, seq: int, entity: str, entity_id: int, action: str, actor: str, at: datetime,
                before: str, after: str, key: bytes | None = None, key_id: str | None = None) -> str:
    """SHA-256 of the entry (the chain before any key), or its HMAC-SHA256 under `key`, which covers the key id."""
    fields = [prev_hash, seq, entity, entity_id, action, actor, at.isoformat(), before, after]
    if key is None:
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    payload = json.dumps([*fields, key_id], ensure_ascii=False, separators=(",", ":")).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Chain:
    """The audit chain's end inside one write transaction."""

    def __init__(self, conn: sa.Connection, seq: int, last_hash: str, keys: AuditKeys):
        self.conn, self.seq, self.hash = conn, seq, last_hash
        self.key_id, self._key = keys.active

    def append(self, entity: str, entity_id: int, action: str, actor: str, at: datetime,
               before: dict | None, after: dict | None) -> None:
        seq = self.seq + 1
        before_text, after_text = _canonical(before), _canonical(after)
        digest = _entry_hash(self.hash, seq, entity, entity_id, action, actor, at, before_text, after_text,
                             self._key, self.key_id)
        self.conn.execute(sa.insert(audit_table), dict(  # parameters apart: the compiled INSERT is reused
            seq=seq, entity=entity, entity_id=entity_id, action=action, actor=actor, at=at,
            before=before_text, after=after_text, prev_hash=self.hash, hash=digest, key_id=self.key_id))
        self.seq, self.hash = seq, digest


class AuditLog:
    """The chain as seen by the store: serialised write transactions that append to it, and reading it back.

    A mixin of WarningStore: it expects `self.engine`, `self.url`, `self.audit_keys` (AuditKeys) and
    `self.anchors` (AnchorLog); every other concern writes through `_writing`.
    """

    def _write_connection(self) -> sa.Connection:
        return write_connection(self.engine)

    @contextmanager
    def _writing(self) -> Iterator[_Chain]:
        """One serialised write transaction; the audit head is locked first and advanced at the end. The first
        write under a key the chain has not used yet appends a `rekey` entry signed with it."""
        with self._write_connection() as conn, conn.begin():
            head = conn.execute(sa.select(audit_head_table).where(audit_head_table.c.id == 1)
                                .with_for_update()).one()
            chain = _Chain(conn, head.seq, head.hash, self.audit_keys)
            if head.seq and head.key_id != chain.key_id:
                self._rekey(chain, head.key_id)
            yield chain
            if chain.seq != head.seq:
                conn.execute(sa.update(audit_head_table).where(audit_head_table.c.id == 1)
                             .values(seq=chain.seq, hash=chain.hash, key_id=chain.key_id))

    def _rekey(self, chain: _Chain, previous: str | None) -> None:
        keys = self.audit_keys
        if previous is not None and not 0 <= keys.rank(previous) < keys.rank(chain.key_id):
            raise Unavailable(f"审计链已由密钥 {previous} 签名，本进程的密钥环（最新 {chain.key_id}）没有它或比它旧："
                              "所有副本应使用同一组 LOSSGUARD_AUDIT_KEYS")
        now = _utc(None)
        chain.append(REKEY_ENTITY, 0, "rekey", SYSTEM_ACTOR, now, {"key_id": previous}, {"key_id": chain.key_id})

    def seal(self) -> bool:
        """Start signing with the active key now (a store from before keys, or after a rotation) and anchor the
        result, rather than at the next change. True when something was written."""
        with self.engine.connect() as conn:
            head = conn.execute(sa.select(audit_head_table).where(audit_head_table.c.id == 1)).one()
        if not head.seq or head.key_id == self.audit_keys.active[0]:
            return False
        with self._writing():
            pass
        self.checkpoint()
        return True

    def checkpoint(self, now: datetime | None = None) -> dict | None:
        """Append a signed anchor of the chain head outside the database, unless the last one already holds it."""
        with self.engine.connect() as conn:
            head = conn.execute(sa.select(audit_head_table).where(audit_head_table.c.id == 1)).one()
        last = self.anchors.last()
        if not head.seq or (last is not None and (last.get("seq"), last.get("hash")) == (head.seq, head.hash)):
            return None
        return self.anchors.append(head.seq, head.hash, self.audit_keys, _utc(now))

    def audit_entries(self, warning_id: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_table).order_by(audit_table.c.seq)
        if warning_id is not None:
            query = query.where(audit_table.c.entity == "warning", audit_table.c.entity_id == warning_id)
        with self.engine.connect() as conn:
            return [AuditEntry(row.seq, row.entity, row.entity_id, row.action, row.actor, row.at,
                               json.loads(row.before), json.loads(row.after), row.hash)
                    for row in conn.execute(query)]

    def verify_audit(self) -> AuditReport:
        """Walk the chain, compare its end with the head and the anchors, and every warning/silence with its last
        audited state."""
        return _verify_engine(self.engine, self.audit_keys, self.anchors)


def verify_store(url: str, keys: AuditKeys | None, anchors: AnchorLog) -> AuditReport:
    """`lossguard audit verify`: the same check on a database opened read-only. It creates nothing: a missing
    file or database is NotFound, a database without the store's tables is NotFound (none at all) or tampered
    (some missing)."""
    engine = read_only_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        wanted = {audit_table.name, audit_head_table.name, *(t.name for t in _ENTITY_TABLES.values())}
        if not tables & wanted:
            raise NotFound(f"{url.split('@')[-1]} 不是 Lossguard 预警库（没有 {', '.join(sorted(wanted))} 表）")
        if missing := sorted(wanted - tables):
            return AuditReport(False, 0, f"缺少表 {', '.join(missing)}（被删除）")
        return _verify_engine(engine, keys, anchors)
    finally:
        engine.dispose()


def _verify_engine(engine: sa.Engine, keys: AuditKeys | None, anchors: AnchorLog) -> AuditReport:
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":  # READ COMMITTED (Postgres' default) snapshots each statement anew
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():  # one snapshot for the whole check
            return _verify(conn, keys, anchors)


def _verify(conn: sa.Connection, keys: AuditKeys | None, anchors: AnchorLog) -> AuditReport:
    checked, previous, unkeyed, rank = 0, GENESIS, 0, -1
    last_state: dict[tuple[str, int], tuple[int, str]] = {}  # (entity, id) -> (seq, digest of its after-state)
    hashes: dict[int, str] = {}
    has_key_id = "key_id" in {c["name"] for c in sa.inspect(conn).get_columns(audit_table.name)}
    columns = [c for c in audit_table.columns if has_key_id or c.name != "key_id"]

    def broken(problem: str) -> AuditReport:
        return AuditReport(False, checked, problem, unkeyed)

    for row in conn.execute(sa.select(*columns).order_by(audit_table.c.seq)):
        action = ACTION_ZH.get(row.action, row.action)
        what = f"审计记录 #{row.seq}（{_entity_zh(row.entity, row.entity_id)}的{action}）"
        if row.seq != checked + 1:
            missing = f"#{checked + 1}" if row.seq == checked + 2 else f"#{checked + 1}–#{row.seq - 1}"
            return broken(f"审计记录 {missing} 缺失（被删除），链在 {what} 处断开")
        if row.prev_hash != previous:
            return broken(f"{what} 的前序哈希与上一条记录不符（上一条被改动或被替换）")
        kid = row.key_id if has_key_id else None
        if kid is None:
            if rank >= 0:
                return broken(f"{what} 没有审计密钥签名，却排在已签名的记录之后（伪造或改写）")
            key, unkeyed = None, unkeyed + 1
        else:
            key = keys.get(kid) if keys is not None else None
            if key is None:
                return broken(f"{what} 由密钥 {kid} 签名，但校验方没有该密钥（缺少密钥文件/LOSSGUARD_AUDIT_KEYS，"
                              "或记录被伪造）")
            if keys.rank(kid) < rank:
                return broken(f"{what} 使用了已轮换掉的旧密钥 {kid}（伪造）")
            rank = keys.rank(kid)
        digest = _entry_hash(row.prev_hash, row.seq, row.entity, row.entity_id, row.action, row.actor, row.at,
                             row.before, row.after, key, kid)
        if not hmac.compare_digest(digest, row.hash):
            return broken(f"{what} 的内容与哈希不符（该记录被修改或伪造插入）")
        previous, checked = row.hash, checked + 1
        hashes[row.seq] = row.hash
        last_state[(row.entity, row.entity_id)] = (row.seq, _digest(row.after))

    head = conn.execute(sa.select(audit_head_table.c.seq, audit_head_table.c.hash)
                        .where(audit_head_table.c.id == 1)).first()
    if head is None and checked:
        return broken("审计链头记录缺失（被删除）")
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    if head_seq > checked:
        return broken(f"审计记录 #{checked + 1}–#{head_seq} 缺失（末尾记录被删除）")
    if head_seq < checked:
        return broken(f"审计记录 #{head_seq + 1} 起不在链头登记范围内（被追加插入）")
    if head_hash != previous:
        return broken(f"审计记录 #{checked} 与链头登记的哈希不符（末尾记录被替换）")

    latest = None
    entries = anchors.read()
    for anchor in entries:
        if problem := anchors.problem(anchor, keys):
            return broken(problem)
        seq, when = anchor["seq"], anchor["at"]
        if seq > checked:
            return broken(f"{when} 的锚点记录了审计记录 #{seq}，库中只到 #{checked}（末尾被删除或整库被回滚）")
        if hashes.get(seq) != anchor["hash"]:
            return broken(f"审计记录 #{seq} 与 {when} 的锚点不符（链被改写）")
        latest = seq if latest is None else max(latest, seq)

    for entity, table in _ENTITY_TABLES.items():
        present = set()
        for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings():
            name = _entity_zh(entity, row["id"])
            present.add(row["id"])
            if (entity, row["id"]) not in last_state:
                if not checked:
                    return broken(f"审计链为空，但数据表中有{name}等记录（审计记录被整体删除，或数据绕过审计写入）")
                return broken(f"{name}没有任何审计记录（绕过审计写入）")
            seq, audited = last_state[(entity, row["id"])]
            if audited != _digest(_canonical(_audited(dict(row)))):
                return broken(f"{name}的当前内容与审计记录 #{seq} 不符（数据表被直接修改）")
        for (kind, entity_id), (seq, _) in sorted(last_state.items()):
            if kind == entity and entity_id not in present:
                return broken(f"{_entity_zh(entity, entity_id)}已从数据表中删除（最后审计记录 #{seq}）")
    return AuditReport(True, checked, None, unkeyed, latest, len(entries))


def _entity_zh(entity: str, entity_id: int) -> str:
    if entity == REKEY_ENTITY:
        return "审计链"
    return f"{'预警' if entity == 'warning' else '静默规则'} #{entity_id} "
