"""Backups (buyer's checklist, #16): `lossguard store backup` while writers commit, `lossguard store restore` into a
fresh store, the restored audit chain verifies and every warning acknowledged before the backup began is there.
SQLite (online backup API) and PostgreSQL (pg_dump / pg_restore on the throwaway cluster)."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore, warnings_table

T0 = datetime(2025, 6, 1, 9, 0)


def cli(*args: str):
    from cli import app

    return CliRunner().invoke(app, list(args))


def file(store: WarningStore, subject: str, policy: Policy):
    event = RiskInput(subject=subject, event_kind="post", text="这个文案太离谱了", channel="weibo", internal=False,
                      sentiment_label="neg", p_neg=0.9, loss_type="reputation", function="marketing",
                      department_id="M11", velocity_per_hour=150)
    return store.upsert_from_decision(evaluate(event, policy), event, None).record


@pytest.fixture
def fresh_target(db_url, tmp_path, request):
    """Where the backup is restored to: a new SQLite file, or a new empty database on the same cluster."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'warnings.db'}"
        return
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"r_{uuid.uuid4().hex[:12]}"
    cluster.admin(f'CREATE DATABASE "{name}"')
    yield cluster.url(name)
    cluster.admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_backup_under_write_load_restores_every_acknowledged_warning(db_url, fresh_target, tmp_path):
    policy = Policy.load()
    store = WarningStore(db_url, policy=policy)
    acknowledged: list[int] = []
    progress, stop, errors = threading.Condition(), threading.Event(), []

    def write(worker: int) -> None:
        k = 0
        try:
            while not stop.is_set():
                warning = file(store, f"post:{worker}-{k}", policy)
                store.acknowledge(warning.id, f"worker-{worker}")
                with progress:
                    acknowledged.append(warning.id)
                    progress.notify_all()
                k += 1
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)
            with progress:
                progress.notify_all()

    def wait_for(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: errors or len(acknowledged) >= count, timeout=120), "writers stalled"

    pool = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in pool:
        thread.start()
    try:
        wait_for(15)
        with progress:
            before = set(acknowledged)
        backup = tmp_path / "lossguard.backup"
        done = cli("store", "backup", "--to", str(backup), "--db", db_url)
        assert done.exit_code == 0, done.output
        wait_for(len(before) + 10)  # the writers went on during and after the backup
    finally:
        stop.set()
        for thread in pool:
            thread.join()
    assert errors == []
    assert backup.stat().st_mode & 0o077 == 0
    restored = cli("store", "restore", str(backup), "--db", fresh_target)
    assert restored.exit_code == 0 and "审计链完整" in restored.output, restored.output
    verified = cli("audit", "verify", "--db", fresh_target)
    assert verified.exit_code == 0, verified.output
    engine = sa.create_engine(fresh_target)
    with engine.connect() as conn:
        kept = {row.id for row in conn.execute(sa.select(warnings_table.c.id)
                                               .where(warnings_table.c.status == "acknowledged"))}
    engine.dispose()
    assert before <= kept, f"lost acknowledged warnings: {sorted(before - kept)[:10]}"
    store.close()


def test_restore_writes_only_into_a_fresh_store(db_url, tmp_path):
    store = WarningStore(db_url, policy=Policy.load())
    file(store, "post:1", store.policy)
    backup = tmp_path / "b.backup"
    assert cli("store", "backup", "--to", str(backup), "--db", db_url).exit_code == 0
    again = cli("store", "backup", "--to", str(backup), "--db", db_url)
    assert again.exit_code == 2 and "已存在" in again.output
    refused = cli("store", "restore", str(backup), "--db", db_url)  # the live store is not fresh
    assert refused.exit_code == 2 and ("已存在" in refused.output or "已有表" in refused.output)
    assert len(store.list()) == 1 and store.verify_audit().ok
    store.close()
    if db_url.startswith("sqlite"):
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database")
        result = cli("store", "restore", str(junk), "--db", f"sqlite:///{tmp_path / 'x.db'}")
        assert result.exit_code == 2 and "不是 Lossguard 预警库的备份" in result.output
