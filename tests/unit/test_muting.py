"""Muting follows its cause (#16): a warning muted by a silence or by a red warning comes back when the cause ends,
a new silence or a new red warning mutes what is already open, and every change is audited. Before, a muted warning
stayed muted for good and nobody was ever told."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore

T0 = datetime(2025, 6, 1, 9, 0)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


@pytest.fixture
def store(db_url, policy):
    store = WarningStore(db_url, policy=policy)
    yield store
    store.close()


def file(store, policy, subject="post:1", now=T0, **overrides):
    values = dict(subject=subject, event_kind="post", text="这个文案太离谱了", channel="weibo", internal=False,
                  sentiment_label="neg", p_neg=0.9, loss_type="reputation", function="marketing",
                  department_id="M11", employee_id="E112", velocity_per_hour=150)  # orange
    event = RiskInput(**{**values, **overrides})
    return store.upsert_from_decision(evaluate(event, policy), event, None, now=now).record


def red(store, policy, subject="post:1", now=T0):
    return file(store, policy, subject, now, reach_p90=60000, velocity_per_hour=900)


def actions(store, warning_id):
    return [e.action for e in store.audit_entries(warning_id)]


def test_a_warning_filed_during_a_silence_comes_back_when_it_expires(store, policy):
    store.add_silence("post:*", actor="E110", reason="已知营销活动", duration_hours=2, now=T0)
    muted = file(store, policy, now=T0 + timedelta(minutes=30))
    assert muted.muted_reason == "silenced"
    assert store.refresh_mutes(T0 + timedelta(hours=1)) == []  # the silence still holds
    back = store.refresh_mutes(T0 + timedelta(hours=2, minutes=1))
    assert [w.id for w in back] == [muted.id]
    now = store.get(muted.id)
    assert now.muted_reason is None and now.last_notified_at == T0 + timedelta(hours=2, minutes=1)
    assert now.deadline_at >= T0 + timedelta(hours=6)  # a full response time from when owners are told
    assert actions(store, muted.id)[-1] == "unmute"
    assert [e.warning_id for e in store.escalate_overdue(now.deadline_at)] == [muted.id]  # no longer skipped
    assert store.verify_audit().ok


def test_a_warning_inhibited_by_a_red_one_comes_back_when_the_red_is_resolved(store, policy):
    source = red(store, policy)
    muted = file(store, policy, now=T0 + timedelta(hours=2))
    assert (muted.muted_reason, muted.muted_by) == ("inhibited", source.id)
    store.acknowledge(source.id, "E110", now=T0 + timedelta(hours=3))
    store.resolve(source.id, "E110", "true_alarm", now=T0 + timedelta(hours=3))
    assert store.get(muted.id).muted_reason is None and actions(store, muted.id)[-1] == "unmute"
    assert [w.id for w in store.renotify_due(now=T0 + timedelta(hours=30))] == [muted.id]
    assert store.verify_audit().ok


def test_a_new_silence_mutes_warnings_already_open_and_escalation_skips_them(store, policy):
    waiting = file(store, policy)
    elsewhere = file(store, policy, subject="dept:M11", event_kind="complaint")
    store.add_silence("post:*", actor="E110", reason="危机公关已介入", duration_hours=48, now=T0 + timedelta(hours=1))
    assert store.get(waiting.id).muted_reason == "silenced" and store.get(elsewhere.id).muted_reason is None
    assert actions(store, waiting.id)[-1] == "mute"
    assert [e.warning_id for e in store.escalate_overdue(T0 + timedelta(hours=5))] == [elsewhere.id]
    assert store.verify_audit().ok


def test_a_new_red_warning_mutes_the_lower_ones_it_inhibits(store, policy):
    lower = file(store, policy)
    other = file(store, policy, subject="post:2")
    source = red(store, policy, now=T0 + timedelta(hours=2))
    assert (store.get(lower.id).muted_reason, store.get(lower.id).muted_by) == ("inhibited", source.id)
    assert store.get(other.id).muted_reason is None
    assert store.verify_audit().ok


def test_the_timer_recomputes_when_a_cause_ended_without_an_event(store, policy):
    """A red warning removed behind the store's back (or resolved by another replica) is found on the timer."""
    source = red(store, policy)
    muted = file(store, policy, now=T0 + timedelta(hours=2))
    store.acknowledge(source.id, "E110", now=T0 + timedelta(hours=3))
    store.resolve(source.id, "E110", "true_alarm", now=T0 + timedelta(hours=3))
    store.add_silence("post:1", actor="E110", reason="观察", duration_hours=1, now=T0 + timedelta(hours=4))
    assert store.get(muted.id).muted_reason == "silenced"
    assert [w.id for w in store.refresh_mutes(T0 + timedelta(hours=6))] == [muted.id]
    assert actions(store, muted.id)[-3:] == ["unmute", "mute", "unmute"]
    assert store.verify_audit().ok
