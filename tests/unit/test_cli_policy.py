"""`lossguard policy check | test`: validate a tenant policy and see what one event gets, without the service."""
from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cli import app
from features.settings import settings
from serving.policy import Policy

COMPLAINT = {"event_kind": "complaint", "channel": "complaint_hotline", "p_neg": 0.93, "sentiment_label": "neg",
             "loss_type": "reputation", "function": "customer_service", "reach_p90": 1500, "internal": False}


def run(*args: str):
    return CliRunner().invoke(app, ["policy", *args])


def test_check_accepts_the_shipped_policy_and_lists_kinds_owners_and_routes():
    result = run("check", str(settings.policy_path))
    assert result.exit_code == 0, result.output
    assert "策略有效" in result.output and "cs_supervisor: 客服主管" in result.output
    assert "客户服务: 负责人 cs_supervisor" in result.output
    assert "leak: 数据或文档泄露" in result.output and "劳动争议 → legal, hr_head" in result.output
    assert "舆情监测: 外部渠道负面帖子至少蓝色预警" in result.output


def test_check_refuses_a_route_naming_an_unknown_owner(tmp_path):
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text(yaml.safe_dump({"routing": {"co_owners": [{"name": "公关", "match": {}, "owners": ["pr_head"]}]}},
                                     allow_unicode=True), encoding="utf-8")
    result = run("check", str(tenant))
    assert result.exit_code == 2
    assert "routing.co_owners[0].owners[0]" in result.output and "pr_head" in result.output


def test_check_refuses_a_keyword_library_whose_kind_the_policy_lacks(tmp_path):
    library = tmp_path / "keywords.yaml"
    library.write_text(yaml.safe_dump({"tenants": {"default": {"sensitive": {"dealer_fraud": [
        {"term": "返利骗局", "severity": 2}]}}}}, allow_unicode=True), encoding="utf-8")
    result = run("check", str(settings.policy_path), "--keywords", str(library))
    assert result.exit_code == 2 and "keyword_kinds" in result.output and "dealer_fraud" in result.output
    tenant = tmp_path / "tenant.yaml"  # the tenant defines the kind, with its specialist and its action
    tenant.write_text(yaml.safe_dump({
        "keyword_kinds": {"dealer_fraud": {"name": "经销商欺诈"}},
        "routing": {"co_owners": [{"name": "经销商欺诈", "match": {"keyword_kinds": ["dealer_fraud"]},
                                   "owners": ["sales_head", "legal"]}]},
    }, allow_unicode=True), encoding="utf-8")
    result = run("check", str(tenant), "--keywords", str(library))
    assert result.exit_code == 0, result.output
    assert "dealer_fraud: 经销商欺诈" in result.output


def test_test_prints_grade_rules_owners_and_actions(tmp_path):
    event = tmp_path / "e.json"
    event.write_text(json.dumps(COMPLAINT), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 0, result.output
    assert "橙色预警" in result.output and "public_complaint" in result.output
    owners = result.output.split("负责人:\n")[1].split("建议行动:")[0].splitlines()
    catalog = Policy.load().owners
    assert owners and all(line.strip().split(":")[0] in catalog for line in owners)  # named from the catalog
    assert all(" — " in line for line in owners)  # each says why it is there
    assert "生成客诉工单" in result.output and "(负责: 客服主管, 4 小时内)" in result.output


def test_test_finds_keywords_in_the_text_and_shows_the_kind_and_the_fallback(tmp_path):
    """The issue's example: a customer-service complaint about 退货/投诉 went to legal with leak actions."""
    event = tmp_path / "e.json"
    event.write_text(json.dumps({**COMPLAINT, "event_kind": "post", "channel": "weibo", "function_confidence": 0.3,
                                 "text": "客服推三阻四不给退货，我要投诉到消协"}), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 0, result.output
    assert "敏感话题类别: exposure 公开投诉或曝光" in result.output
    threshold = Policy.load().function_confidence
    assert "management_head: 总经办负责人 (职能负责" in result.output and f"低于阈值 {threshold:.2f}" in result.output
    assert "法务" not in result.output and "保密" not in result.output


def test_test_names_the_people_from_an_org_chart(tmp_path, synthetic_dir):
    event = tmp_path / "e.json"
    event.write_text(json.dumps({**COMPLAINT, "function": "marketing", "loss_type": "culture"}), encoding="utf-8")
    result = run("test", "--event", str(event), "--org", str(synthetic_dir))
    assert result.exit_code == 0, result.output
    assert "职能负责人:" in result.output and "企业文化岗" in result.output


def test_test_refuses_unknown_fields_and_bad_values_naming_them(tmp_path):
    event = tmp_path / "e.json"
    event.write_text(json.dumps({**COMPLAINT, "velocity": 3}), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 2 and "velocity" in result.output
    event.write_text(json.dumps({**COMPLAINT, "p_neg": 7}), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 2 and "p_neg" in result.output
    event.write_text("{not json", encoding="utf-8")
    assert run("test", "--event", str(event)).exit_code == 2


def test_no_rule_fires_says_so(tmp_path):
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"event_kind": "post", "p_neg": 0.05, "sentiment_label": "pos"}), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 0 and "没有规则触发" in result.output
