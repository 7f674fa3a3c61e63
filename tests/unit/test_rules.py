"""Rules: policy loading and validation, grading with readable reasons, and the monotonicity guarantee."""
from __future__ import annotations

import dataclasses
from datetime import datetime

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from features.contracts import LOSS_TYPES, POST_CHANNELS, SENTIMENTS, TEXT_FUNCTIONS
from serving.rules import (
    DEFAULT_POLICY_PATH,
    EVENT_KINDS,
    GRADES,
    KEYWORD_CATEGORIES,
    SIGNALS,
    Policy,
    PolicyError,
    RiskInput,
    RiskInputError,
    evaluate,
    grade_rank,
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load(DEFAULT_POLICY_PATH)


def post(**overrides) -> RiskInput:
    values = dict(subject="post:1", event_kind="post", text="测试内容", channel="weibo", internal=False,
                  created_at=datetime(2025, 6, 1, 9, 0), sentiment_label="neg", p_neg=0.9, loss_type="reputation",
                  function="marketing")
    values.update(overrides)
    return RiskInput(**values)


def write_tenant(tmp_path, data) -> str:
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


# --- policy loading ---------------------------------------------------------------------------------------------

def test_default_policy_has_the_four_grades_with_default_deadlines(policy):
    assert {g: policy.grades[g].deadline_hours for g in GRADES} == {"red": 1, "orange": 4, "yellow": 24, "blue": 72}
    assert policy.sources == (str(DEFAULT_POLICY_PATH),)


@pytest.mark.parametrize("override, path", [
    ({"grades": {"red": {"deadline_hours": -1}}}, "grades.red.deadline_hours: 应为正数"),
    ({"grades": {"red": {"deadline_hours": 100}}}, "grades.red.deadline_hours: 不应长于"),
    ({"rules": [{"id": "fast_spread", "when": {"velocity": 10}}]}, "rules.fast_spread.when.velocity: 未知信号"),
    ({"rules": [{"id": "fast_spread", "when": {"p_neg": 1.5}}]}, "rules.fast_spread.when.p_neg: 阈值应为0 到 1 之间"),
    ({"rules": [{"id": "fast_spread", "when": {"external": False}}]}, "rules.fast_spread.when.external: 只能为 true"),
    ({"rules": [{"id": "fast_spread", "grade": "purple"}]}, "rules.fast_spread.grade: 取值 'purple'"),
    ({"rules": [{"id": "fast_spread", "loss_types": ["money"]}]}, "rules.fast_spread.loss_types[0]: 取值 'money'"),
    ({"rules": [{"id": "new_rule", "name": "新规则", "grade": "red"}]}, "rules.new_rule.when: 缺少必填项"),
    ({"owners": {"pr": {"function": "pr", "title": "公关"}}}, "owners.pr.function: 取值 'pr'"),
    ({"routing": {"co_owners": [{"name": "x", "match": {}, "owners": ["pr_head"]}]}},
     "routing.co_owners[0].owners[0]: 未定义的负责人 'pr_head'"),
    ({"routing": {"co_owners": [{"name": "x", "match": {}, "owners": [{"function": "hr", "title": "HR"}]}]}},
     "routing.co_owners[0].owners[0]: 未定义的负责人"),
    ({"routing": {"co_owners": [{"name": "x", "match": {}, "webhooks": {"opened": ["erp"]}}]}},
     "routing.co_owners[0].webhooks.opened[0]: 取值 'erp'"),
    ({"routing": {"routes": []}}, "routing.routes: 已拆分为 routing.functional"),
    ({"routing": {"functional": [{"name": "x", "match": {"loss_types": ["culture"]}, "owners": ["culture"]}]}},
     "routing.functional[0].match.functions: 职能路由必须按责任职能"),
    ({"routing": {"function_confidence": 1.5}}, "routing.function_confidence: 应为 0 到 1"),
    # a kind nobody defined is refused wherever it is named
    ({"routing": {"co_owners": [{"name": "x", "match": {"keyword_kinds": ["leek"]}, "owners": ["legal"]}]}},
     "routing.co_owners[0].match.keyword_kinds[0]: 未定义的敏感话题类别 'leek'"),
    ({"playbook": [{"match": {"keyword_kinds": ["leak", "fraud"]}, "actions": [{"text": "核查"}]}]},
     "playbook[0].match.keyword_kinds[1]: 未定义的敏感话题类别 'fraud'"),
    ({"rules": [{"id": "leak_severe", "keyword_kinds": ["secrets"]}]},
     "rules.leak_severe.keyword_kinds[0]: 未定义的敏感话题类别 'secrets'"),
    ({"keyword_kinds": {"Leak!": {"name": "泄露"}}}, "keyword_kinds.Leak!: 类别应为小写英文标识"),
    ({"keyword_kinds": {"fraud": {"name": "欺诈", "severity": 4}}}, "keyword_kinds.fraud.severity: 应为 1、2 或 3"),
    ({"playbook": [{"match": {}, "actions": [{"text": "回应 {who}"}]}]}, "playbook[0].actions[0].text: 模板只能使用"),
    ({"playbook": [{"match": {}, "actions": [{"text": "回应", "owner": "ceo"}]}]},
     "playbook[0].actions[0].owner: 未定义的负责人 'ceo'"),
    ({"listening": {"grade": "purple"}}, "listening.grade: 取值 'purple'"),
    ({"listening": {"min_p_neg": 2}}, "listening.min_p_neg: 应为 0 到 1"),
    ({"rules": [{"id": "listening_negative_external", "name": "x", "grade": "red", "when": {"p_neg": 0.1}}]},
     "rules.listening_negative_external.id: 以 listening_negative_external 开头的 id 留给"),
    ({"webhooks": {"crm": {"url": "ftp://crm"}}}, "webhooks.crm.url: 应以 http://"),
    ({"grouping": {"window_minutes": "soon"}}, "grouping.window_minutes: 应为正数"),
    ({"channel_names": {"tiktok": "抖音国际"}}, "channel_names.tiktok: 未知配置项"),
    ({"escalate": True}, "escalate: 未知配置项"),
])
def test_invalid_policy_names_the_offending_key(tmp_path, override, path):
    with pytest.raises(PolicyError) as raised:
        Policy.load(write_tenant(tmp_path, override))
    assert str(raised.value).startswith(path)


def test_unreadable_policy_files_are_reported_with_their_path(tmp_path):
    with pytest.raises(PolicyError, match="策略文件不存在"):
        Policy.load(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("grades: [red\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"broken.yaml: YAML 语法错误 第 \d+ 行"):
        Policy.load(broken)


def test_tenant_override_merges_over_default(tmp_path, policy):
    tenant = Policy.load(write_tenant(tmp_path, {
        "grades": {"red": {"deadline_hours": 0.5}},
        "rules": [{"id": "fast_spread", "when": {"velocity_per_hour": 50}},
                  {"id": "viral_negative", "enabled": False},
                  {"id": "tenant_rule", "name": "租户规则", "grade": "yellow", "when": {"regions": 3}}],
    }))
    by_id = {rule.id: rule for rule in tenant.rules}
    assert tenant.grades["red"].deadline_hours == 0.5
    assert tenant.grades["orange"].deadline_hours == policy.grades["orange"].deadline_hours
    assert {c.signal: c.threshold for c in by_id["fast_spread"].when} == {"p_neg": 0.7, "velocity_per_hour": 50}
    assert "viral_negative" not in by_id and "tenant_rule" in by_id
    assert len(tenant.rules) == len(policy.rules)  # one disabled, one added
    assert len(tenant.sources) == 2
    assert evaluate(post(velocity_per_hour=60), tenant).grade == "orange"
    assert evaluate(post(velocity_per_hour=60), policy).grade == "blue"  # listening's floor, not fast_spread


# --- grading and reasons ----------------------------------------------------------------------------------------

def test_nothing_risky_gives_no_warning(policy):
    assert evaluate(post(sentiment_label="pos", p_neg=0.05), policy) is None


def test_reasons_name_input_value_and_threshold_in_chinese(policy):
    decision = evaluate(post(velocity_per_hour=150), policy)
    assert decision.grade == "orange"
    assert (decision.grade_zh, decision.grade_level) == ("橙", "II")
    assert "fast_spread" in [rule.id for rule in decision.fired]
    assert any("首小时转发数为 150" in reason and "阈值 100" in reason for reason in decision.reasons)
    assert all(reason.startswith("【橙·") for reason in decision.reasons)  # the reasons behind the grade


def test_grade_grows_with_spread_and_lower_rules_stay_recorded(policy):
    spreading = post(p_neg=0.9, reach_p50=800, reach_p90=3000)
    crisis = dataclasses.replace(spreading, reach_p90=60000, velocity_per_hour=800)
    assert evaluate(spreading, policy).grade == "yellow"
    decision = evaluate(crisis, policy)
    assert decision.grade == "red" and decision.deadline_hours == 1
    assert {rule.grade for rule in decision.fired} >= {"red", "orange", "yellow"}
    assert decision.label == "红色预警（I级）· 声誉损失"


def test_keyword_reason_names_the_term_and_its_kind(policy):
    hit = {"term": "数据安全", "category": "sensitive", "kind": "leak", "severity": 3, "start": 0, "end": 4}
    decision = evaluate(post(sentiment_label="neu", p_neg=0.2, keyword_hits=[hit], internal=True), policy)
    assert decision.grade == "orange" and "leak_severe" in [rule.id for rule in decision.fired]
    assert any("敏感话题关键词严重度为 3（数据或文档泄露：「数据安全」）" in reason for reason in decision.reasons)
    assert "数据或文档泄露" in decision.routes and decision.keyword_kinds == ("leak",)
    assert [(o.spec.function, o.role) for o in decision.owners] == [
        ("marketing", "functional"), ("legal", "co_owner"), ("rd", "co_owner")]


def test_a_kind_rule_reads_only_its_kind():
    """欠薪 (labour, 3) beside a mild leak word (1) is no severe leak: the leak rule reads leak hits only."""
    policy = Policy.load()
    wages = {"term": "欠薪", "category": "sensitive", "kind": "labour", "severity": 3}
    mild_leak = {"term": "外泄", "category": "sensitive", "kind": "leak", "severity": 1}
    fired = {rule.id for rule in evaluate(post(keyword_hits=[wages, mild_leak]), policy).fired}
    assert "sensitive_topic" in fired and not fired & {"leak_severe", "leak_public"}
    leak = dict(mild_leak, severity=3)
    assert "leak_severe" in {rule.id for rule in evaluate(post(keyword_hits=[wages, leak]), policy).fired}


def test_unclassified_loss_type_falls_back_by_event_kind_and_says_so(policy):
    decision = evaluate(post(loss_type="none", velocity_per_hour=150), policy)
    assert decision.loss_type == "reputation"
    assert any("按事件类型归为声誉损失" in reason for reason in decision.reasons)


def test_team_event_is_graded_from_people_signals(policy):
    team = RiskInput(subject="dept:R11", event_kind="team", loss_type="culture", department_id="R11",
                     high_risk_key_employees=3, team_expected_leavers=3.4)
    decision = evaluate(team, policy)
    assert decision.grade == "orange"
    assert any("高离职风险关键员工数为 3" in reason for reason in decision.reasons)
    assert any("一对一沟通" in action.text for action in decision.actions)


def test_actions_follow_loss_type_and_channel(policy):
    decision = evaluate(post(channel="xiaohongshu", velocity_per_hour=150), policy)
    texts = [action.text for action in decision.actions]
    assert "在小红书原渠道公开回应，说明事实与整改措施" in texts
    assert any(action.system == "crm" for action in decision.actions)  # reputation: tell sales
    assert any(action.system == "lms" and action.due_hours == 72 for action in decision.actions)  # marketing training
    complaint = evaluate(post(event_kind="complaint", channel="complaint_hotline", function="customer_service"),
                         policy)
    assert any("24 小时内回复客户" in action.text for action in complaint.actions)
    assert not any("原渠道公开回应" in action.text for action in complaint.actions)


@pytest.mark.parametrize("field, value, message", [
    ("p_neg", 1.2, "RiskInput.p_neg: 应在 0 到 1 之间"),
    ("loss_type", "money", "RiskInput.loss_type: 取值 'money'"),
    ("event_kind", "tweet", "RiskInput.event_kind"),
    ("reach_p90", -5, "RiskInput.reach_p90: 应为非负数"),
    ("keyword_hits", [{"term": "x", "category": "value", "severity": 5}], "RiskInput.keyword_hits[0].severity"),
    ("subject", " ", "RiskInput.subject: 不能为空"),
])
def test_bad_risk_input_names_the_field(field, value, message):
    with pytest.raises(RiskInputError) as raised:
        post(**{field: value})
    assert str(raised.value).startswith(message)


def test_numpy_scalars_from_pandas_become_plain_numbers():
    frame = pd.DataFrame({"p_neg": [0.9], "regions": [4], "severity": [3]})
    row = frame.iloc[0]
    event = post(p_neg=row.p_neg, regions=row.regions,
                 keyword_hits=[{"term": "用户第一", "category": "value", "severity": row.severity}])
    assert [type(v) for v in (event.p_neg, event.regions, event.keyword_hits[0]["severity"])] == [float, int, int]


# --- monotonicity: raising any single risk input never lowers the grade -----------------------------------------

optional_amount = st.one_of(st.none(), st.floats(0, 100_000, allow_nan=False))
KINDS = tuple(Policy.load().keyword_kinds) + ("tenant_kind",)  # an undefined kind must not break anything
keyword_hit = st.builds(lambda category, kind, severity: {"term": f"词{severity}", "category": category,
                                                           "kind": kind if category == "sensitive" else None,
                                                           "severity": severity, "start": 0, "end": 2},
                        st.sampled_from(KEYWORD_CATEGORIES), st.sampled_from(KINDS), st.integers(1, 3))

risk_inputs = st.builds(
    RiskInput,
    subject=st.just("post:7"),
    event_kind=st.sampled_from(EVENT_KINDS),
    channel=st.sampled_from(POST_CHANNELS),
    internal=st.booleans(),
    sentiment_label=st.sampled_from(SENTIMENTS),
    p_neg=st.floats(0, 1, allow_nan=False),
    loss_type=st.sampled_from(LOSS_TYPES),
    function=st.sampled_from(TEXT_FUNCTIONS),
    function_confidence=st.floats(0, 1, allow_nan=False),
    keyword_hits=st.lists(keyword_hit, max_size=3),
    reach_p50=optional_amount,
    reach_p90=optional_amount,
    velocity_per_hour=optional_amount,
    regions=st.one_of(st.none(), st.integers(0, 40)),
    high_risk_key_employees=st.integers(0, 10),
    team_expected_leavers=st.one_of(st.none(), st.floats(0, 20, allow_nan=False)),
    monitoring=st.one_of(st.none(), st.fixed_dictionaries({
        "ratio": optional_amount, "excess": optional_amount, "reach": optional_amount,
        "negative_share": st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
        "cluster_size": st.one_of(st.none(), st.integers(0, 200))})),
)
MONITORING_INPUTS = {"ratio": 100_000, "excess": 100_000, "reach": 1e9, "negative_share": 1.0, "cluster_size": 500}


def raise_one_input(risk: RiskInput, data) -> RiskInput:
    """Return the risk with exactly one input made riskier (or left equal)."""
    name = data.draw(st.sampled_from(["p_neg", "sentiment_label", "reach_p50", "reach_p90", "velocity_per_hour",
                                      "regions", "high_risk_key_employees", "team_expected_leavers", "internal",
                                      "keyword_hits", *(f"monitoring.{k}" for k in MONITORING_INPUTS)]),
                     label="input")
    if name.startswith("monitoring."):  # the trend / cluster signals (serving.monitoring.config)
        key = name.removeprefix("monitoring.")
        old = (risk.monitoring or {}).get(key)
        new = data.draw(st.floats(old or 0.0, MONITORING_INPUTS[key], allow_nan=False))
        return dataclasses.replace(risk, monitoring={**(risk.monitoring or {}), key: new})
    old = getattr(risk, name)
    if name == "p_neg":
        new = data.draw(st.floats(old, 1, allow_nan=False))
    elif name == "sentiment_label":
        new = data.draw(st.sampled_from(SENTIMENTS[: SENTIMENTS.index(old) + 1]))  # neg, neu, pos: riskier first
    elif name == "internal":
        new = False
    elif name == "keyword_hits":
        if old and data.draw(st.booleans()):
            index = data.draw(st.integers(0, len(old) - 1))
            raised = dict(old[index], severity=data.draw(st.integers(old[index]["severity"], 3)))
            new = old[:index] + [raised] + old[index + 1:]
        else:
            new = old + [data.draw(keyword_hit)]
    elif name in ("regions", "high_risk_key_employees"):
        new = (old or 0) + data.draw(st.integers(0, 20))
    else:
        new = (old or 0.0) + data.draw(st.floats(0, 100_000, allow_nan=False))
    return dataclasses.replace(risk, **{name: new})


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(risk=risk_inputs, data=st.data())
def test_grade_never_drops_when_one_input_rises_default_policy(policy, risk, data):
    raised = raise_one_input(risk, data)
    before, after = evaluate(risk, policy), evaluate(raised, policy)
    assert grade_rank(after and after.grade) >= grade_rank(before and before.grade)


def _threshold(signal: str):
    if signal == "external":
        return st.just(True)
    if signal == "sentiment":
        return st.sampled_from(["neu", "neg"])
    if signal == "p_neg":
        return st.floats(0, 1, allow_nan=False)
    if SIGNALS[signal].is_keyword:
        return st.integers(1, 3)
    return st.floats(SIGNALS[signal].low, SIGNALS[signal].high or 1000, allow_nan=False)


DEFAULT_POLICY_DATA = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))

random_rule = st.sampled_from(sorted(SIGNALS)).flatmap(
    lambda first: st.tuples(st.just(first), st.lists(st.sampled_from(sorted(SIGNALS)), max_size=2))
).flatmap(lambda picked: st.fixed_dictionaries({
    "when": st.fixed_dictionaries({name: _threshold(name) for name in {picked[0], *picked[1]}}),
    "grade": st.sampled_from(GRADES),
    "event_kinds": st.lists(st.sampled_from(EVENT_KINDS), min_size=1, unique=True),
    "keyword_kinds": st.lists(st.sampled_from(KINDS[:-1]), max_size=2, unique=True),
}))


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=st.lists(random_rule, min_size=1, max_size=6), risk=risk_inputs, data=st.data())
def test_grade_never_drops_for_any_valid_policy(policy, rules, risk, data):
    """Monotonicity comes from the rule grammar, not from the shipped thresholds."""
    base = dict(DEFAULT_POLICY_DATA)
    base["rules"] = [dict(rule, id=f"r{i}", name=f"规则{i}") for i, rule in enumerate(rules)]
    random_policy = Policy.from_dict(base)
    raised = raise_one_input(risk, data)
    before, after = evaluate(risk, random_policy), evaluate(raised, random_policy)
    assert grade_rank(after and after.grade) >= grade_rank(before and before.grade)
