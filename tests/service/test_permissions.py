"""Field- and scope-level permissions over real HTTP: a manager sees only their org subtree, by list and by id,
and never pay or performance, not even through a driver's explanation; the HR system sees them."""
from __future__ import annotations

from uuid import uuid4

import pytest

pytestmark = [pytest.mark.service, pytest.mark.slow]

PAY_WORDING = ("薪酬", "绩效")


@pytest.fixture(scope="module")
def two_warnings(live):
    """One warning inside the manager's department (a child team), one in another department."""
    inside = live.culture_event(20)
    outside = {"event": {"kind": "complaint", "complaint_id": f"scope-{uuid4().hex}", "channel": "complaint_hotline",
                         "text": "客服说我风险承受能力太低，直接挂了电话，泄露了我的用户隐私，我要投诉到12315",
                         "department_id": live.org.other, "severity": 5}}
    with live.client("hr") as client:
        first = client.post("/assess", json=inside).json()["warning"]
        second = client.post("/assess", json=outside).json()["warning"]
    assert first is not None and second is not None
    return first, second


def test_manager_lists_only_their_subtree(live, two_warnings):
    inside, outside = two_warnings
    with live.client("manager") as manager:
        listed = manager.get("/warnings", params={"limit": 1000}).json()["warnings"]
    ids = {w["id"] for w in listed}
    assert inside["id"] in ids and outside["id"] not in ids
    with live.client("admin") as admin:
        everything = {w["id"] for w in admin.get("/warnings", params={"limit": 1000}).json()["warnings"]}
    assert {inside["id"], outside["id"]} <= everything


def test_manager_cannot_read_or_act_on_another_subtree_by_id(live, two_warnings):
    inside, outside = two_warnings
    with live.client("manager") as manager:
        assert manager.get(f"/warnings/{inside['id']}").status_code == 200
        hidden = manager.get(f"/warnings/{outside['id']}")
        missing = manager.get("/warnings/999999")
        assert hidden.status_code == 404 and missing.status_code == 404
        assert hidden.json()["error"].replace(str(outside["id"]), "#") == \
            missing.json()["error"].replace("999999", "#")  # indistinguishable from a missing id
        assert manager.post(f"/warnings/{outside['id']}/ack").status_code == 404
        assert manager.post(f"/warnings/{outside['id']}/assign",
                            json={"assignee": live.org.unit_employee}).status_code == 404
    with live.client("admin") as admin:
        assert admin.get(f"/warnings/{outside['id']}").json()["status"] == "open"  # nothing changed
    with live.client("other_manager") as other:
        assert other.get(f"/warnings/{inside['id']}").status_code == 404
        assert other.get(f"/warnings/{outside['id']}").status_code == 200


def test_manager_sees_team_risk_only_in_their_subtree(live):
    with live.client("manager") as manager:
        assert manager.get(f"/teams/{live.org.unit}/risk").status_code == 200
        assert manager.get(f"/teams/{live.org.unit_child}/risk").status_code == 200
        assert manager.get(f"/teams/{live.org.other}/risk").status_code == 404
        assert manager.get(f"/teams/{live.org.root}/risk").status_code == 404  # the company: above their unit


def test_pay_and_performance_masked_for_managers_visible_to_hr(live):
    with live.client("manager") as manager:
        masked = manager.get(f"/teams/{live.org.unit}/risk").json()
    with live.client("hr") as hr:
        shown = hr.get(f"/teams/{live.org.unit}/risk").json()
    assert masked["employees"] and len(masked["employees"]) == len(shown["employees"])
    for employee in masked["employees"]:
        assert employee["pay_vs_band"] == "***" and employee["performance_rating"] == "***"
        assert not any(word in driver for driver in employee["drivers"] for word in PAY_WORDING
                       if "无权查看" not in driver)
    for employee in shown["employees"]:
        assert isinstance(employee["pay_vs_band"], float) and isinstance(employee["performance_rating"], float)
    assert [e["propensity"] for e in masked["employees"]] == [e["propensity"] for e in shown["employees"]]


def test_masked_drivers_are_the_pay_and_performance_ones(live):
    with live.client("manager") as manager:
        masked = manager.get(f"/teams/{live.org.unit}/risk").json()["employees"]
    with live.client("hr") as hr:
        shown = hr.get(f"/teams/{live.org.unit}/risk").json()["employees"]
    pairs = [(m, s) for a, b in zip(masked, shown, strict=True)
             for m, s in zip(a["drivers"], b["drivers"], strict=True)]
    changed = [(m, s) for m, s in pairs if m != s]
    assert changed, "pay is a planted driver: some explanation in a whole department should quote it"
    assert all("无权查看" in m and any(word in s for word in PAY_WORDING) for m, s in changed)
    untouched = [s for m, s in pairs if m == s]
    assert not any(word in s for s in untouched for word in PAY_WORDING)
