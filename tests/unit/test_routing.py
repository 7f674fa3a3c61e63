"""Routing and playbook (issue #19): owners follow the confident function, loss types and keyword kinds add co-owners,
each kind's specialists and actions fire for that kind only, every owner says why and every action names its owner
and due time; listening's floor for negative outside posts. Checked over every term, function and loss type the
shipped policy knows, not one example each."""
from __future__ import annotations

import itertools
from datetime import datetime

import pytest
import yaml

from features.contracts import LOSS_TYPES, TEXT_FUNCTIONS
from features.keywords import KeywordLibrary
from serving.rules import Policy, RiskInput, evaluate

FUNCTIONS = [f for f in TEXT_FUNCTIONS if f != "none"]
# What each kind must bring (the specialists of the issue) and an action only that kind's playbook entry has.
KIND_OWNERS = {"leak": {"legal", "rd_head"}, "labour": {"legal", "hr_head"}, "safety": {"quality_ehs"},
               "harassment": {"hr_head", "legal"}, "exposure": {"pr"}, "regulatory": {"compliance"}}
LEAK_ACTIONS = ("保密", "机密", "外泄", "涉密")  # words only the leak entry's actions use


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


@pytest.fixture(scope="module")
def library() -> KeywordLibrary:
    return KeywordLibrary.load()


def event(**overrides) -> RiskInput:
    values = dict(subject="post:r", event_kind="post", text="内容", channel="weibo", internal=False,
                  created_at=datetime(2025, 6, 1, 9), sentiment_label="neg", p_neg=0.9, loss_type="reputation",
                  function="customer_service", function_confidence=0.9)
    values.update(overrides)
    return RiskInput(**values)


def hit_of(keyword) -> dict:
    return {"term": keyword.term, "canonical": keyword.canonical, "category": keyword.category, "kind": keyword.kind,
            "severity": keyword.severity, "start": 0, "end": len(keyword.term)}


def is_leak_action(text: str) -> bool:
    return any(word in text for word in LEAK_ACTIONS)


def test_every_shipped_kind_has_a_route_and_playbook_entry(policy, library):
    assert set(KIND_OWNERS) == set(policy.keyword_kinds) == library.kinds()
    for kind in policy.keyword_kinds:
        assert any(kind in r.match.keyword_kinds for r in policy.co_owner_routes), kind
        assert any(kind in e.match.keyword_kinds for e in policy.playbook), kind


def test_each_kind_brings_its_specialists_and_actions_and_no_other_kinds(policy, library):
    """For every sensitive term of the shipped library that reaches its kind's severity, under every function and
    loss type: the kind's specialists join as co-owners (beside, not instead of, the functional owner) and only
    that kind's playbook actions fire among the kinds' actions."""
    kind_actions = {kind: {a.text for e in policy.playbook if kind in e.match.keyword_kinds for a in e.actions}
                    for kind in policy.keyword_kinds}
    checked = 0
    for keyword in library.keywords:
        if keyword.category != "sensitive" or keyword.severity < policy.keyword_kinds[keyword.kind].severity:
            continue
        for function, loss_type in itertools.product(FUNCTIONS, LOSS_TYPES[:-1]):
            decision = evaluate(event(function=function, loss_type=loss_type, keyword_hits=[hit_of(keyword)]),
                                policy)
            co_owners = {o.spec.name for o in decision.owners if o.role == "co_owner"}
            names = {o.spec.name for o in decision.owners}
            assert decision.owners[0].role == "functional" and decision.owners[0].spec.function == function
            assert KIND_OWNERS[keyword.kind] <= names, (keyword.term, function)
            assert any(keyword.kind in o.route or policy.keyword_kinds[keyword.kind].title in o.why
                       for o in decision.owners if o.spec.name in KIND_OWNERS[keyword.kind])
            texts = {a.text for a in decision.actions}
            assert kind_actions[keyword.kind] <= texts
            others = set().union(*(t for k, t in kind_actions.items() if k != keyword.kind))
            assert not texts & (others - kind_actions[keyword.kind]), (keyword.term, texts & others)
            assert co_owners  # at least the kind's specialists that are not the functional owner
            checked += 1
    assert checked > 300


def test_no_leak_action_without_a_leak_signal(policy, library):
    """Every non-leak term (any severity), alone or with a value or company hit, under every function, loss type,
    event kind and channel side: zero leak actions, zero leak routes."""
    others = [k for k in library.keywords if k.category != "sensitive" or k.kind != "leak"]
    cases = leaks = 0
    for keyword, function, loss_type, kind, internal in itertools.product(
            others, FUNCTIONS + ["none"], LOSS_TYPES, ("post", "complaint"), (False, True)):
        decision = evaluate(event(function=function, loss_type=loss_type, event_kind=kind, internal=internal,
                                  keyword_hits=[hit_of(keyword)]), policy)
        if decision is None:
            continue
        cases += 1
        leaks += any(is_leak_action(a.text) for a in decision.actions) or "数据或文档泄露" in decision.routes
    assert cases > 5000 and leaks == 0
    leak = next(k for k in library.keywords if k.kind == "leak")
    decision = evaluate(event(keyword_hits=[hit_of(leak)]), policy)
    assert sum(is_leak_action(a.text) for a in decision.actions) == 3


@pytest.mark.parametrize("function", FUNCTIONS)
def test_functional_owner_follows_a_confident_function_else_default_with_a_note(policy, function):
    threshold = policy.function_confidence
    confident = evaluate(event(function=function, function_confidence=threshold), policy)
    lead = confident.owners[0]
    assert (lead.role, lead.spec.function) == ("functional", function) and not confident.notes
    assert f"阈值 {threshold:.2f}" in lead.why and lead.route in confident.routes

    unsure = evaluate(event(function=function, function_confidence=threshold - 0.01), policy)
    assert [o.spec for o in unsure.owners if o.role == "functional"] == list(policy.default_owners)
    assert unsure.function == "none"
    assert len(unsure.notes) == 1 and "低于阈值" in unsure.notes[0] and "由默认负责人" in unsure.notes[0]
    assert unsure.owners[0].why.startswith("默认负责人")
    # a guess below the threshold fires none of that function's actions either
    function_actions = {a.text for e in policy.playbook if e.match.functions == (function,) for a in e.actions}
    assert not function_actions & {a.text for a in unsure.actions}


def test_no_function_goes_to_default_owners_and_says_why(policy):
    decision = evaluate(event(function="none", function_confidence=0.95), policy)
    assert decision.owners[0].spec in policy.default_owners and "未判定责任职能" in decision.notes[0]


@pytest.mark.parametrize("loss_type, added", [("culture", {"culture", "hr_head"}), ("opportunity", {"project_owner"})])
def test_loss_type_routes_add_co_owners_and_never_replace_the_functional_one(policy, loss_type, added):
    for function in FUNCTIONS:
        if loss_type == "opportunity" and function == "hr":
            continue  # hiring-side losses: recruiting, checked below
        decision = evaluate(event(function=function, loss_type=loss_type), policy)
        functional = [o for o in decision.owners if o.role == "functional"]
        assert [o.spec.function for o in functional] == [function]
        names = {o.spec.name for o in decision.owners}
        assert added <= names
        for owner in decision.owners:
            if owner.spec.name in added and owner.role == "co_owner":
                assert "损失类型为" in owner.why
    hiring = evaluate(event(function="hr", loss_type="opportunity"), policy)
    assert [(o.spec.name, o.role) for o in hiring.owners] == [("hr_head", "functional"),
                                                             ("hr_recruiting", "co_owner")]


def test_every_action_names_its_owner_and_due_time_and_every_owner_why(policy, library):
    keywords = [k for k in library.keywords if k.category == "sensitive"][::3]
    for keyword, function, loss_type, kind in itertools.product(keywords, FUNCTIONS, LOSS_TYPES[:-1],
                                                                  ("post", "complaint")):
        decision = evaluate(event(function=function, loss_type=loss_type, event_kind=kind,
                                  keyword_hits=[hit_of(keyword)]), policy)
        names = {o.spec.name for o in decision.owners}
        assert all(o.why for o in decision.owners)
        for action in decision.actions:
            assert action.owner in names and action.owner_title == policy.owners[action.owner].title
            assert action.due_hours and action.due_hours > 0


def test_listening_floor_for_negative_outside_posts_is_a_setting(tmp_path, policy):
    negative = event(keyword_hits=[], sentiment_label="neg", p_neg=0.8)
    unsure = event(keyword_hits=[], sentiment_label="neu", p_neg=policy.listening.min_p_neg + 0.01)
    calm = event(keyword_hits=[], sentiment_label="neu", p_neg=policy.listening.min_p_neg - 0.01)
    inside = event(keyword_hits=[], channel="employee_forum", internal=True, p_neg=0.95)
    complaint = event(keyword_hits=[], event_kind="complaint", p_neg=0.55, sentiment_label="neg")
    assert policy.listening.warn_negative_external  # default on
    for case in (negative, unsure):
        decision = evaluate(case, policy)
        assert decision.grade == "blue" and decision.fired[0].id.startswith("listening_negative_external")
        assert any("发布于外部渠道" in reason for reason in decision.reasons)
    assert evaluate(calm, policy) is None and evaluate(inside, policy) is None and evaluate(complaint, policy) is None

    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump({"listening": {"warn_negative_external": False}}), encoding="utf-8")
    off = Policy.load(path)
    assert not any(rule.id.startswith("listening") for rule in off.rules)
    assert evaluate(negative, off) is None and evaluate(unsure, off) is None
    path.write_text(yaml.safe_dump({"listening": {"grade": "yellow", "min_p_neg": None}}), encoding="utf-8")
    yellow = Policy.load(path)
    assert evaluate(negative, yellow).grade == "yellow" and evaluate(unsure, yellow) is None


def test_a_tenant_kind_routes_and_acts_for_itself_only(tmp_path):
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump({
        "keyword_kinds": {"dealer_fraud": {"name": "经销商欺诈", "severity": 2}},
        "rules": [{"id": "dealer_fraud", "name": "经销商欺诈", "grade": "orange", "keyword_kinds": ["dealer_fraud"],
                   "when": {"sensitive_keyword_severity": 2}}],
        "routing": {"co_owners": [{"name": "经销商欺诈", "match": {"keyword_kinds": ["dealer_fraud"]},
                                   "owners": ["sales_head", "legal"]}]},
        "playbook": [{"match": {"keyword_kinds": ["dealer_fraud"]},
                      "actions": [{"text": "冻结涉事经销商返利并核账", "owner": "sales_head", "due_hours": 8}]}],
    }, allow_unicode=True), encoding="utf-8")
    tenant = Policy.load(path)
    library = KeywordLibrary.from_dict({"tenants": {"default": {"sensitive": {"dealer_fraud": [
        {"term": "返利骗局", "severity": 2}, {"term": "窜货", "severity": 1}]}}}})
    tenant.check_keyword_kinds(library.kinds())
    strong = evaluate(event(function="production", keyword_hits=library.find("经销商返利骗局")), tenant)
    assert strong.grade == "orange" and strong.keyword_kinds == ("dealer_fraud",)
    assert [(o.spec.name, o.role) for o in strong.owners] == [
        ("production_head", "functional"), ("sales_head", "co_owner"), ("legal", "co_owner")]
    action = next(a for a in strong.actions if a.text == "冻结涉事经销商返利并核账")
    assert (action.owner, action.due_hours) == ("sales_head", 8)
    weak = evaluate(event(function="production", keyword_hits=library.find("有人窜货")), tenant)  # below severity 2
    assert "dealer_fraud" not in weak.keyword_kinds and "经销商欺诈" not in weak.routes
    with pytest.raises(ValueError, match="dealer_fraud"):
        Policy.load().check_keyword_kinds(library.kinds())
