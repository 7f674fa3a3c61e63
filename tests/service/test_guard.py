"""What the outside probe of #16 found, checked in-process (the service's ASGI app behind Starlette's test client):
bodies streamed past the cap, lax input types, unknown fields, non-UTF-8 JSON, invisible text, headers, /info,
ambiguous keys and bounded /metrics labels. Each test failed before its fix."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from features.settings import settings

pytestmark = [pytest.mark.slow, pytest.mark.service]

MiB = 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def fields(response) -> set[str]:
    return {d["field"] for d in response.json().get("detail", [])}


def event(**change) -> dict:
    return {"event": {"kind": "post", "text": "客服态度太差了", "channel": "weibo",
                      "created_at": (_now() - timedelta(hours=1)).isoformat(), **change}}


def streamed(head: bytes, filler: int, tail: bytes):
    """A body sent without Content-Length (chunked), 1 MiB at a time."""
    def chunks():
        yield head
        for _ in range(filler):
            yield b"a" * MiB
        yield tail
    return chunks()


# ---- 1. the body cap holds for streamed bodies ---------------------------------------------------------------
def test_a_streamed_body_past_the_cap_is_413_on_every_route(inproc):
    for path, head in (("/warnings/1/resolve", b'{"outcome": "true_alarm", "notes": "'),
                       ("/sentiment", b'{"texts": ["'),
                       ("/assess", b'{"event": {"kind": "post", "channel": "weibo", "text": "')):
        response = inproc.post(path, content=streamed(head, 12, b'"}}'), headers={"Content-Type": "application/json"})
        assert "content-length" not in {k.lower() for k in response.request.headers}
        assert response.status_code == 413, (path, response.status_code, response.text[:200])
        assert response.json()["detail"][0]["field"] == "body"


# ---- 6. strict inputs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"author_followers": True}, "event.author_followers"),
    ({"author_followers": 12.0}, "event.author_followers"),
    ({"internal": "yes"}, "event.internal"),
    ({"created_at": 253402300799}, "event.created_at"),
    ({"created_at": "253402300799"}, "event.created_at"),
    ({"employee_id": "\x00"}, "event.employee_id"),
    ({"severity": "3"}, "event.severity"),
], ids=["bool-as-int", "float-as-int", "string-as-bool", "number-as-time", "digits-as-time", "nul-id", "str-int"])
def test_assess_refuses_values_of_the_wrong_json_type(inproc, change, field):
    response = inproc.post("/assess", json=event(**change))
    assert response.status_code == 422, response.text
    assert field in fields(response)


def test_attrition_dates_must_be_iso_text_and_ids_visible(inproc):
    base = {"employee_id": "E1", "department_id": "U001", "hire_date": "2020-01-01", "job_level": 3,
            "pay_vs_band": 1.0, "overtime_hours": 10, "performance_rating": 3, "engagement_score": 70,
            "snapshot_date": "2024-01-01"}
    for change, field in (({"hire_date": 0}, "employees.0.hire_date"),
                          ({"snapshot_date": "20240101"}, "employees.0.snapshot_date"),
                          ({"employee_id": "\x00"}, "employees.0.employee_id"),
                          ({"job_level": True}, "employees.0.job_level")):
        response = inproc.post("/attrition", json={"employees": [{**base, **change}]})
        assert response.status_code == 422 and field in fields(response), (change, response.text)


def test_unknown_fields_are_refused_at_every_level(inproc):
    created = _now() - timedelta(hours=1)
    post = {"text": "新品发布", "channel": "weibo", "created_at": created.isoformat(), "author_followers": 10}
    repost = {"timestamp": (created + timedelta(minutes=1)).isoformat(), "user_followers": 1}
    record = {"employee_id": "E1", "department_id": "U001", "hire_date": "2020-01-01", "job_level": 3,
              "pay_vs_band": 1.0, "overtime_hours": 10, "performance_rating": 3, "engagement_score": 70,
              "snapshot_date": "2024-01-01"}
    cases = [("/assess", {**event(), "surprise": 1}, "surprise"),
             ("/spread", {"post": {**post, "surprise": 1}}, "post.surprise"),
             ("/spread", {"post": post, "reposts": [{**repost, "surprise": 1}]}, "reposts.0.surprise"),
             ("/spread", {"post": post, "surprise": 1}, "surprise"),
             ("/assess", event(reposts=[{**repost, "surprise": 1}]), "event.reposts.0.surprise"),
             ("/attrition", {"employees": [{**record, "surprise": 1}]}, "employees.0.surprise"),
             ("/sentiment", {"texts": ["好"], "surprise": 1}, "surprise")]
    for path, body, field in cases:
        response = inproc.post(path, json=body)
        assert response.status_code == 422 and field in fields(response), (path, field, response.text)


@pytest.mark.parametrize("content_type", ["application/json; charset=gbk", "application/json; charset=latin-1"])
def test_json_in_another_charset_is_415(inproc, content_type):
    body = '{"texts": ["客服态度太差了"]}'.encode("gbk")
    for path in ("/sentiment", "/warnings/1/resolve"):
        response = inproc.post(path, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, (path, response.text)
    ok = inproc.post("/sentiment", content='{"texts": ["好"]}'.encode(),
                     headers={"Content-Type": "application/json; charset=UTF-8"})
    assert ok.status_code == 200, ok.text


# ---- 8. invisible and control text --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\u200b\u200b\u200b", "\u202e\u2066\u2069", "\x00坏", "好\x07"],
                         ids=["zero-width", "bidi-only", "nul", "bell"])
def test_text_with_controls_or_nothing_visible_is_refused_by_name(inproc, text):
    response = inproc.post("/sentiment", json={"texts": ["正常的一句话", text]})
    assert response.status_code == 422, response.text
    assert fields(response) == {"texts.1"}


def test_bidi_overrides_are_removed_before_scoring_storing_and_display(inproc):
    from serving.store import WarningStore

    raw = "客服说我风险承受能力太低，直接挂电话，\u202e我要投诉到底\u202c，再也不买了"
    plain = raw.replace("\u202e", "").replace("\u202c", "")
    scored = inproc.post("/sentiment", json={"texts": [raw, plain]}).json()
    assert scored[0]["scores"] == scored[1]["scores"]
    for hit in scored[0]["keyword_hits"]:  # offsets point into the text as sent
        assert raw[hit["start"]:hit["end"]].replace("\u202e", "").replace("\u202c", "") == hit["term"]
    body = {"event": {"kind": "complaint", "text": raw, "channel": "complaint_hotline",
                      "complaint_id": f"bidi-{uuid.uuid4().hex}"}}
    warning = inproc.post("/assess", json=body).json()["warning"]
    assert warning is not None and warning["text"] == plain
    shown = inproc.get(f"/warnings/{warning['id']}").json()
    assert "\u202e" not in shown["text"]
    # the latest entry is this event's: a complaint about an issue already complained about (this one is the README's
    # example) joins that warning (serving.monitoring clusters), so the first entry may be another's
    audited = WarningStore(settings.warnings_db).audit_entries(warning["id"])[-1].after
    assert audited["risk"]["raw_text"] == raw  # the audit keeps what was sent


# ---- 9. headers and /info -----------------------------------------------------------------------------------------
def test_review_page_has_csp_frame_and_sniffing_headers_and_no_inline_script(inproc):
    page = inproc.get("/review/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), "inline script on the review page"
    assert not re.search(r"\son[a-z]+=", page.text), "inline event handler on the review page"
    script = inproc.get("/review/static/review.js")
    assert script.headers["x-content-type-options"] == "nosniff"


def test_info_shows_the_tracking_uri_to_admins_only(inproc, keys):
    assert "tracking_uri" in inproc.get("/info").json()
    for role in ("manager", "hr"):
        info = inproc.get("/info", headers={"X-API-Key": keys[role]})
        assert info.status_code == 200 and "tracking_uri" not in info.json(), role


# ---- 10. two keys --------------------------------------------------------------------------------------------------
def test_a_request_with_two_api_keys_is_refused(inproc, keys):
    response = inproc.get("/warnings", headers=[("X-API-Key", keys["manager"]), ("X-API-Key", keys["admin"])])
    assert response.status_code == 400 and fields(response) == {"X-API-Key"}, response.text
