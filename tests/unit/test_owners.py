"""Owners: functional owners, direct and management responsibility, 分管领导 on red, and fallbacks that say so."""
from __future__ import annotations

import pandas as pd
import pytest

from features.contracts import ContractError
from serving.owners import OrgChart, OrgChartError, resolve_owners
from serving.rules import Policy, RiskInput, evaluate

UNITS = [
    # unit_id, name, parent_id, head_employee_id, function, level
    ("C0", "星河科技", None, "E000", "management", 0),
    ("V1", "市场与客户事业群", "C0", "E100", "management", 1),
    ("M1", "市场部", "V1", "E110", "marketing", 2),
    ("M11", "内容组", "M1", "E111", "marketing", 3),
    ("S1", "客服中心", "V1", "E120", "customer_service", 2),
    ("S11", "客服一组", "S1", None, "customer_service", 3),
    ("V2", "研发与职能事业群", "C0", None, "management", 1),
    ("H1", "人力资源部", "V2", "E210", "hr", 2),
    ("H11", "招聘组", "H1", "E211", "hr", 3),
    ("K1", "企业文化部", "V2", "E220", "culture", 2),
    ("R1", "研发中心", "V2", "E240", "rd", 2),
    ("L1", "法务部", "V2", "E230", "legal", 2),
]
COLUMNS = ["unit_id", "name", "parent_id", "head_employee_id", "function", "level"]


def units_frame(rows=UNITS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture(scope="module")
def chart() -> OrgChart:
    return OrgChart.from_frame(units_frame())


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


def risk(**overrides) -> RiskInput:
    values = dict(subject="post:9", event_kind="post", channel="weibo", sentiment_label="neg", p_neg=0.9,
                  loss_type="reputation", function="marketing", velocity_per_hour=150)
    values.update(overrides)
    return RiskInput(**values)


def ids(people) -> list[str]:
    return [person.employee_id for person in people]


def test_employee_is_direct_and_heads_up_the_chain_are_management(chart, policy):
    event = risk(employee_id="E112", department_id="M11")
    decision = evaluate(event, policy)
    owners = resolve_owners(decision, event, chart)
    assert decision.grade == "orange" and owners.executive is None
    assert ids(owners.direct) == ["E112"]
    assert ids(owners.management) == ["E111", "E110"]  # stops below the division
    assert [(p.employee_id, p.role) for p in owners.functional] == [("E110", "市场部负责人")]
    assert ids(owners.escalation) == ["E111", "E110", "E100", "E000"]


def test_red_adds_the_executive_in_charge(chart, policy):
    event = risk(employee_id="E112", department_id="M11", reach_p90=60000, velocity_per_hour=900)
    decision = evaluate(event, policy)
    owners = resolve_owners(decision, event, chart)
    assert decision.grade == "red"
    assert (owners.executive.employee_id, owners.executive.role, owners.executive.unit_name) == (
        "E100", "分管领导", "市场与客户事业群")


def test_missing_head_falls_back_to_next_level_and_says_so(chart, policy):
    event = risk(event_kind="complaint", channel="complaint_hotline", function="customer_service",
                 employee_id="E122", department_id="S11", velocity_per_hour=None)
    owners = resolve_owners(evaluate(event, policy), event, chart)
    supervisor = owners.functional[0]
    assert supervisor.employee_id == "E120" and "代客服主管" in supervisor.role
    assert ids(owners.management) == ["E120"]
    assert any("「客服一组」未设负责人" in note and "「客服中心」负责人 E120" in note for note in owners.notes)


def test_missing_executive_falls_back_to_company_head(chart, policy):
    event = risk(function="rd", department_id="R1", reach_p90=60000, velocity_per_hour=900)
    owners = resolve_owners(evaluate(event, policy), event, chart)
    assert ids(owners.direct) == ["E240"]  # a team-linked event: the team's head answers directly
    assert owners.executive.employee_id == "E000"
    assert any("「研发与职能事业群」未设负责人" in note for note in owners.notes)


def test_departed_head_is_skipped_when_employees_are_known(policy):
    employees = pd.DataFrame({
        "employee_id": ["E000", "E100", "E110", "E110", "E111", "E112"],
        "department_id": ["C0", "V1", "M1", "M1", "M11", "M11"],
        "role": ["总经理", "副总裁", "市场总监", "市场总监", "内容主管", "文案策划"],
        "snapshot_date": pd.to_datetime(["2025-06-01"] * 2 + ["2025-01-01"] + ["2025-06-01"] * 3),
        "leave_date": [None, None, None, "2025-05-20", None, None],  # the latest snapshot says E110 has left
    })
    chart = OrgChart.from_frame(units_frame(), employees)
    event = risk(employee_id="E112")  # the department comes from the employee table
    owners = resolve_owners(evaluate(event, policy), event, chart)
    assert owners.direct[0].role == "文案策划" and owners.direct[0].unit_id == "M11"
    assert ids(owners.management) == ["E111", "E100"]
    assert owners.management[1].role == "市场与客户事业群负责人（代「市场部」）"
    assert any("「市场部」负责人 E110 已离职" in note for note in owners.notes)


def test_recruiting_owner_is_found_by_unit_name(chart, policy):
    event = risk(channel="maimai", function="hr", loss_type="opportunity", department_id="R1")
    owners = resolve_owners(evaluate(event, policy), event, chart)
    assert [(p.employee_id, p.role) for p in owners.functional] == [("E210", "HR 负责人")]
    assert [(p.employee_id, p.role) for p in owners.co_owners] == [("E211", "HR 招聘")]
    assert "招聘与雇主品牌" in owners.co_owners[0].why


def test_leak_goes_to_rd_with_legal_beside(chart, policy):
    hit = {"term": "设计文档", "category": "sensitive", "kind": "leak", "severity": 3, "start": 0, "end": 4}
    event = risk(function="rd", keyword_hits=[hit], sentiment_label="neu", p_neg=0.1)
    owners = resolve_owners(evaluate(event, policy), event, chart)
    assert [(p.employee_id, p.role) for p in owners.functional] == [("E240", "研发负责人")]
    assert [(p.employee_id, p.role) for p in owners.co_owners] == [("E230", "法务")]
    assert "数据或文档泄露" in owners.co_owners[0].why and "设计文档" in owners.co_owners[0].why
    assert "另" in owners.functional[0].why  # 研发负责人 is also the leak route's: both reasons are kept
    assert "事件未关联部门或员工，无法确定直接责任人" in owners.notes
    assert owners.management  # located through the functional owner's chain instead


def test_every_person_says_why_they_are_there(chart, policy):
    event = risk(employee_id="E112", department_id="M11", loss_type="culture", reach_p90=60000, velocity_per_hour=900)
    owners = resolve_owners(evaluate(event, policy), event, chart)
    people = owners.functional + owners.co_owners + owners.direct + owners.management + [owners.executive]
    assert len(people) >= 6 and all(person.why for person in people)
    assert owners.executive.why.startswith("红色预警") and owners.direct[0].why.startswith("直接责任")
    assert all(p.owner in policy.owners for p in owners.functional + owners.co_owners)


def test_unknown_department_is_noted_not_fatal(chart, policy):
    event = risk(department_id="D404")
    owners = resolve_owners(evaluate(event, policy), event, chart)
    assert any("未知部门 'D404'" in note for note in owners.notes)
    assert owners.functional


def test_subtree_lists_the_unit_and_everything_below(chart):
    assert chart.subtree("V1") == {"V1", "M1", "M11", "S1", "S11"}
    with pytest.raises(OrgChartError, match="未知部门"):
        chart.subtree("X")


def test_level_defaults_to_depth_when_absent():
    chart = OrgChart.from_frame(units_frame().drop(columns=["level"]))
    assert {uid: unit.level for uid, unit in chart.units.items() if uid in ("C0", "V1", "M11")} == {
        "C0": 0, "V1": 1, "M11": 3}


@pytest.mark.parametrize("rows, error, message", [
    (UNITS + [("X1", "孤儿部门", "NOPE", None, "sales", 2)], OrgChartError,
     "第 12 行 字段 parent_id: 未知上级部门 'NOPE'"),
    ([("A", "甲", "B", None, "sales", 1), ("B", "乙", "A", None, "sales", 1)], OrgChartError, "上级链存在环"),
    (UNITS[:1] + [("P1", "公关部", "C0", None, "pr", 1)], ContractError, "第 1 行 字段 function"),
])
def test_broken_org_chart_is_rejected_naming_the_row(rows, error, message):
    with pytest.raises(error, match=message):
        OrgChart.from_frame(units_frame(rows))
