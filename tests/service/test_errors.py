"""One error shape on every route, checked in-process: the service's ASGI app (BentoML's `to_asgi`, the same
middlewares and routes `bentoml serve` runs) behind Starlette's test client, no server process.

Every refusal is {error, detail: [{field, message}]} with the status its kind maps to (features/errors.py →
serving/http_errors.py): input 422, not found 404, conflict 409.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture(scope="module")
def client(inproc):
    return inproc


def shaped(response, status: int) -> list[dict]:
    """The reply has the status and the one shape; returns its detail list."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str) and body["error"]
    assert body["detail"] and all({"field", "message"} <= set(item) for item in body["detail"])
    return body["detail"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_engine_refusal_on_assess_names_the_field(client):
    event = {"kind": "post", "text": "客服态度太差了", "channel": "weibo", "department_id": "NO-SUCH-UNIT"}
    detail = shaped(client.post("/assess", json={"event": event}), 422)
    assert detail[0]["field"] == "event.department_id" and "NO-SUCH-UNIT" in detail[0]["message"]


def test_reposts_before_the_post_on_spread_name_the_repost(client):
    created = _now() - timedelta(hours=1)
    post = {"text": "新品发布", "channel": "weibo", "created_at": created.isoformat(), "author_followers": 10}
    reposts = [{"timestamp": (created + timedelta(minutes=1)).isoformat(), "user_followers": 1},
               {"timestamp": (created - timedelta(minutes=5)).isoformat(), "user_followers": 1}]
    detail = shaped(client.post("/spread", json={"post": post, "reposts": reposts}), 422)
    assert detail[0]["field"] == "reposts.1.timestamp"


def test_unknown_warning_is_404_and_illegal_transition_409_in_the_same_shape(client):
    assert shaped(client.get("/warnings/2147483000"), 404)[0]["field"] == "body"
    event = {"kind": "complaint", "text": "客服说我风险承受能力太低，直接挂电话，我要投诉到底，再也不买了",
             "channel": "complaint_hotline", "created_at": _now().isoformat()}
    warning = client.post("/assess", json={"event": event}).json()["warning"]
    assert warning is not None, "the complaint should file a warning"
    detail = shaped(client.post(f"/warnings/{warning['id']}/resolve", json={"outcome": "true_alarm"}), 409)
    assert "尚未确认" in detail[0]["message"]


def test_pydantic_errors_keep_the_shape_on_both_kinds_of_route(client):
    assert shaped(client.post("/sentiment", json={"texts": []}), 422)[0]["field"] == "texts"
    assert shaped(client.post("/warnings/1/assign", json={"assignee": ""}), 422)[0]["field"] == "assignee"


# ---- every route answers every refusal in the one shape, in Chinese ------------------------------------------
CJK = re.compile(r"[\u3400-\u9fff]")


def chinese(detail: list[dict], body: dict) -> None:
    assert CJK.search(body["error"]), body
    assert all(CJK.search(item["message"]) for item in detail), body


@pytest.fixture(scope="module")
def acknowledged(client) -> int:
    """A warning ready to be resolved, for the body-parsing cases of /warnings/{id}/resolve."""
    event = {"kind": "complaint", "text": "客服说我风险承受能力太低，直接挂电话，我要投诉到底，再也不买了",
             "channel": "complaint_hotline", "complaint_id": f"shape-{_now().timestamp()}"}
    warning = client.post("/assess", json={"event": event}).json()["warning"]
    assert warning is not None
    assert client.post(f"/warnings/{warning['id']}/ack").status_code == 200
    return warning["id"]


@pytest.mark.parametrize("content, status, field", [
    (b'{"outcome": "true_alarm", "notes": "\xff\xfe"}', 422, "body"),  # not UTF-8
    (b"[" * 1000 + b"]" * 1000, 422, "body"),  # nested 1,000 deep
    (b'{"outcome": "true_al', 422, "body"),  # truncated
    (b'{"outcome": "true_alarm", "actual_spread": NaN}', 422, "actual_spread"),
], ids=["invalid-utf8", "deep-nesting", "truncated", "nan"])
def test_warning_routes_answer_bad_bodies_in_the_one_shape(client, acknowledged, content, status, field):
    response = client.post(f"/warnings/{acknowledged}/resolve", content=content,
                           headers={"Content-Type": "application/json"})
    detail = shaped(response, status)
    assert detail[0]["field"] == field, detail
    chinese(detail, response.json())
    assert "数值过大" not in response.text


def test_non_json_is_415_on_every_route(client, acknowledged):
    for path in (f"/warnings/{acknowledged}/resolve", "/assess", "/sentiment"):
        response = client.post(path, content=b"outcome=true_alarm", headers={"Content-Type": "text/plain"})
        detail = shaped(response, 415)
        chinese(detail, response.json())


def test_a_nan_is_not_called_too_large_and_nothing_stays_in_english(client):
    record = {"employee_id": "E1", "department_id": "U001", "hire_date": "2020-01-01", "job_level": 3,
              "pay_vs_band": float("nan"), "overtime_hours": 10.0, "performance_rating": 3.0,
              "engagement_score": 70.0, "snapshot_date": "2024-01-01"}
    response = client.post("/attrition", content=json.dumps({"employees": [record]}),
                           headers={"Content-Type": "application/json"})
    detail = shaped(response, 422)
    assert detail[0]["field"] == "employees.0.pay_vs_band" and "有限数值" in detail[0]["message"]
    chinese(detail, response.json())


def test_unknown_routes_and_methods_answer_in_the_one_shape(client):
    chinese(shaped(client.get("/no-such-route"), 404), client.get("/no-such-route").json())
    response = client.delete("/warnings/1")
    chinese(shaped(response, 405), response.json())
