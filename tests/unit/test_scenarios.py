"""The brief's scenarios 3, 4, 5, 7 and 8, end to end through rules → owners → store (→ webhooks), without models:
each asserts the owners and actions the brief names."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from features.keywords import KeywordLibrary
from serving.owners import OrgChart, resolve_owners
from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore
from serving.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, verify_signature

T0 = datetime(2025, 6, 18, 10, 0)
SECRET = "scenario-secret"

ORG_UNITS = pd.DataFrame([
    ("C0", "星河科技", None, "E000", "management", 0),
    ("V1", "市场与客户事业群", "C0", "E100", "management", 1),
    ("M1", "市场部", "V1", "E110", "marketing", 2),
    ("M11", "内容组", "M1", "E111", "marketing", 3),
    ("S1", "客服中心", "V1", "E120", "customer_service", 2),
    ("S11", "客服一组", "S1", "E121", "customer_service", 3),
    ("SA", "销售部", "V1", "E130", "sales", 2),
    ("V2", "研发与职能事业群", "C0", "E200", "management", 1),
    ("H1", "人力资源部", "V2", "E210", "hr", 2),
    ("H11", "招聘组", "H1", "E211", "hr", 3),
    ("K1", "企业文化部", "V2", "E220", "culture", 2),
    ("L1", "法务部", "V2", "E230", "legal", 2),
    ("R1", "研发中心", "V2", "E240", "rd", 2),
    ("R11", "后端组", "R1", None, "rd", 3),
], columns=["unit_id", "name", "parent_id", "head_employee_id", "function", "level"])

EMPLOYEES = pd.DataFrame([
    ("E000", "C0", None, "总经理"), ("E100", "V1", "E000", "市场与客户副总裁"), ("E110", "M1", "E100", "市场总监"),
    ("E111", "M11", "E110", "内容主管"), ("E112", "M11", "E111", "文案策划"), ("E120", "S1", "E100", "客服经理"),
    ("E121", "S11", "E120", "客服主管"), ("E122", "S11", "E121", "客服专员"), ("E130", "SA", "E100", "销售总监"),
    ("E200", "V2", "E000", "研发与职能副总裁"), ("E210", "H1", "E200", "HR 总监"), ("E211", "H11", "E210", "招聘经理"),
    ("E220", "K1", "E200", "企业文化经理"), ("E230", "L1", "E200", "法务经理"), ("E240", "R1", "E200", "研发总监"),
    ("E242", "R11", "E240", "后端工程师"),
], columns=["employee_id", "department_id", "manager_id", "role"])


@pytest.fixture(scope="module")
def chart() -> OrgChart:
    return OrgChart.from_frame(ORG_UNITS, EMPLOYEES)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.load()


@pytest.fixture
def receiver():
    """Stands in for CRM, PM and LMS: records what each receives (path = system)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"system": self.path.strip("/"), "headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def ids_roles(people) -> list[tuple[str, str]]:
    return [(person.employee_id, person.role) for person in people]


def test_scenario_3_customer_service_remark_becomes_a_24h_work_order(tmp_path, chart, policy):
    complaint = RiskInput(
        subject="complaint:C-20250618-031", event_kind="complaint", channel="complaint_hotline", internal=False,
        text="客服说我“风险承受能力低”，语气轻蔑，我已经取消了所有订单。", created_at=T0,
        department_id="S11", employee_id="E122", sentiment_label="neg", p_neg=0.93,
        loss_type="reputation", function="customer_service")
    decision = evaluate(complaint, policy)
    assert (decision.loss_type, decision.grade, decision.deadline_hours) == ("reputation", "yellow", 24)
    reply = next(action for action in decision.actions if "24 小时内回复客户" in action.text)
    assert (reply.owner, reply.owner_title, reply.due_hours) == ("cs_supervisor", "客服主管", 24)  # the work order
    assert all(action.owner and action.due_hours for action in decision.actions)
    assert not any("保密" in action.text or "机密" in action.text for action in decision.actions)

    owners = resolve_owners(decision, complaint, chart)
    assert ids_roles(owners.functional) == [("E121", "客服主管")]
    assert "客服" in owners.functional[0].why
    assert ids_roles(owners.direct) == [("E122", "客服专员")]  # direct responsibility: the agent
    assert owners.management[0].employee_id == "E121"  # management responsibility: the supervisor

    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}", policy=policy)
    order = store.upsert_from_decision(decision, complaint, owners, now=T0).record
    assert order.deadline_at == T0 + timedelta(hours=24)
    store.assign(order.id, "E121", "E121", now=T0 + timedelta(hours=1))
    closed = store.resolve(order.id, "E121", "true_alarm", notes="已致电客户道歉并恢复订单；坐席完成话术复训",
                           now=T0 + timedelta(hours=20))
    assert closed.resolved_at < order.deadline_at
    on_record = store.get(order.id).owners
    assert on_record["direct"][0]["employee_id"] == "E122" and on_record["management"][0]["employee_id"] == "E121"
    trail = store.audit_entries(order.id)
    assert [(e.action, e.actor) for e in trail] == [("open", "system"), ("assign", "E121"), ("resolve", "E121")]
    assert "话术复训" in trail[-1].after["resolution_notes"]
    assert store.verify_audit().ok


def test_scenario_4_repeated_leaks_go_to_rd_and_legal_with_approval_and_training(tmp_path, chart, policy):
    text = "研发中心又一份机密文件外泄：下载记录显示设计文档被存到个人电脑，文件密级标得太低，法务和研发从没一起培训过"
    leak = RiskInput(
        subject="post:forum-leak-3", event_kind="post", channel="employee_forum", internal=True, created_at=T0,
        text=text, department_id="R11", sentiment_label="neg", p_neg=0.86, loss_type="opportunity", function="rd",
        function_confidence=0.74, keyword_hits=KeywordLibrary.load().find(text))
    decision = evaluate(leak, policy)
    assert decision.keyword_kinds == ("leak",) and decision.grade == "orange"
    assert "leak_severe" in [rule.id for rule in decision.fired]
    by_text = {action.text: action for action in decision.actions}
    approval = by_text["机密文件下载启用双人审批并收紧访问权限"]
    training = by_text["法务与研发联合开展月度保密培训"]
    assert approval.owner == "rd_head"
    assert (training.owner, training.system, training.due_hours) == ("legal", "lms", 168)

    owners = resolve_owners(decision, leak, chart)
    assert ids_roles(owners.functional) == [("E240", "研发负责人")]  # R&D answers for its documents ...
    assert ("E230", "法务") in ids_roles(owners.co_owners)  # ... with legal beside it, because of the leak
    legal = next(p for p in owners.co_owners if p.employee_id == "E230")
    assert "数据或文档泄露" in legal.why and "外泄" in legal.why

    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}", policy=policy)
    record = store.upsert_from_decision(decision, leak, owners, now=T0).record
    assert record.deadline_at == T0 + timedelta(hours=4)
    assert {p["employee_id"] for p in record.owners["co_owners"]} >= {"E230"}


def test_scenario_5_one_incident_reaches_crm_pm_and_lms(tmp_path, chart, policy, receiver):
    url, received = receiver
    dispatcher = WebhookDispatcher({name: f"{url}/{name}" for name in ("crm", "pm", "lms")}, SECRET, backoff_s=0.01)
    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}", policy=policy, webhooks=dispatcher)

    comment = RiskInput(
        subject="post:P-5501", event_kind="post", channel="app_review", internal=False, created_at=T0,
        text="宣传说一周见效，完全是夸大其词，再也不会买了", department_id="M1", sentiment_label="neg", p_neg=0.88,
        loss_type="reputation", function="marketing", reach_p50=900, reach_p90=6000, velocity_per_hour=120)
    decision = evaluate(comment, policy)
    warning = store.upsert_from_decision(decision, comment, resolve_owners(decision, comment, chart), now=T0).record

    partner = RiskInput(
        subject="complaint:partner-88", event_kind="complaint", channel="email", internal=False, created_at=T0,
        text="鉴于近期产品宣传争议，我司暂停下季度订单，等待贵司说明。", department_id="SA", sentiment_label="neg",
        p_neg=0.81, loss_type="opportunity", function="sales")
    pause = evaluate(partner, policy)
    store.upsert_from_decision(pause, partner, resolve_owners(pause, partner, chart), now=T0 + timedelta(hours=2))

    # marketing's responsibility is set: the warning is assigned to the marketing head
    store.assign(warning.id, "E100", "E110", now=T0 + timedelta(hours=5))
    assert dispatcher.flush(10)
    dispatcher.close()
    store.close()

    by_system = {r["system"]: (r["headers"]["X-Lossguard-Event"], json.loads(r["body"])["data"]) for r in received}
    assert set(by_system) == {"crm", "pm", "lms"}
    assert by_system["crm"][0] == "opened" and by_system["crm"][1]["warning"]["subject"] == "post:P-5501"
    assert [a["text"] for a in by_system["crm"][1]["actions"]] == ["通知销售跟进受影响的客户与合作方"]
    assert by_system["pm"][0] == "opened" and by_system["pm"][1]["warning"]["subject"] == "complaint:partner-88"
    event, lms = by_system["lms"]
    assert event == "assigned" and lms["warning"]["assignee"] == "E110"
    training = lms["actions"][0]
    assert "培训" in training["text"] and training["due_at"] == (T0 + timedelta(hours=5, days=3)).isoformat()
    assert all(verify_signature(r["body"], r["headers"][TIMESTAMP_HEADER], r["headers"][SIGNATURE_HEADER], SECRET)
               for r in received)


def test_scenario_7_overtime_post_on_a_job_forum_goes_to_hr_recruiting(tmp_path, chart, policy):
    post = RiskInput(
        subject="post:maimai-7781", event_kind="post", channel="maimai", internal=False, created_at=T0,
        text="入职半年天天加班到十一点，周末也要待命，劝大家慎重考虑。", department_id="R11", employee_id="E242",
        sentiment_label="neg", p_neg=0.9, loss_type="opportunity", function="hr",
        reach_p50=1500, reach_p90=8000, velocity_per_hour=60)
    decision = evaluate(post, policy)
    assert decision.grade == "orange" and decision.deadline_hours == 4
    texts = [action.text for action in decision.actions]
    assert "在脉脉原渠道公开回应，说明事实与整改措施" in texts
    assert any("招聘团队向候选人说明弹性工时" in text for text in texts)

    recruiting = next(action for action in decision.actions if "招聘团队" in action.text)
    assert recruiting.owner == "hr_recruiting" and recruiting.due_hours == 4
    assert not any(action.system == "pm" for action in decision.actions)  # a hiring loss, not a partner project

    owners = resolve_owners(decision, post, chart)
    assert ids_roles(owners.functional) == [("E210", "HR 负责人")]  # HR answers in the thread ...
    assert ids_roles(owners.co_owners) == [("E211", "HR 招聘")]  # ... recruiting tells candidates the facts
    assert owners.management[0].employee_id == "E240"  # 后端组 has no head: 研发中心 answers, and it is noted
    assert any("「后端组」未设负责人" in note for note in owners.notes)

    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}", policy=policy)
    found_at = T0 + timedelta(minutes=8)
    warning = store.upsert_from_decision(decision, post, owners, now=found_at).record
    assert warning.created_at - post.created_at <= timedelta(minutes=10)
    store.assign(warning.id, "E210", "E211", now=found_at + timedelta(minutes=20))
    store.resolve(warning.id, "E211", "true_alarm", actual_spread=6400,
                  notes="HR 已在原帖回应加班调休制度；招聘向候选人发送弹性工时说明", now=T0 + timedelta(days=1))
    outcome = store.export_feedback().iloc[0]
    assert (outcome.outcome, outcome.actual_spread) == ("true_alarm", 6400)  # spread held under 10,000


def test_scenario_8_culture_clash_names_marketing_head_culture_post_and_executive(tmp_path, chart, policy):
    criticism = RiskInput(
        subject="post:copy-618", event_kind="post", channel="weibo", internal=False, created_at=T0,
        text="市场部这条“不买就落伍”的文案，和我们“用户第一”的价值观完全相反。", department_id="M11",
        employee_id="E112", sentiment_label="neg", p_neg=0.91, loss_type="culture", function="marketing",
        keyword_hits=[{"term": "用户第一", "category": "value", "severity": 3, "start": 22, "end": 26}],
        reach_p50=6000, reach_p90=20000, velocity_per_hour=260, regions=12)
    decision = evaluate(criticism, policy)
    assert (decision.loss_type, decision.grade, decision.grade_level) == ("culture", "red", "I")
    assert any("价值观关键词严重度为 3（「用户第一」）" in reason for reason in decision.reasons)

    owners = resolve_owners(decision, criticism, chart)
    assert ("E110", "市场部负责人") in ids_roles(owners.management)  # management responsibility
    assert ids_roles(owners.functional) == [("E110", "市场部负责人")]  # marketing owns the copy ...
    assert ("E220", "企业文化岗") in ids_roles(owners.co_owners)  # ... culture joins it, it does not replace it
    assert "文化损失" in next(p.why for p in owners.co_owners if p.employee_id == "E220")
    assert (owners.executive.employee_id, owners.executive.role) == ("E100", "分管领导")  # supervision
    assert ids_roles(owners.direct) == [("E112", "文案策划")]

    by_text = {action.text: action for action in decision.actions}
    assert by_text["收紧文案审批流程：未经文化审核不得提交发布"].owner == "marketing_head"  # culture review blocks
    assert by_text["开展季度文化健康度调查，跟踪员工认同度"].owner == "culture"
    assert any(action.system == "lms" and "市场部" in action.text for action in decision.actions)

    store = WarningStore(f"sqlite:///{tmp_path / 'w.db'}", policy=policy)
    warning = store.upsert_from_decision(decision, criticism, owners, now=T0).record
    assert warning.deadline_at == T0 + timedelta(hours=1)
    assert [e.escalated_to["role"] for e in store.escalate_overdue(T0 + timedelta(hours=1))] == ["内容组负责人"]
    store.acknowledge(warning.id, "E110", now=T0 + timedelta(hours=1, minutes=10))
    store.assign(warning.id, "E110", "E110")
    store.resolve(warning.id, "E110", "true_alarm", actual_spread=18000,
                  notes="文案下架；审批流改为无文化审核不可提交；市场部完成培训；认同度 60→80，合规文案 70%→95%")
    record = store.get(warning.id)
    assert record.owners["executive"]["employee_id"] == "E100"
    assert store.verify_audit().ok
