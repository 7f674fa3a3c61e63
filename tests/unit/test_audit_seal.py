"""The audit chain against someone who can write the database (#16): signed entries, anchors outside the database,
key rotation, stores from before keys, and a verifier that only reads. Every test runs on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import json
import secrets
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore, _entry_hash, audit_head_table, audit_table, warnings_table

T0 = datetime(2025, 6, 1, 9, 0)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def risk(subject: str) -> RiskInput:
    return RiskInput(subject=subject, event_kind="post", text="这个文案太离谱了", channel="weibo", internal=False,
                     sentiment_label="neg", p_neg=0.9, loss_type="reputation", function="marketing",
                     department_id="M11", employee_id="E112", velocity_per_hour=150)


def file(store: WarningStore, subject: str, policy: Policy, now: datetime = T0):
    event = risk(subject)
    return store.upsert_from_decision(evaluate(event, policy), event, None, now=now).record


def raw(store: WarningStore, *statements) -> None:
    with store.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def ring(*keys: bytes):
    from serving.store.sealing import AuditKeys, key_id

    return AuditKeys(tuple((key_id(k), k) for k in keys))


def key_id(key: bytes) -> str:
    from serving.store.sealing import key_id

    return key_id(key)


def anchors_for(url: str, path: str):
    from serving.store import anchors_for

    return anchors_for(url, path)


@pytest.fixture
def audited(db_url, policy):
    """Three warnings, two transitions: audit seq 1..5 (warning 2 resolved at #5)."""
    store = WarningStore(db_url, policy=policy)
    for subject in ("post:1", "post:2", "post:3"):
        file(store, subject, policy)
    store.acknowledge(2, "E111")
    store.resolve(2, "E111", "true_alarm", notes="已处理")
    assert store.verify_audit().ok and store.verify_audit().checked == 5
    yield store
    store.close()


def rows(store: WarningStore) -> list:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(audit_table).order_by(audit_table.c.seq)))


# ---- 2. a database writer cannot rewrite the chain ------------------------------------------------------------
def test_a_rewritten_row_with_recomputed_hashes_and_head_is_detected(audited):
    """The probe: edit a warning and its last audit row, recompute the hash with the project's own function,
    move the head. Without a key the forger cannot make a valid entry."""
    last = rows(audited)[-1]
    after = {**json.loads(last.after), "outcome": "false_alarm"}
    after_text = json.dumps(after, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = _entry_hash(last.prev_hash, last.seq, last.entity, last.entity_id, last.action, last.actor, last.at,
                         last.before, after_text)
    raw(audited, sa.update(warnings_table).where(warnings_table.c.id == 2).values(outcome="false_alarm"),
        sa.update(audit_table).where(audit_table.c.seq == last.seq).values(after=after_text, hash=digest),
        sa.update(audit_head_table).where(audit_head_table.c.id == 1).values(hash=digest))
    report = audited.verify_audit()
    assert not report.ok and f"审计记录 #{last.seq}" in report.problem


def test_an_unsigned_or_wrongly_signed_entry_is_named(audited):
    last = rows(audited)[-1]
    for key_id_value, key in ((None, None), (last.key_id, secrets.token_bytes(32))):
        digest = _entry_hash(last.prev_hash, last.seq, last.entity, last.entity_id, "resolve", "intruder", last.at,
                             last.before, last.after, key, key_id_value)
        raw(audited, sa.update(audit_table).where(audit_table.c.seq == last.seq)
            .values(actor="intruder", hash=digest, key_id=key_id_value),
            sa.update(audit_head_table).where(audit_head_table.c.id == 1).values(hash=digest))
        problem = audited.verify_audit().problem
        assert f"审计记录 #{last.seq}" in problem and ("没有审计密钥签名" if key is None else "被修改") in problem


def test_a_chain_rolled_back_with_its_head_is_caught_by_the_anchor(audited, policy):
    head = rows(audited)[-1]
    file(audited, "post:4", policy)
    anchor = audited.checkpoint()
    assert anchor["seq"] == head.seq + 1 and audited.checkpoint() is None  # nothing new: no second anchor
    raw(audited, sa.delete(audit_table).where(audit_table.c.seq > head.seq),  # back to before post:4
        sa.delete(warnings_table).where(warnings_table.c.id == 4),
        sa.update(audit_head_table).where(audit_head_table.c.id == 1).values(seq=head.seq, hash=head.hash))
    report = audited.verify_audit()
    assert not report.ok and f"审计记录 #{head.seq + 1}" in report.problem and "回滚" in report.problem


def test_anchor_file_edits_are_detected(audited):
    audited.checkpoint()
    path = audited.anchors.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert audited.verify_audit().anchored == 5
    anchor = json.loads(path.read_text())
    path.write_text(json.dumps({**anchor, "seq": 4}) + "\n")
    assert "签名无效" in audited.verify_audit().problem


def test_keys_rotate_old_entries_verify_and_an_old_key_cannot_append(db_url, policy, tmp_path):
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    anchors = anchors_for(db_url, str(tmp_path / "anchors.jsonl"))
    first = WarningStore(db_url, policy=policy, keys=ring(old), anchors=anchors)
    file(first, "post:1", policy)
    first.close()
    rotated = WarningStore(db_url, policy=policy, keys=ring(old, new), anchors=anchors)  # seals at once
    entries = rows(rotated)
    assert [(e.action, e.key_id) for e in entries] == [("open", key_id(old)), ("rekey", key_id(new))]
    file(rotated, "post:2", policy)
    report = rotated.verify_audit()
    assert report.ok and report.checked == 3 and report.anchored == 2
    only_new = WarningStore.__new__(WarningStore)  # a verifier that lost the old key
    only_new.engine, only_new.audit_keys, only_new.anchors = rotated.engine, ring(new), anchors
    assert f"密钥 {key_id(old)}" in only_new.verify_audit().problem
    last = rows(rotated)[-1]  # someone holding only the retired key appends an entry
    digest = _entry_hash(last.hash, last.seq + 1, "warning", 2, "resolve", "x", T0, "{}", "{}", old, key_id(old))
    raw(rotated, sa.insert(audit_table).values(seq=last.seq + 1, entity="warning", entity_id=2, action="resolve",
                                               actor="x", at=T0, before="{}", after="{}", prev_hash=last.hash,
                                               hash=digest, key_id=key_id(old)),
        sa.update(audit_head_table).where(audit_head_table.c.id == 1).values(seq=last.seq + 1, hash=digest))
    assert "已轮换掉的旧密钥" in rotated.verify_audit().problem
    rotated.close()


def test_a_store_from_before_keys_keeps_verifying_and_is_sealed(db_url, policy, tmp_path):
    """Tables and chain as an older release left them (no key_id, SHA-256 entries): verified as they are, then
    the next start adds the column, signs a rekey entry over them and anchors it, so they cannot be rewritten."""
    anchors = anchors_for(db_url, str(tmp_path / "anchors.jsonl"))
    store = WarningStore(db_url, policy=policy, anchors=anchors)
    for subject in ("post:1", "post:2"):
        file(store, subject, policy)
    previous, legacy = "0" * 64, []
    for row in rows(store):  # rewrite as the old release wrote it
        digest = _entry_hash(previous, row.seq, row.entity, row.entity_id, row.action, row.actor, row.at,
                             row.before, row.after)
        legacy.append(sa.update(audit_table).where(audit_table.c.seq == row.seq)
                      .values(prev_hash=previous, hash=digest))
        previous = digest
    raw(store, *legacy, sa.update(audit_head_table).values(hash=previous))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log DROP COLUMN key_id")
        conn.exec_driver_sql("ALTER TABLE audit_head DROP COLUMN key_id")
    store.close()
    from serving.store import verify_store

    before = verify_store(db_url, ring(secrets.token_bytes(32)), anchors)
    assert before.ok and before.unkeyed == 2
    sealed = WarningStore(db_url, policy=policy, anchors=anchors)
    report = sealed.verify_audit()
    assert report.ok and report.unkeyed == 2 and report.checked == 3 and report.anchored == 3
    first = rows(sealed)[0]  # rewrite a legacy entry and recompute the legacy part: the rekey entry shows it
    forged_after = first.after.replace("post:1", "post:9")
    digest = _entry_hash(first.prev_hash, 1, first.entity, first.entity_id, first.action, first.actor, first.at,
                         first.before, forged_after)
    second = rows(sealed)[1]
    digest2 = _entry_hash(digest, 2, second.entity, second.entity_id, second.action, second.actor, second.at,
                          second.before, second.after)
    raw(sealed, sa.update(audit_table).where(audit_table.c.seq == 1).values(after=forged_after, hash=digest),
        sa.update(audit_table).where(audit_table.c.seq == 2).values(prev_hash=digest, hash=digest2),
        sa.update(audit_table).where(audit_table.c.seq == 3).values(prev_hash=digest2))
    assert "审计记录 #3" in sealed.verify_audit().problem
    sealed.close()


# ---- 3. verify only reads, and refuses to call nothing "intact" -----------------------------------------------
def verify(db_url: str):
    from cli import app

    return CliRunner().invoke(app, ["audit", "verify", "--db", db_url])


def test_verify_of_a_path_that_does_not_exist_fails_and_creates_nothing(tmp_path, postgres_or_none):
    typo = tmp_path / "warnigns.db"
    result = verify(f"sqlite:///{typo}")
    assert result.exit_code == 3 and "不存在" in result.output and not typo.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    result = verify(f"sqlite:///{empty}")
    assert result.exit_code == 3 and "不是 Lossguard 预警库" in result.output and empty.stat().st_size == 0
    if postgres_or_none is not None:
        missing = postgres_or_none.url("no_such_database")
        result = verify(missing)
        assert result.exit_code == 3 and "不存在" in result.output


@pytest.fixture
def postgres_or_none(request):
    try:
        return request.getfixturevalue("postgres_cluster")
    except pytest.skip.Exception:
        return None


def test_verify_does_not_repair_a_deleted_head_or_an_emptied_chain(audited, db_url):
    raw(audited, sa.delete(audit_head_table))
    result = verify(db_url)
    assert result.exit_code == 2 and "链头记录缺失" in result.output
    with audited.engine.connect() as conn:
        assert conn.execute(sa.select(audit_head_table)).first() is None  # still missing: the verifier wrote nothing
    raw(audited, sa.delete(audit_table))
    result = verify(db_url)
    assert result.exit_code == 2 and "审计链为空" in result.output


def test_verify_reads_a_live_store_without_writing_to_it(audited, db_url):
    path = Path(sa.make_url(db_url).database or "")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    result = verify(db_url)
    assert result.exit_code == 0 and "5 条记录校验通过" in result.output
    if digest is not None:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# ---- 9. the database file is the owner's alone -----------------------------------------------------------------
def test_a_new_sqlite_store_is_created_readable_by_its_owner_only(tmp_path, policy):
    store = WarningStore(f"sqlite:///{tmp_path / 'fresh' / 'warnings.db'}", policy=policy)
    file(store, "post:1", policy, now=T0 + timedelta(minutes=1))
    store.close()
    for name in ("warnings.db",):
        assert stat.S_IMODE((tmp_path / "fresh" / name).stat().st_mode) == 0o600
