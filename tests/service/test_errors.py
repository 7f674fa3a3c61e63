"""One error shape on every route, checked in-process: the service's ASGI app (BentoML's `to_asgi`, the same
middlewares and routes `bentoml serve` runs) behind Starlette's test client, no server process.

Every refusal is {error, detail: [{field, message}]} with the status its kind maps to (features/errors.py →
serving/http_errors.py): input 422, not found 404, conflict 409.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.service]


@pytest.fixture(scope="module")
def client(champions, keys):
    from starlette.testclient import TestClient

    from serving.service import Lossguard

    with TestClient(Lossguard.to_asgi(), base_url="http://testserver",
                    headers={"X-API-Key": keys["admin"]}) as test_client:
        yield test_client


def shaped(response, status: int) -> list[dict]:
    """The reply has the status and the one shape; returns its detail list."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str) and body["error"]
    assert body["detail"] and all({"field", "message"} <= set(item) for item in body["detail"])
    return body["detail"]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
