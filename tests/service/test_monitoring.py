"""Monitoring end to end in-process, on the synthetic company's planted monitoring feed (no server, no training):
a planted spike becomes one graded trend warning with owners; a burst of complaints about one issue through
/assess becomes one warning with a count and examples; every scored event is counted with one write per batch;
the fixes the generator planted are measured through the store as it planted them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features.keywords import KeywordLibrary
from features.modelio import LoadedModel
from features.text import TextFeaturizer, TextNormalizer
from serving.engine import Engine
from serving.monitoring.evaluation import Evaluator
from serving.monitoring.monitor import Monitor
from serving.owners import OrgChart, resolve_owners
from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore
from synthetic.texts import _corpus
from tests.service.test_engine import AttritionStandIn, SpreadStandIn, TextStandIn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def company(synthetic_dir) -> dict:
    tables = {t: pd.read_parquet(synthetic_dir / f"{t}.parquet")
              for t in ("org_units", "employees", "snapshots", "posts", "complaints", "series", "complaint_bursts")}
    truth = json.loads((synthetic_dir / "truth.json").read_text(encoding="utf-8"))["monitoring"]
    return {"tables": tables, "truth": truth,
            "chart": OrgChart.from_frame(tables["org_units"], tables["employees"]), "policy": Policy.load()}


@pytest.fixture(scope="module")
def vectorize():
    normalizer = TextNormalizer()
    featurizer = TextFeaturizer().fit(normalizer.batch(_corpus()["text"].tolist()))
    return lambda texts: featurizer.transform(normalizer.batch(list(texts)))


def _store(tmp_path, policy) -> WarningStore:
    return WarningStore(f"sqlite:///{tmp_path / 'warnings.db'}", policy=policy)


def test_planted_spikes_become_one_graded_trend_warning_per_series_with_owners(company, tmp_path):
    truth, series = company["truth"], company["tables"]["series"]
    start = pd.Timestamp(truth["start"])
    scored_from = start + pd.Timedelta(weeks=truth["warmup_weeks"])
    late = [s for s in truth["spikes"] if pd.Timestamp(s["start"]) >= scored_from]
    departments = sorted({s["department_id"] for s in late})[:5]
    store = _store(tmp_path, company["policy"])
    store.add_counts(series[series["department_id"].isin(departments)].to_dict("records"))
    monitor = Monitor(store, company["policy"], company["chart"], background=False)
    monitor.replay(scored_from.to_pydatetime(), (start + pd.Timedelta(weeks=truth["weeks"])).to_pydatetime())

    warnings = [w for w in store.list(limit=10_000) if w.event_kind == "trend"]
    planted = [s for s in late if s["department_id"] in departments]
    covered = 0
    for spike in planted:
        begin = pd.Timestamp(spike["start"]).to_pydatetime()
        covered += any(w.department_id == spike["department_id"]
                       and w.created_at - timedelta(hours=1) <= begin <= w.last_event_at for w in warnings)
    assert len(planted) >= 10 and covered / len(planted) >= 0.9
    # one open warning per series: spikes of a department within the grouping window share a warning
    per_department = pd.Series([w.department_id for w in warnings]).value_counts()
    weeks = truth["weeks"] - truth["warmup_weeks"]
    assert per_department.max() <= weeks  # at most one per week (the default trend grouping window)
    unmatched = [w for w in warnings if not any(
        w.department_id == s["department_id"]
        and w.created_at - timedelta(hours=1) <= pd.Timestamp(s["start"]).to_pydatetime() <= w.last_event_at
        for s in planted)]
    assert len(unmatched) <= len(departments) * weeks * 7 / 30  # at most one false spike per series per 30 days
    for w in warnings:
        assert w.subject == f"trend:{w.department_id}" and w.grade in ("blue", "yellow", "orange", "red")
        assert w.owners["management"] or w.owners["direct"]
        assert "基线" in w.decision["reasons"][0] and "倍" in w.decision["reasons"][0]
    assert store.verify_audit().ok


def test_planted_fixes_are_measured_against_matched_departments(company, tmp_path):
    """The company's planted fixes, filed and resolved as people would: the evaluator's estimate has the planted
    sign where the fix did something, and every interval holds its estimate."""
    truth, series, policy = company["truth"], company["tables"]["series"], company["policy"]
    hourly = series.assign(bucket_start=series["bucket_start"].dt.floor("h")).groupby(
        ["bucket_start", "department_id", "channel", "loss_type", "keyword_category", "kind"], as_index=False)[
        ["total", "negative", "neg_reach"]].sum()
    store = _store(tmp_path, policy)
    store.add_counts(hourly.to_dict("records"))
    monitor = Monitor(store, policy, company["chart"], background=False)
    people = company["tables"]["employees"][["employee_id", "department_id", "hire_date", "leave_date"]]
    monitor.evaluator = Evaluator(monitor, people)  # culture warnings: leavers before/after too
    filed = {}
    for number, fix in enumerate(truth["effects"]):
        created, resolved = (pd.Timestamp(fix[k]).to_pydatetime() for k in ("created_at", "resolved_at"))
        risk = RiskInput(subject=f"post:fix{number}", event_kind="post", text="负面内容", channel="weibo",
                         department_id=fix["department_id"], sentiment_label="neg", p_neg=0.95,
                         loss_type=fix["loss_type"],
                         keyword_hits=[{"term": "星启", "category": "company", "severity": 1}])
        decision = evaluate(risk, policy)
        record = store.upsert_from_decision(decision, risk, resolve_owners(decision, risk, company["chart"]),
                                            now=created).record
        store.acknowledge(record.id, "tester", now=created + timedelta(minutes=5))
        filed[store.resolve(record.id, "tester", "true_alarm", now=resolved).id] = fix
    end = pd.Timestamp(truth["start"]) + pd.Timedelta(weeks=truth["weeks"])
    answer = monitor.effects_for(None, now=end.to_pydatetime())
    json.dumps(answer, allow_nan=False)  # what the API returns is plain JSON
    found = answer["effects"]
    estimated = [e for e in found if e["status"] == "estimated"]
    assert len(filed) >= 3 and len(estimated) >= len(filed) - 1
    for effect in estimated:
        planted, measured = filed[effect["warning_id"]], effect["metrics"]["negative"]
        assert measured["low"] <= measured["estimate"] <= measured["high"]
        if abs(planted["size"]) >= 0.2:
            assert np.sign(measured["estimate"]) == np.sign(planted["size"]), (planted, measured)
        assert effect["chart"]["treated"] and len(effect["controls"]) >= 2
        assert effect["summary_zh"][0].startswith("整改后负面声量相对对照组变化")
        if effect["loss_type"] == "culture":  # the team's leavers, per 100 people and 30 days, before and after
            assert {"leavers", "attrition_risk_now"} <= set(effect["metrics"])
            leavers = effect["metrics"]["leavers"]
            assert leavers is None or (leavers["low"] <= leavers["estimate"] <= leavers["high"]
                                       and leavers["treated_before"] >= 0)
    department = truth["effects"][0]["department_id"]
    resolved = pd.Timestamp(truth["effects"][0]["resolved_at"])
    report = monitor.report_for(None, department, f"{resolved.year}Q{resolved.quarter}", now=end.to_pydatetime())
    assert report["effects"]["resolved"] >= 1 and report["summary_zh"]
    board = monitor.dashboard_for(None, None, (end - pd.Timedelta(days=14)).to_pydatetime(), end.to_pydatetime())
    assert board["volume"]["departments"] and board["grades"]["days"]
    json.dumps([report, board], allow_nan=False)


@pytest.fixture
def engine(company, vectorize, tmp_path) -> Engine:
    models = {name: LoadedModel(name, "7", f"models:/{name}@champion", model) for name, model in {
        "sentiment": TextStandIn("sentiment"), "loss_type": TextStandIn("loss_type"),
        "function": TextStandIn("function"), "attrition": AttritionStandIn(), "spread": SpreadStandIn()}.items()}
    policy, chart = company["policy"], company["chart"]
    store = _store(tmp_path, policy)
    built = Engine(models=models, keywords=KeywordLibrary.load(), policy=policy, chart=chart, store=store,
                   roster=pd.DataFrame())
    built.monitor = Monitor(store, policy, chart, vectorize=vectorize, background=False)
    return built


def test_a_complaint_burst_through_assess_files_one_warning_per_issue(engine, company):
    """The planted bursts, replayed as /assess batches: each issue's complaints end in one warning whose count
    feeds the grade; unrelated complaints keep warnings of their own."""
    bursts = company["tables"]["complaint_bursts"]
    shift = datetime(2026, 11, 27, 12) - bursts["created_at"].max().to_pydatetime()
    events = [{"kind": "complaint", "text": f"负面 {r.text}", "channel": r.channel, "complaint_id": r.complaint_id,
               "created_at": r.created_at.to_pydatetime() + shift, "department_id": r.department_id,
               "severity": int(r.severity)} for r in bursts.itertuples()]
    results = []
    for i in range(0, len(events), 16):
        results += engine.assess_many(events[i:i + 16])
    subjects = [r["warning"]["subject"] if r["warning"] else None for r in results]
    shares, sizes = [], []
    for issue in company["truth"]["complaint_issues"]:
        mine = [s for s, k in zip(subjects, bursts["planted_issue"], strict=True) if k == issue["issue"]]
        top = max(set(mine), key=mine.count)
        shares.append(mine.count(top) / len(mine))
        warning = next(w for w in engine.store.list(limit=10_000) if w.subject == top)
        sizes.append(warning.risk["monitoring"]["cluster_size"] / issue["size"])
        assert warning.grade in ("yellow", "orange", "red") and len(warning.risk["monitoring"]["examples"]) >= 3
        assert warning.events_count >= 0.9 * issue["size"]
    assert np.mean(shares) >= 0.9 and np.mean(sizes) >= 0.9
    view = engine.warning_view(engine.store.list(subject=top)[0])
    assert view["monitoring"]["cluster_size"] >= 5 and view["monitoring"]["examples"]


def test_every_scored_event_is_counted_with_one_write_per_batch(engine, company):
    statements: list[str] = []
    for db in {engine.store.engine, engine.store.aggregate_engine}:
        sa.event.listen(db, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: statements.append(statement))
    unit = company["tables"]["org_units"].query("level == 2")["unit_id"].iloc[0]
    now = datetime(2026, 11, 27, 12)
    batch = [{"kind": "post", "text": "负面 文案" if i % 3 else "年会通知", "channel": "weibo", "department_id": unit,
              "post_id": f"p{i}", "created_at": now - timedelta(minutes=i)} for i in range(40)]
    engine.assess_many(batch)
    writes = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO SERIES_COUNTS")]
    assert len(writes) == 1
    frame = engine.store.series_frame(now - timedelta(hours=2), now + timedelta(hours=1), by=("department_id",))
    assert frame["total"].sum() == 40 and frame["negative"].sum() == sum(1 for i in range(40) if i % 3)


def test_a_surge_of_negative_posts_through_assess_becomes_a_trend_warning(engine, company):
    """Four weeks of the department's planted feed as history, then 40 negative posts in one bucket via /assess:
    the scan of that bucket files one trend warning with owners; the next bucket's scan updates the same one."""
    series, truth = company["tables"]["series"], company["truth"]
    quiet = series.groupby("department_id")["negative"].sum().idxmin()
    end = pd.Timestamp(truth["start"]) + pd.Timedelta(weeks=5)
    history = series[(series["department_id"] == quiet) & (series["bucket_start"] < end)]
    engine.store.add_counts(history.to_dict("records"))
    surge_at = end.to_pydatetime() + timedelta(minutes=3)
    posts = [{"kind": "post", "text": f"负面 第{i}条", "channel": "weibo", "department_id": quiet, "post_id": f"s{i}",
              "created_at": surge_at + timedelta(seconds=10 * i)} for i in range(40)]
    engine.assess_many(posts)
    filed = engine.monitor.scan(end.to_pydatetime() + timedelta(minutes=10), force=True)
    assert len(filed) == 1
    warning = filed[0].record
    assert warning.event_kind == "trend" and warning.department_id == quiet and warning.grade != "blue"
    assert warning.owners["functional"] and (warning.owners["management"] or warning.owners["direct"])
    engine.assess_many([{**p, "post_id": f"t{i}", "created_at": p["created_at"] + timedelta(minutes=10)}
                        for i, p in enumerate(posts)])
    again = engine.monitor.scan(end.to_pydatetime() + timedelta(minutes=20), force=True)
    assert [f.record.id for f in again] == [warning.id] and again[0].record.events_count == 2


def test_two_workers_grow_one_cluster_through_the_store(company, vectorize, tmp_path):
    """Each worker caches what it has seen of the clusters; the store stays the one truth: complaints about one
    issue sent alternately to two workers end in one cluster with every complaint counted."""
    from serving.monitoring.clusters import Complaint

    store = _store(tmp_path, company["policy"])
    workers = [Monitor(store, company["policy"], company["chart"], vectorize=vectorize, background=False)
               for _ in range(2)]
    unit = company["tables"]["org_units"].query("level == 2")["unit_id"].iloc[0]
    t0 = datetime(2026, 11, 27, 9)
    rng = np.random.default_rng(4)
    wordings = ("Q3蓝牙耳机左耳没声音", "Q3蓝牙耳机一边耳机没有声音", "Q3蓝牙耳机左耳机突然不响了")
    seen = []
    for batch in range(12):
        items = {k: Complaint(f"{rng.choice(wordings)}，希望尽快处理", unit, t0 + timedelta(minutes=batch * 5 + k))
                 for k in range(3)}
        seen += list(workers[batch % 2].assign_clusters(items).values())
    assert len({c.id for c in seen}) == 1
    assert store.cluster(seen[0].id).size == 36 and seen[-1].size == 36


def test_workers_matching_at_the_same_moment_never_split_an_issue(company, vectorize, tmp_path):
    """Four workers receive the first complaints of one new issue at the same instant, over and over: matching
    is optimistic, and a worker that finds a cluster opened meanwhile matches again, so each issue stays one."""
    import threading

    from serving.monitoring.clusters import Complaint

    store = _store(tmp_path, company["policy"])
    unit = company["tables"]["org_units"].query("level == 2")["unit_id"].iloc[0]
    t0 = datetime(2026, 11, 27, 9)
    issues = ["X5扫地机器人充不进电", "Q3蓝牙耳机左耳没声音", "会员积分莫名被清零", "App 3.2版本一打开就闪退"]
    for round_, text in enumerate(issues):
        workers = [Monitor(store, company["policy"], company["chart"], vectorize=vectorize, background=False)
                   for _ in range(4)]
        start = threading.Barrier(4)
        errors: list[Exception] = []

        def send(monitor, k, text=text, round_=round_, start=start, errors=errors):
            try:
                start.wait()
                monitor.assign_clusters({0: Complaint(text, unit, t0 + timedelta(hours=round_, seconds=k))})
            except Exception as exc:  # noqa: BLE001 - collected: a thread's exception must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=send, args=(w, k)) for k, w in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    with store.engine.connect() as conn:
        sizes = sorted(r.size for r in conn.execute(sa.text("SELECT size FROM complaint_clusters")))
    assert sizes == [4, 4, 4, 4]
