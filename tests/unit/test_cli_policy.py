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


def test_check_accepts_the_shipped_policy_and_lists_owners_and_routes():
    result = run("check", str(settings.policy_path))
    assert result.exit_code == 0, result.output
    assert "策略有效" in result.output and "cs_supervisor: 客服主管" in result.output
    assert "客户服务: 负责人 cs_supervisor" in result.output


def test_check_refuses_a_route_naming_an_unknown_owner(tmp_path):
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text(yaml.safe_dump({"routing": {"routes": [{"name": "公关", "match": {}, "owners": ["pr_head"]}]}},
                                     allow_unicode=True), encoding="utf-8")
    result = run("check", str(tenant))
    assert result.exit_code == 2
    assert "routing.routes[0].owners[0]" in result.output and "pr_head" in result.output


def test_test_prints_grade_rules_owners_and_actions(tmp_path):
    event = tmp_path / "e.json"
    event.write_text(json.dumps(COMPLAINT), encoding="utf-8")
    result = run("test", "--event", str(event))
    assert result.exit_code == 0, result.output
    assert "橙色预警" in result.output and "public_complaint" in result.output
    owners = result.output.split("负责人:\n")[1].split("建议行动:")[0].splitlines()
    catalog = Policy.load().owners
    assert owners and all(line.strip().split(":")[0] in catalog for line in owners)  # named from the catalog
    assert "生成客诉工单" in result.output


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
