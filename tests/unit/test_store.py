"""Warning store: lifecycle, Alertmanager-like intake, escalation, tamper-evident audit, concurrency, webhooks."""
from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from serving.owners import OrgChart, resolve_owners
from serving.rules import DEFAULT_POLICY_PATH, Policy, RiskInput, evaluate
from serving.store import (
    GENESIS,
    IllegalTransition,
    StoreError,
    WarningNotFound,
    WarningStore,
    _entry_hash,
    audit_table,
    warnings_table,
)
from serving.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    verify_signature,
)

T0 = datetime(2025, 6, 1, 9, 0)
SECRET = "test-secret"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


@pytest.fixture(scope="module")
def chart() -> OrgChart:
    return OrgChart.from_frame(pd.DataFrame([
        ("C0", "星河科技", None, "E000", "management", 0),
        ("V1", "市场与客户事业群", "C0", "E100", "management", 1),
        ("M1", "市场部", "V1", "E110", "marketing", 2),
        ("M11", "内容组", "M1", "E111", "marketing", 3),
    ], columns=["unit_id", "name", "parent_id", "head_employee_id", "function", "level"]))


@pytest.fixture
def store(db_url, policy) -> WarningStore:
    store = WarningStore(db_url, policy=policy)
    yield store
    store.close()


def risk(subject="post:1", **overrides) -> RiskInput:
    values = dict(subject=subject, event_kind="post", text="这个文案太离谱了", channel="weibo", internal=False,
                  sentiment_label="neg", p_neg=0.9, loss_type="reputation", function="marketing",
                  department_id="M11", employee_id="E112", velocity_per_hour=150)  # orange by default
    values.update(overrides)
    return RiskInput(**values)


def file(store, event, policy, chart=None, now=T0):
    decision = evaluate(event, policy)
    owners = resolve_owners(decision, event, chart) if chart is not None else None
    return store.upsert_from_decision(decision, event, owners, now=now)


def raw(store, statement):
    with store.engine.begin() as conn:
        return conn.execute(statement)


# --- lifecycle ---------------------------------------------------------------------------------------------------

def test_lifecycle_is_recorded_with_actor_time_before_and_after(store, policy):
    opened = file(store, risk(), policy)
    assert opened.created and opened.notified
    warning = opened.record
    assert (warning.status, warning.grade, warning.deadline_at) == ("open", "orange", T0 + timedelta(hours=4))
    store.acknowledge(warning.id, "E111", now=T0 + timedelta(minutes=5))
    store.assign(warning.id, "E111", "E110", now=T0 + timedelta(minutes=6))
    resolved = store.resolve(warning.id, "E110", "true_alarm", actual_spread=3200, notes="已在微博回应并下架文案",
                             corrected_labels={"loss_type": "culture"}, now=T0 + timedelta(hours=3))
    assert (resolved.status, resolved.outcome, resolved.actual_spread) == ("resolved", "true_alarm", 3200)
    entries = store.audit_entries(warning.id)
    assert [(e.action, e.actor) for e in entries] == [
        ("open", "system"), ("acknowledge", "E111"), ("assign", "E111"), ("resolve", "E110")]
    assert entries[1].before["status"] == "open" and entries[1].after["status"] == "acknowledged"
    assert entries[3].at == T0 + timedelta(hours=3)
    assert store.verify_audit().ok


def test_assigning_an_open_warning_records_the_acknowledgement(store, policy):
    warning = file(store, risk(), policy).record
    assigned = store.assign(warning.id, "E110", "E111", now=T0 + timedelta(minutes=1))
    assert (assigned.status, assigned.acknowledged_by, assigned.assignee) == ("assigned", "E110", "E111")


@pytest.mark.parametrize("steps, attempt, message", [
    ([], lambda s, i: s.resolve(i, "E110", "true_alarm"), "尚未确认，不能直接关闭"),
    (["ack"], lambda s, i: s.acknowledge(i, "E110"), "不能重复确认"),
    (["ack", "resolve"], lambda s, i: s.assign(i, "E110", "E111"), "已关闭，不能再指派"),
    (["ack", "resolve"], lambda s, i: s.resolve(i, "E110", "false_alarm"), "不能重复关闭"),
])
def test_illegal_transitions_are_refused_and_nothing_changes(store, policy, steps, attempt, message):
    warning_id = file(store, risk(), policy).record.id
    for step in steps:
        if step == "ack":
            store.acknowledge(warning_id, "E111")
        else:
            store.resolve(warning_id, "E111", "true_alarm", notes="处理完毕")
    before, entries = store.get(warning_id), len(store.audit_entries())
    with pytest.raises(IllegalTransition, match=message):
        attempt(store, warning_id)
    assert store.get(warning_id) == before and len(store.audit_entries()) == entries


@pytest.mark.parametrize("call, message", [
    (lambda s, i: s.resolve(i, "E1", "maybe"), "outcome: 取值 'maybe'"),
    (lambda s, i: s.resolve(i, "E1", "true_alarm", actual_spread=-3), "actual_spread: 应为非负整数"),
    (lambda s, i: s.resolve(i, "E1", "true_alarm", corrected_labels={"grade": "red"}), "corrected_labels.grade"),
    (lambda s, i: s.resolve(i, "E1", "true_alarm", corrected_labels={"loss_type": "money"}),
     "corrected_labels.loss_type: 取值 'money'"),
    (lambda s, i: s.acknowledge(i, " "), "actor: 操作人不能为空"),
    (lambda s, i: s.assign(i, "E1", ""), "assignee: 指派对象不能为空"),
])
def test_bad_requests_name_the_field(store, policy, call, message):
    warning_id = file(store, risk(), policy).record.id
    with pytest.raises(StoreError, match=message):
        call(store, warning_id)


def test_unknown_warning_is_not_found(store):
    with pytest.raises(WarningNotFound, match="预警 #42 不存在"):
        store.get(42)
    with pytest.raises(WarningNotFound, match="预警 #43 不存在"):
        store.acknowledge(43, "E1")


def test_the_largest_spread_the_api_accepts_is_stored(store, policy):
    warning = file(store, risk(), policy).record
    store.acknowledge(warning.id, "E111")
    store.resolve(warning.id, "E111", "true_alarm", actual_spread=10_000_000_000)  # ResolveIn allows up to 1e10
    assert store.get(warning.id).actual_spread == 10_000_000_000 and store.verify_audit().ok


def test_a_table_from_before_bigint_is_widened_with_its_rows_kept(db_url, policy):
    """A Postgres table created when actual_spread was INTEGER (32-bit) is widened in place on the next start."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's INTEGER is 64-bit: nothing to widen")
    first = WarningStore(db_url, policy=policy)
    kept = first.acknowledge(file(first, risk(), policy).record.id, "E111")
    with first.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE warnings ALTER COLUMN actual_spread TYPE INTEGER")
    with pytest.raises(Exception, match="out of range"):  # what the old table did
        first.resolve(kept.id, "E111", "true_alarm", actual_spread=10_000_000_000)
    first.close()
    store = WarningStore(db_url, policy=policy)  # the next release starts on the old table
    assert store.get(kept.id).status == "acknowledged"
    store.resolve(kept.id, "E111", "true_alarm", actual_spread=10_000_000_000)
    assert store.get(kept.id).actual_spread == 10_000_000_000 and store.verify_audit().ok
    store.close()


def test_aware_times_are_stored_as_utc(store, policy):
    """Times with a zone (Beijing here) are stored as naive UTC whatever the database server's own zone is."""
    beijing = timezone(timedelta(hours=8))
    warning = file(store, risk(), policy, now=datetime(2025, 6, 1, 17, 0, tzinfo=beijing)).record
    assert (store.get(warning.id).created_at, store.get(warning.id).deadline_at) == (T0, T0 + timedelta(hours=4))
    assert store.escalate_overdue(datetime(2025, 6, 1, 16, 59, tzinfo=beijing) + timedelta(hours=4)) == []
    assert len(store.escalate_overdue(T0.replace(tzinfo=UTC) + timedelta(hours=4))) == 1


def test_nul_in_text_is_refused_by_name_on_postgres_and_kept_on_sqlite(store, policy):
    """PostgreSQL cannot store NUL in text, which the API lets through: there it is a refusal naming the field with
    nothing written (not a 500); SQLite keeps the text as it came."""
    event = risk(text="这个文案\x00太离谱了")
    if store.engine.dialect.name == "sqlite":
        assert store.get(file(store, event, policy).record.id).text == event.text
        return
    with pytest.raises(StoreError, match="text: 含有空字符"):
        file(store, event, policy)
    warning = file(store, risk(), policy).record
    store.acknowledge(warning.id, "E111")
    with pytest.raises(StoreError, match="resolution_notes: 含有空字符"):
        store.resolve(warning.id, "E111", "true_alarm", notes="已处理\x00")
    assert [w.status for w in store.list()] == ["acknowledged"] and store.verify_audit().ok


# --- grouping, inhibition, silences, re-notify -------------------------------------------------------------------

def test_events_within_the_window_update_one_warning(store, policy):
    first = file(store, risk(), policy).record
    second = file(store, risk(), policy, now=T0 + timedelta(minutes=40))
    assert not second.created and second.record.id == first.id and second.record.events_count == 2
    later = file(store, risk(), policy, now=T0 + timedelta(minutes=40 + 61))
    assert later.created and later.record.id != first.id


def test_resolved_warning_is_not_reopened_by_grouping(store, policy):
    first = file(store, risk(), policy).record
    store.acknowledge(first.id, "E111")
    store.resolve(first.id, "E111", "false_alarm")
    again = file(store, risk(), policy, now=T0 + timedelta(minutes=10))
    assert again.created and again.record.id != first.id


def test_grade_only_rises_within_a_group_and_tightens_the_deadline(store, policy):
    file(store, risk(), policy)
    worse = file(store, risk(reach_p90=60000, velocity_per_hour=900), policy, now=T0 + timedelta(minutes=10))
    assert worse.notified and worse.record.grade == "red"
    assert worse.record.deadline_at == T0 + timedelta(minutes=10, hours=1)
    calmer = file(store, risk(velocity_per_hour=150), policy, now=T0 + timedelta(minutes=20))
    assert calmer.record.grade == "red" and calmer.record.events_count == 3


def test_renotify_only_after_the_grade_interval(store, policy):
    # orange re-notifies every 120 min; events every 50 min keep the 60-min group alive
    notified = [file(store, risk(), policy, now=T0 + timedelta(minutes=50 * k)).notified for k in range(4)]
    assert notified == [True, False, False, True]
    assert store.list()[0].notify_count == 2


def test_owners_are_reminded_on_the_timer_until_someone_acknowledges(store, policy):
    warning = file(store, risk(), policy).record  # orange: re-notify every 120 min
    assert store.renotify_due(now=T0 + timedelta(minutes=119)) == []
    reminded = store.renotify_due(now=T0 + timedelta(minutes=120))
    assert [(r.id, r.notify_count, r.last_notified_at) for r in reminded] == \
           [(warning.id, 2, T0 + timedelta(minutes=120))]
    assert store.renotify_due(now=T0 + timedelta(minutes=200)) == []  # the interval counts from the reminder
    assert store.get(warning.id).notify_count == 2
    assert [e.action for e in store.audit_entries(warning.id)] == ["open", "remind"]
    store.acknowledge(warning.id, "E111", now=T0 + timedelta(minutes=230))
    assert store.renotify_due(now=T0 + timedelta(hours=10)) == []  # acknowledged: nobody is nagged
    assert store.verify_audit().ok


def test_muted_warnings_are_not_reminded(store, policy):
    red = file(store, risk(reach_p90=60000, velocity_per_hour=900), policy).record
    muted = file(store, risk(), policy, now=T0 + timedelta(hours=2)).record  # past the grouping window
    assert muted.muted_reason == "inhibited"
    assert [r.id for r in store.renotify_due(now=T0 + timedelta(hours=3))] == [red.id]


def test_open_red_inhibits_lower_warnings_on_the_same_subject(store, policy):
    red = file(store, risk(reach_p90=60000, velocity_per_hour=900), policy).record
    muted = file(store, risk(), policy, now=T0 + timedelta(hours=2))
    assert muted.created and not muted.notified
    assert (muted.record.muted_reason, muted.record.muted_by) == ("inhibited", red.id)
    elsewhere = file(store, risk(subject="post:2"), policy, now=T0 + timedelta(hours=2))
    assert elsewhere.notified and elsewhere.record.muted_reason is None
    store.acknowledge(red.id, "E110", now=T0 + timedelta(hours=3))
    store.resolve(red.id, "E110", "true_alarm", now=T0 + timedelta(hours=3))
    assert store.get(muted.record.id).muted_reason is None  # its cause is gone: see test_muting_follows_its_cause
    after = file(store, risk(), policy, now=T0 + timedelta(hours=4))
    assert after.created and after.notified and after.record.muted_reason is None
    assert [w.id for w in store.list(include_muted=False)] == \
        [after.record.id, elsewhere.record.id, muted.record.id, red.id]


def test_silence_mutes_until_it_expires(store, policy):
    silence = store.add_silence("post:*", actor="E110", reason="已知营销活动, 观察中", duration_hours=2, now=T0)
    silenced = file(store, risk(), policy, now=T0 + timedelta(minutes=30))
    assert not silenced.notified and silenced.record.muted_reason == "silenced"
    assert silenced.record.muted_by == silence.id
    not_covered = file(store, risk(subject="dept:M11", event_kind="complaint"), policy, now=T0 + timedelta(minutes=30))
    assert not_covered.notified
    expired = file(store, risk(subject="post:3"), policy, now=T0 + timedelta(hours=3))
    assert expired.notified and expired.record.muted_reason is None
    assert [s.id for s in store.silences(active_at=T0 + timedelta(hours=1))] == [silence.id]
    assert store.silences(active_at=T0 + timedelta(hours=3)) == []
    assert [e.action for e in store.audit_entries() if e.entity == "silence"] == ["silence"]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "需且只需提供一个"),
    ({"duration_hours": 1, "expires_at": T0}, "需且只需提供一个"),
    ({"expires_at": T0 - timedelta(hours=1)}, "到期时间应晚于当前时间"),
    ({"duration_hours": 1, "reason": ""}, "reason: 静默必须说明原因"),
    ({"duration_hours": 1, "loss_type": "money"}, "loss_type: 取值 'money'"),
])
def test_bad_silence_is_refused(store, kwargs, message):
    with pytest.raises(StoreError, match=message):
        store.add_silence("post:*", **{"actor": "E110", "reason": "测试", "now": T0, **kwargs})


# --- escalation --------------------------------------------------------------------------------------------------

def test_unacknowledged_warning_escalates_up_the_chain(store, policy, chart):
    waiting = file(store, risk(), policy, chart).record
    handled = file(store, risk(subject="post:2"), policy, chart).record
    store.acknowledge(handled.id, "E111", now=T0 + timedelta(minutes=30))
    assert store.escalate_overdue(T0 + timedelta(hours=3)) == []
    first = store.escalate_overdue(T0 + timedelta(hours=4))
    assert [(e.warning_id, e.level, e.escalated_to["employee_id"]) for e in first] == [(waiting.id, 1, "E111")]
    second = store.escalate_overdue(T0 + timedelta(hours=8))
    assert [(e.level, e.escalated_to["employee_id"]) for e in second] == [(2, "E110")]
    record = store.get(waiting.id)
    assert (record.escalation_level, record.escalated_to) == (2, "E110")
    assert record.deadline_at == T0 + timedelta(hours=12)
    assert [e.action for e in store.audit_entries(waiting.id)][-2:] == ["escalate", "escalate"]
    assert store.verify_audit().ok


# --- listing and feedback ----------------------------------------------------------------------------------------

def test_list_filters_by_status_grade_and_unit_subtree(store, policy, chart):
    orange = file(store, risk(), policy).record
    red = file(store, risk(subject="post:2", department_id="M1", reach_p90=60000, velocity_per_hour=900),
               policy).record
    elsewhere = file(store, risk(subject="post:3", department_id="S1"), policy).record
    store.acknowledge(orange.id, "E111")
    assert [w.id for w in store.list(status="open")] == [elsewhere.id, red.id]
    assert [w.id for w in store.list(grade=["red"])] == [red.id]
    assert [w.id for w in store.list(units=chart.subtree("M1"))] == [red.id, orange.id]
    assert [w.id for w in store.list(limit=1, offset=1)] == [red.id]
    with pytest.raises(StoreError, match="筛选条件 status: 取值 'closed'"):
        store.list(status="closed")


def test_export_feedback_holds_outcomes_and_corrected_labels(store, policy):
    kept = file(store, risk(reach_p50=900.0, reach_p90=4000.0), policy).record
    file(store, risk(subject="post:open"), policy)
    store.acknowledge(kept.id, "E111")
    store.resolve(kept.id, "E111", "false_alarm", actual_spread=120, notes="讽刺误判",
                  corrected_labels={"sentiment": "pos", "loss_type": "none"})
    feedback = store.export_feedback()
    assert feedback["warning_id"].tolist() == [kept.id]
    row = feedback.iloc[0]
    assert (row.outcome, row.actual_spread, row.reach_p90) == ("false_alarm", 120, 4000.0)
    assert (row.corrected_sentiment, row.corrected_loss_type, row.corrected_function) == ("pos", "none", None)
    assert row.text == "这个文案太离谱了"


# --- audit log: tampering is detected and named ------------------------------------------------------------------

@pytest.fixture
def audited(store, policy):
    """Three warnings with a few transitions: audit seq 1..7."""
    for subject in ("post:1", "post:2", "post:3"):
        file(store, risk(subject=subject), policy)
    store.acknowledge(1, "E111")
    store.assign(1, "E111", "E110")
    store.acknowledge(2, "E111")
    store.resolve(2, "E111", "true_alarm", notes="已处理")
    assert store.verify_audit().ok and store.verify_audit().checked == 7
    return store


def test_edited_audit_row_is_named(audited):
    raw(audited, sa.update(audit_table).where(audit_table.c.seq == 5)
        .values(actor="someone-else"))
    report = audited.verify_audit()
    assert not report.ok and report.checked == 4
    assert "审计记录 #5" in report.problem and "被修改" in report.problem


def test_edited_outcome_in_audit_json_is_named(audited):
    entry = audited.audit_entries(2)[-1]
    forged = json.dumps({**entry.after, "outcome": "false_alarm"}, ensure_ascii=False)
    raw(audited, sa.update(audit_table).where(audit_table.c.seq == entry.seq).values(after=forged))
    assert f"审计记录 #{entry.seq}" in audited.verify_audit().problem


def test_deleted_audit_rows_are_named(audited):
    raw(audited, sa.delete(audit_table).where(audit_table.c.seq == 3))
    assert "审计记录 #3 缺失（被删除）" in audited.verify_audit().problem


def test_deleted_tail_is_detected_through_the_head(audited):
    raw(audited, sa.delete(audit_table).where(audit_table.c.seq == 7))
    assert "审计记录 #7–#7 缺失（末尾记录被删除）" in audited.verify_audit().problem


def test_inserted_row_with_a_valid_looking_hash_is_detected(audited):
    """Even signed with the audit key (an insider on the service host), a row appended behind the head shows."""
    last = audited.audit_entries()[-1]
    before = after = json.dumps({"status": "resolved"})
    kid, key = audited.audit_keys.active
    digest = _entry_hash(last.hash, 8, "warning", 3, "resolve", "intruder", T0, before, after, key, kid)
    raw(audited, sa.insert(audit_table).values(seq=8, entity="warning", entity_id=3, action="resolve",
                                               actor="intruder", at=T0, before=before, after=after,
                                               prev_hash=last.hash, hash=digest, key_id=kid))
    assert "审计记录 #8 起不在链头登记范围内（被追加插入）" in audited.verify_audit().problem


def test_inserted_row_in_the_middle_is_detected(audited):
    raw(audited, sa.update(audit_table).where(audit_table.c.seq >= 4).values(seq=audit_table.c.seq + 100))
    raw(audited, sa.insert(audit_table).values(seq=4, entity="warning", entity_id=1, action="assign", actor="x",
                                               at=T0, before="{}", after="{}", prev_hash=GENESIS, hash=GENESIS))
    assert "审计记录 #4" in audited.verify_audit().problem


def test_warning_edited_behind_the_log_is_named(audited):
    raw(audited, sa.update(warnings_table).where(warnings_table.c.id == 2).values(outcome="false_alarm"))
    report = audited.verify_audit()
    assert not report.ok and "预警 #2 的当前内容与审计记录 #7 不符" in report.problem


def test_deleted_warning_is_named(audited):
    raw(audited, sa.delete(warnings_table).where(warnings_table.c.id == 3))
    assert "预警 #3 已从数据表中删除" in audited.verify_audit().problem


def test_cli_audit_verify_reports_tampering(audited, db_url):
    from cli import app

    runner = CliRunner()
    good = runner.invoke(app, ["audit", "verify", "--db", db_url])
    assert good.exit_code == 0 and "7 条记录校验通过" in good.output
    raw(audited, sa.update(audit_table).where(audit_table.c.seq == 2).values(actor="x"))
    bad = runner.invoke(app, ["audit", "verify", "--db", db_url])
    assert bad.exit_code == 2 and "审计记录 #2" in bad.output


# --- concurrency -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shared_instance", [False, True], ids=["store-per-thread", "one-store-many-threads"])
def test_concurrent_writers_lose_nothing(db_url, policy, shared_instance):
    shared = WarningStore(db_url, policy=policy)  # schema first, as a deployment would
    threads, per_thread = 6, 8
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        store = shared if shared_instance else WarningStore(db_url, policy=policy)  # own engine and connections
        try:
            for k in range(per_thread):
                own = file(store, risk(subject=f"post:{worker}-{k}"), policy).record
                store.acknowledge(own.id, f"worker-{worker}")
                file(store, risk(subject="post:shared"), policy, now=T0 + timedelta(seconds=k))
        except BaseException as error:  # noqa: BLE001 - surfaced below: a thread exception would otherwise vanish
            errors.append(error)
        finally:
            if store is not shared:
                store.close()

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    grouped = shared.list(subject="post:shared")
    assert len(grouped) == 1 and grouped[0].events_count == threads * per_thread
    assert len(shared.list(status="acknowledged", limit=1000)) == threads * per_thread
    report = shared.verify_audit()
    assert report.ok and report.checked == threads * per_thread * 3
    shared.close()


def test_replicas_starting_together_on_an_empty_database(db_url, policy):
    """Replicas of the service start at once against a database nobody has created tables in: every one comes up
    (warning store and API keys), the chain starts once, and what they file right away is all there."""
    from serving.auth import KeyStore

    replicas, start, errors = 6, threading.Barrier(6), []

    def boot(replica: int) -> None:
        try:
            start.wait()
            store, keys = WarningStore(db_url, policy=policy), KeyStore(db_url)
            file(store, risk(subject=f"post:{replica}"), policy)
            keys.create(f"replica-{replica}", "hr_system")
            store.close()
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)

    pool = [threading.Thread(target=boot, args=(r,)) for r in range(replicas)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    store = WarningStore(db_url, policy=policy)
    assert len(store.list()) == replicas
    report = store.verify_audit()
    store.close()
    assert report.ok and report.checked == replicas


def test_audit_check_reads_one_snapshot_while_writers_commit(db_url, policy):
    """verify_audit reads the chain, its head and the tables in separate statements; a writer committing between
    them must not make an intact log look tampered with. The interleaving is forced, not hoped for: before each
    check the writers must have committed since the previous one (a barrier per round), and they keep committing
    while the check runs."""
    store = WarningStore(db_url, policy=policy)
    writers, rounds = 3, 30
    stop, errors = threading.Event(), []
    committed = [0]
    progress = threading.Condition()

    def write(worker: int) -> None:
        k = 0
        try:
            while not stop.is_set():
                warning = file(store, risk(subject=f"post:{worker}-{k}"), policy).record
                store.acknowledge(warning.id, f"worker-{worker}")
                k += 1
                with progress:
                    committed[0] += 1
                    progress.notify_all()
        except BaseException as error:  # noqa: BLE001 - surfaced below
            errors.append(error)
            with progress:
                progress.notify_all()

    def committed_since(seen: int) -> bool:
        with progress:
            return progress.wait_for(lambda: errors or committed[0] > seen, timeout=60)

    pool = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in pool:
        thread.start()
    reports, seen = [], 0
    try:
        for _ in range(rounds):
            assert committed_since(seen), "writers committed nothing for 60 s"
            reports.append(store.verify_audit())
            seen = committed[0]  # the next check waits for a commit after this one ended
    finally:
        stop.set()
        for thread in pool:
            thread.join()
    assert errors == []
    assert [r.problem for r in reports if not r.ok] == []
    # every round saw at least one more warning filed and acknowledged (two audit entries) than the one before
    assert reports[-1].checked - reports[0].checked >= 2 * (rounds - 1)
    store.close()


# --- webhooks ----------------------------------------------------------------------------------------------------

@pytest.fixture
def receiver():
    """A local HTTP endpoint that records requests and answers with scripted status codes (then 200)."""
    received: list[dict] = []
    script: list[int] = []
    delay = {"seconds": 0.0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay["seconds"])
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(script.pop(0) if script else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "received": received, "script": script, "delay": delay}
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_and_verifiable(receiver):
    dispatcher = WebhookDispatcher({"crm": receiver["url"] + "/crm"}, SECRET, backoff_s=0.01)
    delivery = dispatcher.send("crm", "opened", {"warning": {"id": 1, "text": "中文内容"}})
    assert dispatcher.flush(5)
    dispatcher.close()
    request = receiver["received"][0]
    assert request["path"] == "/crm"
    assert verify_signature(request["body"], request["headers"][TIMESTAMP_HEADER],
                            request["headers"][SIGNATURE_HEADER], SECRET)
    assert not verify_signature(request["body"] + b" ", request["headers"][TIMESTAMP_HEADER],
                                request["headers"][SIGNATURE_HEADER], SECRET)
    assert json.loads(request["body"])["data"]["warning"]["text"] == "中文内容"
    assert dispatcher.deliveries[-1].id == delivery.id and dispatcher.deliveries[-1].status == "delivered"


def test_webhook_retries_server_errors_but_not_refusals(receiver):
    receiver["script"].extend([500, 503])
    dispatcher = WebhookDispatcher({"crm": receiver["url"]}, SECRET, retries=3, backoff_s=0.01)
    dispatcher.send("crm", "opened", {})
    assert dispatcher.flush(5)
    assert (dispatcher.deliveries[-1].status, dispatcher.deliveries[-1].attempts) == ("delivered", 3)
    receiver["script"].append(400)
    dispatcher.send("crm", "opened", {})
    assert dispatcher.flush(5)
    dispatcher.close()
    assert (dispatcher.deliveries[-1].status, dispatcher.deliveries[-1].attempts) == ("failed", 1)
    assert len(receiver["received"]) == 4


def test_webhook_never_blocks_the_caller(receiver):
    receiver["delay"]["seconds"] = 0.5
    dispatcher = WebhookDispatcher({"lms": receiver["url"]}, SECRET)
    started = time.perf_counter()
    for _ in range(3):
        dispatcher.send("lms", "assigned", {})
    assert time.perf_counter() - started < 0.4  # one delivery alone takes 0.5 s
    assert dispatcher.send("erp", "assigned", {}) is None  # no url configured: nothing queued
    assert dispatcher.flush(10)
    dispatcher.close()
    assert len(receiver["received"]) == 3


def test_unreachable_webhook_fails_after_retries_without_raising():
    dispatcher = WebhookDispatcher({"pm": "http://127.0.0.1:9/"}, SECRET, retries=2, backoff_s=0.01, timeout_s=1)
    dispatcher.send("pm", "opened", {})
    assert dispatcher.flush(10)
    dispatcher.close()
    assert (dispatcher.deliveries[-1].status, dispatcher.deliveries[-1].attempts) == ("failed", 3)


def test_store_sends_route_webhooks_on_lifecycle_events(receiver, db_url):
    tenant = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    tenant["webhooks"].update(crm={"url": receiver["url"] + "/crm"}, lms={"url": receiver["url"] + "/lms"})
    policy = Policy.from_dict(tenant)
    dispatcher = WebhookDispatcher.from_policy(policy, SECRET, backoff_s=0.01)
    assert set(dispatcher.targets) == {"crm", "lms"}  # pm has no url: its events are not sent
    store = WarningStore(db_url, policy=policy, webhooks=dispatcher)
    warning = file(store, risk(), policy).record  # reputation → CRM on open; marketing → LMS on assign
    store.assign(warning.id, "E110", "E111", now=T0 + timedelta(hours=1))
    assert dispatcher.flush(5)
    dispatcher.close()
    store.close()
    calls = [(r["path"], r["headers"]["X-Lossguard-Event"]) for r in receiver["received"]]
    assert sorted(calls) == [("/crm", "opened"), ("/lms", "assigned")]
    lms = json.loads(next(r["body"] for r in receiver["received"] if r["path"] == "/lms"))
    assert lms["data"]["warning"]["assignee"] == "E111"
    assert [a["due_at"] for a in lms["data"]["actions"]] == [(T0 + timedelta(hours=1 + 72)).isoformat()]


# --- batched intake ----------------------------------------------------------------------------------------------

def test_batched_intake_files_like_one_by_one(db_url, tmp_path, policy):
    """The service files a batch of /assess events in one transaction; the outcome must be what filing them one
    by one gives: same warnings, grouping within the batch, same audit actions, a valid chain."""
    events = [risk("post:1"), risk("post:2", loss_type="opportunity", function="sales"),
              risk("post:1", velocity_per_hour=900), risk("post:3", loss_type="culture", function="hr")]
    batched = WarningStore(db_url, policy=policy)
    one_by_one = WarningStore(f"sqlite:///{tmp_path / 'sequential.db'}", policy=policy)
    try:
        results = batched.upsert_many([(evaluate(e, policy), e, None) for e in events], now=T0)
        for event in events:
            one_by_one.upsert_from_decision(evaluate(event, policy), event, now=T0)
        assert [r.created for r in results] == [True, True, False, True]
        assert results[2].record.id == results[0].record.id and results[2].record.events_count == 2
        def shape(store):
            return [(w.subject, w.grade, w.events_count, w.notify_count) for w in store.list()]
        assert shape(batched) == shape(one_by_one)
        assert [(e.action, e.warning_id) for e in batched.audit_entries()] == \
               [(e.action, e.warning_id) for e in one_by_one.audit_entries()]
        assert batched.verify_audit().ok
        assert [batched.get(r.record.id) for r in results[-1:]] == [results[-1].record]  # as it reads back
    finally:
        batched.close()
        one_by_one.close()


def test_a_failing_event_in_a_batch_does_not_undo_the_others(store, policy, monkeypatch):
    events = [risk("post:1"), risk("post:boom"), risk("post:3")]
    original = WarningStore._file

    def failing(self, chain, decision, event, *args):
        result = original(self, chain, decision, event, *args)  # writes its rows and audit entry first...
        if event.subject == "post:boom":
            raise RuntimeError("disk full")  # ...then fails: the savepoint must undo exactly those
        return result

    monkeypatch.setattr(WarningStore, "_file", failing)
    results = store.upsert_many([(evaluate(e, policy), e, None) for e in events], now=T0)
    assert isinstance(results[1], RuntimeError)
    assert [r.record.subject for r in (results[0], results[2])] == ["post:1", "post:3"]
    assert sorted(w.subject for w in store.list()) == ["post:1", "post:3"]
    assert len(store.audit_entries()) == 2 and store.verify_audit().ok


def test_batched_intake_refuses_a_missing_decision_before_writing(store, policy):
    with pytest.raises(StoreError, match="Decision"):
        store.upsert_many([(evaluate(risk(), policy), risk(), None), (None, risk("post:2"), None)], now=T0)
    assert store.list() == []
