"""The JSON API over real HTTP: every endpoint's happy path, the limits, and authentication.

Runs against one `bentoml serve` with the session's champion models (see conftest.py)."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pandas as pd
import pytest

from features.settings import settings

pytestmark = [pytest.mark.service, pytest.mark.slow]

ANNOUNCEMENT = "公司年会通知：12月20日晚六点在三楼多功能厅举行，请各部门准时参加"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def field_names(response) -> set[str]:
    return {d["field"] for d in response.json().get("detail", [])}


# ---- prediction APIs ----------------------------------------------------------------------------------------
def test_sentiment_scores_each_text_with_keyword_hits(live):
    texts = [live.culture_event(0)["event"]["text"], ANNOUNCEMENT, "客服说我风险承受能力太低，直接挂电话，再也不买了"]
    with live.client("hr") as client:
        response = client.post("/sentiment", json={"texts": texts})
    assert response.status_code == 200, response.text
    results = response.json()
    assert len(results) == 3
    for text, result in zip(texts, results, strict=True):
        assert result["label"] in ("neg", "neu", "pos")
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-3)
        assert result["label"] == max(result["scores"], key=result["scores"].get)
        for hit in result["keyword_hits"]:
            assert text[hit["start"]:hit["end"]] == hit["term"]
    assert results[0]["label"] == "neg" and results[2]["label"] == "neg"
    assert results[1]["label"] != "neg"
    assert "用户第一" in {h["canonical"] for h in results[0]["keyword_hits"]}
    assert "sentiment=" in response.headers["x-lossguard-models"]


def test_assess_culture_clash_files_a_warning_with_owners_and_deadline(live):
    body = live.culture_event()
    with live.client("hr") as client:
        response = client.post("/assess", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    spread = result["predictions"]["spread"]
    assert spread["observed"] == len(body["event"]["reposts"])
    assert spread["observed"] <= spread["p10"] <= spread["p50"] <= spread["p90"]
    assert spread["regions"] >= 8
    warning = result["warning"]
    assert warning is not None and warning["grade"] in ("orange", "red")
    assert any("用户第一" in reason for reason in warning["reasons"])
    owners = warning["owners"]
    assert owners["functional"]
    assert owners["direct"][0]["unit_id"] == live.org.unit_child  # the team that published it
    assert live.org.unit_head in {p["employee_id"] for p in owners["management"]}  # its department head
    assert pd.Timestamp(warning["deadline"]) > pd.Timestamp.now(tz="UTC")
    assert warning["actions"]
    people = owners["functional"] + owners["co_owners"] + owners["direct"] + owners["management"]
    assert all(person["why"] for person in people)  # each says why it is on the warning
    items = warning["action_items"]
    assert [item["text"] for item in items] == warning["actions"]
    assert all(item["owner"] and item["owner_label"] and item["due_at"] for item in items)
    assert set(result["model_versions"]) == {"sentiment", "loss_type", "function", "attrition", "spread"}


def test_assess_neutral_announcement_gives_no_warning(live):
    body = {"event": {"kind": "post", "text": ANNOUNCEMENT, "channel": "employee_forum",
                      "department_id": live.org.unit_child}}
    with live.client("hr") as client:
        response = client.post("/assess", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["warning"] is None
    assert result["predictions"]["sentiment"]["label"] != "neg"
    assert result["predictions"]["spread"] is None


def test_assess_groups_updates_of_one_post_into_one_warning(live):
    with live.client("hr") as client:
        post_id = f"grouped-{uuid4().hex}"
        first = client.post("/assess", json=live.culture_event(50, post_id)).json()["warning"]
        second = client.post("/assess", json=live.culture_event(400, post_id)).json()["warning"]
    assert first["id"] == second["id"]
    assert second["events_count"] == first["events_count"] + 1


def test_attrition_scores_records_and_explains(live, company):
    snapshots = pd.read_parquet(company / "snapshots.parquet")
    latest = snapshots[snapshots["snapshot_date"] == snapshots["snapshot_date"].max()].head(2)
    records = []
    for _, row in latest.iterrows():
        record = {k: (None if pd.isna(v) else v) for k, v in row.items()
                  if k in ("employee_id", "department_id", "manager_id", "job_level", "role", "location",
                           "pay_vs_band", "overtime_hours", "performance_rating", "engagement_score")}
        for column in ("hire_date", "last_promotion_date", "snapshot_date"):
            record[column] = None if pd.isna(row[column]) else pd.Timestamp(row[column]).date().isoformat()
        records.append(record)
    strained = {**records[0], "employee_id": "strained", "overtime_hours": 95.0, "pay_vs_band": 0.7,
                "engagement_score": 20.0}
    settled = {**records[0], "employee_id": "settled", "overtime_hours": 0.0, "pay_vs_band": 1.3,
               "engagement_score": 90.0}
    with live.client("hr") as client:
        response = client.post("/attrition", json={"employees": records + [strained, settled]})
    assert response.status_code == 200, response.text
    scored = {r["employee_id"]: r for r in response.json()}
    assert set(scored) == {r["employee_id"] for r in records} | {"strained", "settled"}
    for result in scored.values():
        assert 0 <= result["propensity"] <= 1 and result["band"] in ("low", "medium", "high")
    assert scored["strained"]["propensity"] > scored["settled"]["propensity"]
    assert scored["strained"]["drivers"]


def test_spread_forecast_from_reposts_so_far(live):
    created = _now() - timedelta(minutes=30)
    post = {"text": "某公司客服态度恶劣，大家帮忙转发", "channel": "xiaohongshu", "created_at": created.isoformat(),
            "author_followers": 800}
    few = [{"timestamp": (created + timedelta(minutes=m)).isoformat(), "user_followers": 100} for m in range(5)]
    many = [{"timestamp": (created + timedelta(seconds=10 * i)).isoformat(), "user_followers": 2000,
             "region": "广东"} for i in range(150)]
    with live.client("hr") as client:
        quiet = client.post("/spread", json={"post": post, "reposts": few})
        busy = client.post("/spread", json={"post": post, "reposts": many})
    assert quiet.status_code == 200 and busy.status_code == 200, (quiet.text, busy.text)
    quiet, busy = quiet.json(), busy.json()
    assert quiet["observed"] == 5 and busy["observed"] == 150
    assert busy["p50"] > quiet["p50"]
    assert busy["time_to_threshold"] is not None and busy["time_to_threshold"] <= 30  # 100 passed already
    assert quiet["model_version"]


def test_spread_and_assess_take_tz_aware_times_and_reposts_without_follower_counts(live):
    """The same instants in Asia/Shanghai and in naive UTC give the same forecast, on /spread and /assess; reposts
    without follower counts are forecast, with reach unknown (null) rather than the author's followers alone."""
    shanghai = timezone(timedelta(hours=8))
    created = _now() - timedelta(minutes=40)
    moments = [created + timedelta(seconds=20 * i) for i in range(90)]

    def body(aware: bool) -> dict:
        zone = (lambda t: t.replace(tzinfo=UTC).astimezone(shanghai)) if aware else (lambda t: t)
        return {"post": {"text": "某公司客服态度恶劣，大家帮忙转发", "channel": "weibo",
                         "created_at": zone(created).isoformat(), "author_followers": 800},
                "reposts": [{"timestamp": zone(t).isoformat()} for t in moments]}

    with live.client("hr") as client:
        aware, naive = client.post("/spread", json=body(True)), client.post("/spread", json=body(False))
        event = {"event": {**body(True)["post"], "reposts": body(True)["reposts"], "post_id": f"tz-{uuid4().hex[:8]}"}}
        assessed = client.post("/assess", json=event)
    assert aware.status_code == naive.status_code == assessed.status_code == 200, (aware.text, assessed.text)
    aware, naive, spread = aware.json(), naive.json(), assessed.json()["predictions"]["spread"]
    assert aware["observed"] == naive["observed"] == spread["observed"] == 90
    assert aware["window_minutes"] == pytest.approx(naive["window_minutes"], abs=0.5)
    assert aware["p50"] == pytest.approx(naive["p50"], rel=0.05)
    assert spread["p50"] == pytest.approx(aware["p50"], rel=0.05)
    assert aware["reach"] is None and spread["reach"] is None
    assert aware["p10"] <= aware["p50"] <= aware["p90"]


def test_team_risk_lists_the_riskiest_people_first(live):
    with live.client("hr") as client:
        response = client.get(f"/teams/{live.org.unit}/risk")
    assert response.status_code == 200, response.text
    team = response.json()
    assert team["headcount"] > 0 and team["employees"]
    propensities = [e["propensity"] for e in team["employees"]]
    assert propensities == sorted(propensities, reverse=True)
    assert team["expected_leavers"] >= sum(propensities) - 0.01


# ---- warnings lifecycle -------------------------------------------------------------------------------------
def test_warning_lifecycle_ack_assign_resolve_with_audit(live):
    with live.client("admin") as client:
        warning = client.post("/assess", json=live.culture_event(10)).json()["warning"]
        wid = warning["id"]
        listed = client.get("/warnings", params={"status": "open"}).json()["warnings"]
        assert wid in {w["id"] for w in listed}
        assert client.post(f"/warnings/{wid}/resolve", json={"outcome": "true_alarm"}).status_code == 409
        acked = client.post(f"/warnings/{wid}/ack")
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
        again = client.post(f"/warnings/{wid}/ack")
        assert again.status_code == 409 and "确认" in again.json()["error"]
        unknown = client.post(f"/warnings/{wid}/assign", json={"assignee": "E99999"})
        assert unknown.status_code == 422 and field_names(unknown) == {"assignee"}
        assigned = client.post(f"/warnings/{wid}/assign", json={"assignee": live.org.unit_employee})
        assert assigned.status_code == 200 and assigned.json()["assignee"] == live.org.unit_employee
        resolved = client.post(f"/warnings/{wid}/resolve", json={
            "outcome": "true_alarm", "notes": "文案下线，补做文化审核", "corrected_labels": {"loss_type": "culture"}})
        assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
        assert client.post(f"/warnings/{wid}/assign", json={"assignee": live.org.unit_employee}).status_code == 409
        detail = client.get(f"/warnings/{wid}").json()
    actions = [e["action"] for e in detail["audit"]]
    assert actions[0] == "open" and actions[-3:] == ["acknowledge", "assign", "resolve"]
    assert all(e["actor"] == "test-admin(admin)" for e in detail["audit"][-3:])


def test_warning_filters_and_unknown_ids(live):
    with live.client("admin") as client:
        reds = client.get("/warnings", params={"grade": "red"}).json()["warnings"]
        assert all(w["grade"] == "red" for w in reds)
        assert client.get("/warnings/999999").status_code == 404
        assert client.post("/warnings/999999/ack").status_code == 404
        bad = client.get("/warnings", params={"grade": "purple"})
        assert bad.status_code == 422 and "grade" in bad.json()["error"]
        assert client.get("/warnings", params={"limit": 0}).status_code == 422
        assert client.get("/warnings/abc").status_code == 422
        assert client.post("/warnings/1/resolve", json={"outcome": "maybe"}).status_code == 422


# ---- bad input: 4xx naming the field, never a 500 -----------------------------------------------------------
@pytest.mark.parametrize("texts, status, field", [
    ([""], 422, "texts.0"),
    (["   "], 422, "texts.0"),
    (["好" * 100_000], 422, "texts.0"),
    (["好"] * (settings.max_batch + 1), 413, "texts"),
    ([], 422, "texts"),
    ("一段文字", 422, "texts"),
    ([1, 2], 422, "texts.0"),
])
def test_sentiment_rejects_bad_input_naming_the_field(live, texts, status, field):
    with live.client("hr") as client:
        response = client.post("/sentiment", json={"texts": texts})
    assert response.status_code == status, response.text
    assert field in field_names(response)
    assert response.json()["error"]


@pytest.mark.parametrize("change, field", [
    ({"text": ""}, "event.text"),
    ({"channel": "carrier_pigeon"}, "event.channel"),
    ({"kind": "complaint", "channel": "xiaohongshu"}, "event.channel"),
    ({"created_at": "2999-01-01T00:00:00"}, "event.created_at"),
    ({"created_at": "0004-01-01T00:00:00"}, "event.created_at"),
    ({"author_followers": -5}, "event.author_followers"),
    ({"department_id": "NO-SUCH-UNIT"}, "event.department_id"),
    ({"reposts": [{"timestamp": "2000-01-01T00:00:00", "user_followers": 1}]}, "event.reposts.0.timestamp"),
    ({"surprise": 1}, "event.surprise"),
])
def test_assess_rejects_bad_events_naming_the_field(live, change, field):
    event = {"kind": "post", "text": "测试", "channel": "weibo",
             "created_at": (_now() - timedelta(hours=1)).isoformat(), **change}
    with live.client("hr") as client:
        response = client.post("/assess", json={"event": event})
    assert response.status_code == 422, response.text
    assert field in field_names(response), response.json()


def test_attrition_rejects_impossible_records(live):
    base = {"employee_id": "E1", "department_id": "U001", "hire_date": "2020-01-01", "job_level": 3,
            "pay_vs_band": 1.0, "overtime_hours": 10, "performance_rating": 3, "engagement_score": 70,
            "snapshot_date": "2024-01-01"}
    cases = [({**base, "pay_vs_band": 9.0}, "employees.0.pay_vs_band"),
             ({**base, "snapshot_date": "2019-01-01"}, "employees.0.snapshot_date"),
             ({**base, "hire_date": "2999-01-01", "snapshot_date": "2999-02-01"}, "employees.0.hire_date")]
    with live.client("hr") as client:
        for record, field in cases:
            response = client.post("/attrition", json={"employees": [record]})
            assert response.status_code == 422 and field in field_names(response), response.text
        duplicate = client.post("/attrition", json={"employees": [base, base]})
    assert duplicate.status_code == 422 and "employees.1.employee_id" in field_names(duplicate)


def test_non_json_and_oversized_bodies(live):
    with live.client("hr") as client:
        broken = client.post("/assess", content=b"{not json", headers={"Content-Type": "application/json"})
        form = client.post("/sentiment", content=b"--x\r\n",
                           headers={"Content-Type": "multipart/form-data; boundary=x"})
        huge = client.post("/sentiment", content=b"[" + b" " * (9 * 1024 * 1024) + b"]",
                           headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and field_names(broken) == {"body"}
    assert form.status_code == 415
    assert huge.status_code == 413


# ---- authentication and roles ------------------------------------------------------------------------------
def test_missing_or_unknown_key_is_401(live):
    with live.client() as anonymous:
        assert anonymous.post("/sentiment", json={"texts": ["好"]}).status_code == 401
        assert anonymous.get("/warnings").status_code == 401
        assert anonymous.get("/warnings", headers={"X-API-Key": "lg_not_a_key"}).status_code == 401


def test_roles_limit_what_a_key_may_call(live):
    with live.client("manager") as manager:
        assert manager.post("/sentiment", json={"texts": ["好"]}).status_code == 403
        assert manager.post("/assess", json=live.culture_event(0)).status_code == 403
        assert manager.get("/warnings").status_code == 200
    with live.client("hr") as hr:
        assert hr.get("/warnings").status_code == 200


# ---- operations --------------------------------------------------------------------------------------------
def test_health_readiness_metrics_and_info(live, champions):
    with live.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/metrics").status_code == 401  # LOSSGUARD_PUBLIC_METRICS=1 opens it
        spec = anonymous.get("/docs.json").json()
        assert {"/assess", "/sentiment", "/warnings/{warning_id}/ack"} <= set(spec["paths"])
        assert anonymous.get("/review/").status_code == 200
    with live.client("monitor") as monitor:
        metrics = monitor.get("/metrics").text
    assert "lossguard_events_assessed" in metrics and "bentoml_service_request_total" in metrics
    with live.client("manager") as manager:
        info = manager.get("/info").json()
    assert {name: m["version"] for name, m in info["models"].items()} == champions
    assert all(m["uri"].endswith("@champion") for m in info["models"].values())


def test_metrics_label_requests_by_route_template_only(live):
    """Unknown paths (a scanner, a typo) and raw bytes in a path must not add series to /metrics."""
    with live.client("admin") as client:
        before = len(client.get("/metrics").content)
        for _ in range(100):
            client.get(f"/probe-{uuid4().hex}")
        client.get("/info%00")
        client.get("/warnings/2147483000")
        text = client.get("/metrics").text
    assert "\x00" not in text and "probe-" not in text
    endpoints = set(re.findall(r'endpoint="([^"]*)"', text))
    assert {"unmatched", "/warnings/{warning_id}"} <= endpoints, sorted(endpoints)
    assert not any(e.startswith("/warnings/2") or e.startswith("/info\x00") for e in endpoints)
    assert len(text) < before + 20_000, "100 unknown paths grew /metrics"
