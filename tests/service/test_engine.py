"""The Engine and the /assess batcher in-process, with small stand-in models (no training, no server): events
batched together fail alone, text models run once per batch, scope and masking hold, departments are inferred."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from features.contracts import ContractError, RowError
from features.errors import InputError, NotFound
from features.keywords import KeywordLibrary
from features.modelio import LoadedModel
from features.settings import settings
from serving.auth import Principal
from serving.engine import Engine
from serving.owners import OrgChart
from serving.rules import Policy
from serving.store import WarningStore
from serving.views import DRIVER_MASKED

NEGATIVE = "负面"
UNSURE = "拿不准"  # the function model's top guess (marketing) at probability 0.45


class TextStandIn:
    """Texts containing 负面 are negative culture/marketing (marketing at 0.45 when they also contain 拿不准);
    counts its calls."""

    LABELS = {"sentiment": ("neg", "neu", "pos"), "loss_type": ("culture", "none"),
              "function": ("marketing", "hr", "none")}

    def __init__(self, task: str):
        self.task, self.calls = task, 0
        self.labels = self.LABELS[task]

    def predict_proba(self, texts) -> np.ndarray:
        self.calls += 1
        neg = np.array([NEGATIVE in t for t in texts])
        if self.task == "sentiment":
            return np.column_stack([np.where(neg, 0.95, 0.05), np.where(neg, 0.04, 0.9), np.where(neg, 0.01, 0.05)])
        if self.task == "function":
            unsure = np.array([UNSURE in t for t in texts])
            return np.column_stack([np.where(unsure, 0.45, neg), np.where(unsure, 0.3, 0.0),
                                    np.where(unsure, 0.25, ~neg)]).astype(float)
        return np.column_stack([neg, ~neg]).astype(float)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        proba = self.predict_proba(frame["text"].tolist())
        out = pd.DataFrame(proba, columns=[f"p_{label}" for label in self.labels])
        out.insert(0, self.task if self.task != "sentiment" else "label", np.array(self.labels)[proba.argmax(1)])
        return out


class AttritionStandIn:
    horizon_days = 180

    def predict_frame(self, frame: pd.DataFrame, **tables) -> pd.DataFrame:
        overtime = pd.to_numeric(frame["overtime_hours"]).to_numpy()
        p = np.clip(overtime / 100, 0.01, 0.99)
        return pd.DataFrame({
            "employee_id": frame["employee_id"].astype(str), "propensity": p,
            "band": np.where(p > 0.5, "high", "low"),
            "drivers": [[f"薪酬为职级带宽中位值的 {v:.0%}", f"近1个月加班时长 {o:.0f} 小时"]
                        for v, o in zip(frame["pay_vs_band"], overtime, strict=True)],
            "driver_features": [["pay_vs_band", "overtime_hours"]] * len(frame)})


class SpreadStandIn:
    """Observed = reposts per post; a post whose author has BROKEN followers makes the call fail, as a bad repost
    would (ContractError for the whole call)."""

    threshold = 100
    BROKEN = 13

    def __init__(self):
        self.windows: list[np.ndarray] = []
        self.frames: list[tuple[pd.DataFrame, pd.DataFrame]] = []

    def forecast(self, posts, reposts, text_scores=None, window_minutes=None) -> pd.DataFrame:
        self.windows.append(np.broadcast_to(window_minutes, len(posts)).copy())
        self.frames.append((posts, reposts))
        if (posts["author_followers"] == self.BROKEN).any():
            raise ContractError("Repost", [RowError(0, "timestamp", "转发时间早于原帖发布时间")])
        n = reposts.groupby("post_id").size().reindex(posts["post_id"], fill_value=0).to_numpy(dtype=float)
        return pd.DataFrame({"p10": n, "p50": 2 * n, "p90": 40 * n + 20_000, "observed": n,
                             "time_to_threshold_min": np.nan, "reach": n * 100, "regions": 12.0})


@pytest.fixture(scope="module")
def tables(synthetic_dir) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(synthetic_dir / f"{t}.parquet")
            for t in ("org_units", "employees", "snapshots", "posts", "complaints")}


def stand_in_engine(tables: dict, tmp_path, attrition: LoadedModel | None = None) -> Engine:
    """An Engine over `tables` with stand-in models (or the given attrition model) and its own SQLite store."""
    models = {name: LoadedModel(name, "7", f"models:/{name}@champion", model) for name, model in {
        "sentiment": TextStandIn("sentiment"), "loss_type": TextStandIn("loss_type"),
        "function": TextStandIn("function"), "attrition": AttritionStandIn(), "spread": SpreadStandIn()}.items()}
    if attrition is not None:
        models["attrition"] = attrition
    policy = Policy.load()
    built = Engine(models=models, keywords=KeywordLibrary.load(), policy=policy,
                   chart=OrgChart.from_frame(tables["org_units"], tables["employees"]),
                   store=WarningStore(f"sqlite:///{tmp_path / 'warnings.db'}", policy=policy), roster=pd.DataFrame())
    built.roster = built.score_roster(tables)
    return built


@pytest.fixture
def engine(tables, tmp_path) -> Engine:
    return stand_in_engine(tables, tmp_path)


@pytest.fixture
def units(tables) -> dict[str, str]:
    org = tables["org_units"]
    level2 = org[org["level"] == 2].sort_values("unit_id")
    marketing = level2[level2["function"] == "marketing"].iloc[0]["unit_id"]
    return {"marketing": marketing, "child": org[org["parent_id"] == marketing].iloc[0]["unit_id"],
            "other": level2[level2["function"] != "marketing"].iloc[0]["unit_id"]}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def event(text: str, department: str | None = None, **extra) -> dict:
    return {"kind": "post", "text": text, "channel": "weibo", "department_id": department,
            "created_at": _now() - timedelta(minutes=20), **extra}


def test_a_bad_event_fails_alone_and_text_models_run_once_per_batch(engine, units):
    batch = [event(f"{NEGATIVE}：这条文案违背用户第一", units["child"], post_id="a"),
             event("普通通知", "NO-SUCH-UNIT"),
             event(f"{NEGATIVE}：转发很快", units["child"], post_id="broken", reposts=[],
                   author_followers=SpreadStandIn.BROKEN),
             event("公司年会通知", units["child"])]
    results = engine.assess_many(batch)
    assert isinstance(results[1], InputError) and results[1].field == "event.department_id"
    assert isinstance(results[2], InputError) and results[2].field == "event.reposts"
    assert results[0]["warning"]["department_id"] == units["child"]
    assert results[3]["warning"] is None
    assert all(engine.models[n].estimator.calls == 1 for n in ("sentiment", "loss_type", "function"))


def test_posts_with_reposts_are_forecast_together_each_over_its_own_elapsed_time(engine, units):
    def reposts(created, n):
        return [{"timestamp": created + timedelta(minutes=i + 1), "user_followers": 10} for i in range(n)]
    early, late = _now() - timedelta(minutes=20), _now() - timedelta(minutes=45)
    batch = [event("帖子一", units["child"], post_id="same", created_at=early, reposts=reposts(early, 3)),
             event("帖子二", units["child"], post_id="same", created_at=late, reposts=reposts(late, 7)),
             event("没有转发的投诉", units["child"])]
    results = engine.assess_many(batch)
    spread = engine.models["spread"].estimator
    assert len(spread.windows) == 1 and len(spread.windows[0]) == 2  # one model call for the batch
    assert [r["predictions"]["spread"]["observed"] for r in results[:2]] == [3, 7]  # same post id, kept apart
    assert [round(r["predictions"]["spread"]["window_minutes"]) for r in results[:2]] == [20, 45]
    assert results[2]["predictions"]["spread"] is None


def test_a_bad_repost_fails_only_its_own_event(engine, units):
    created = _now() - timedelta(minutes=30)
    good = [{"timestamp": created + timedelta(minutes=1), "user_followers": 10}]
    results = engine.assess_many([
        event("好帖", units["child"], post_id="good", created_at=created, reposts=good),
        event("坏帖", units["child"], post_id="bad", created_at=created, reposts=good,
              author_followers=SpreadStandIn.BROKEN)])
    assert results[0]["predictions"]["spread"]["observed"] == 1
    assert isinstance(results[1], InputError) and results[1].field == "event.reposts"


def test_reposts_in_any_time_zone_and_without_follower_counts_reach_the_model_as_utc_and_unknown(engine, units):
    """tz-aware times are the same instants as naive UTC ones; a count the caller did not send is NaN for the
    model (its features flag it), never a zero that looks like data."""
    created = _now() - timedelta(minutes=40)
    shanghai = timezone(timedelta(hours=8))
    aware = [{"timestamp": (created + timedelta(seconds=30 * i)).replace(tzinfo=UTC).astimezone(shanghai)}
             for i in range(60)]
    naive = [{"timestamp": created + timedelta(seconds=30 * i), "user_followers": 50} for i in range(60)]
    results = engine.assess_many([
        event("帖子一", units["child"], post_id="aware",
              created_at=created.replace(tzinfo=UTC).astimezone(shanghai), reposts=aware),
        event("帖子二", units["child"], post_id="naive", created_at=created, reposts=naive, author_followers=300)])
    posts, reposts = engine.models["spread"].estimator.frames[-1]
    assert [r["predictions"]["spread"]["observed"] for r in results] == [60, 60]
    assert posts["created_at"].iloc[0] == posts["created_at"].iloc[1] == pd.Timestamp(created)
    by_post = reposts.groupby("post_id")
    assert (by_post.get_group(0)["timestamp"].to_numpy() == by_post.get_group(1)["timestamp"].to_numpy()).all()
    assert np.isnan(posts["author_followers"].iloc[0]) and posts["author_followers"].iloc[1] == 300
    assert by_post.get_group(0)["user_followers"].isna().all() and (by_post.get_group(1)["user_followers"] == 50).all()


def test_spread_and_velocity_feed_the_rules(engine, units):
    created = _now() - timedelta(minutes=50)
    reposts = [{"timestamp": created + timedelta(seconds=5 * i), "user_followers": 10} for i in range(600)]
    result = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="viral",
                                 created_at=created, reposts=reposts))
    assert result["predictions"]["spread"]["observed"] == 600
    assert result["warning"]["grade"] == "red"  # value clash + P90 reach past 10,000


def test_routing_follows_the_function_models_probability(engine, units):
    """/assess passes the function model's probability into RiskInput: a confident guess names the function's
    owner; a guess below the policy's threshold goes to the default owners, and the warning says why."""
    sure = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="sure"))
    unsure = engine.assess(event(f"{NEGATIVE}：{UNSURE}，违背用户第一", units["child"], post_id="unsure"))
    assert sure["predictions"]["sentiment"]["function_confidence"] == 1.0
    assert unsure["predictions"]["sentiment"]["function_confidence"] == 0.45
    lead = sure["warning"]["owners"]["functional"][0]
    assert lead["owner"] == "marketing_head" and "市场" in lead["why"]
    fallback = unsure["warning"]["owners"]["functional"][0]
    assert fallback["owner"] == "management_head" and "低于阈值" in fallback["why"]
    assert any("由默认负责人" in note for note in unsure["warning"]["owners"]["notes"])
    for warning in (sure["warning"], unsure["warning"]):  # culture loss: culture joins as a co-owner either way
        assert "culture" in {p["owner"] for p in warning["owners"]["co_owners"]}
        assert all(item["owner"] and item["due_at"] for item in warning["action_items"])


def test_listening_warns_on_negative_outside_posts_without_keywords(engine, units):
    outside = engine.assess(event(f"{NEGATIVE}：体验很差", units["child"], post_id="plain"))
    inside = engine.assess(event(f"{NEGATIVE}：体验很差", units["child"], post_id="forum", channel="employee_forum"))
    assert outside["predictions"]["sentiment"]["keyword_hits"] == []
    assert outside["warning"]["grade"] == "blue" and "舆情监测" in outside["warning"]["reasons"][0]
    assert inside["warning"] is None


def test_department_is_inferred_from_the_employee(engine, tables, units):
    staff = tables["employees"]
    employee = staff[(staff["department_id"] == units["child"]) & staff["leave_date"].isna()].iloc[0]
    result = engine.assess(event(f"{NEGATIVE}：违背用户第一", employee_id=employee["employee_id"]))
    assert result["warning"]["department_id"] == units["child"]


def test_manager_scope_for_lists_reads_and_actions(engine, units):
    inside = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="in"))["warning"]
    outside = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["other"], post_id="out"))["warning"]
    manager = Principal("m", "manager", units["marketing"])
    assert {w["id"] for w in engine.list_warnings(manager)} == {inside["id"]}
    with pytest.raises(NotFound):
        engine.get_warning(outside["id"], manager)
    with pytest.raises(NotFound):
        engine.transition(outside["id"], "ack", manager)
    acked = engine.transition(inside["id"], "ack", manager)
    assert acked["status"] == "acknowledged" and acked["audit"][-1]["action_zh"] == "确认"
    lost = Principal("x", "manager", "NO-SUCH-UNIT")
    assert engine.list_warnings(lost) == []


def test_pay_and_performance_masked_in_values_and_explanations(engine, units):
    manager = engine.team_risk(units["marketing"], Principal("m", "manager", units["marketing"]))
    hr = engine.team_risk(units["marketing"], Principal("h", "hr_system"))
    assert manager["headcount"] == hr["headcount"] > 0
    for masked, shown in zip(manager["employees"], hr["employees"], strict=True):
        assert masked["pay_vs_band"] == "***" and isinstance(shown["pay_vs_band"], float)
        assert masked["drivers"][0] == DRIVER_MASKED and shown["drivers"][0].startswith("薪酬")
        assert masked["drivers"][1] == shown["drivers"][1]
    assert manager["top_drivers"] == [DRIVER_MASKED] and hr["top_drivers"][0].startswith("薪酬")
    with pytest.raises(NotFound):
        engine.team_risk(units["other"], Principal("m", "manager", units["marketing"]))


def test_batcher_groups_concurrent_events_and_keeps_results_apart():
    from serving.batching import Batcher

    seen: list[list[int]] = []

    def assess_many(events):
        seen.append([e["n"] for e in events])
        return [ValueError("odd") if e["n"] % 2 else {"n": e["n"]} for e in events]

    async def run(max_batch):
        batcher = Batcher(assess_many, max_batch, threads=2)
        return await asyncio.gather(*(batcher.submit({"n": n}) for n in range(10)))

    results = asyncio.run(run(64))
    assert [r["n"] if isinstance(r, dict) else "err" for r in results] == \
        [0, "err", 2, "err", 4, "err", 6, "err", 8, "err"]
    assert len(seen) < 10 and sorted(sum(seen, [])) == list(range(10))  # batched, nothing lost
    seen.clear()
    asyncio.run(run(1))
    assert all(len(batch) == 1 for batch in seen) and len(seen) == 10  # batching off


def test_batcher_hands_a_crash_to_every_caller_of_the_batch():
    from serving.batching import Batcher

    def crash(events):
        raise RuntimeError("model exploded")

    async def run():
        batcher = Batcher(crash, 64, threads=1)
        return await asyncio.gather(*(batcher.submit({}) for _ in range(3)))

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_keys_are_stored_hashed_and_unknown_keys_leave_no_trace(db_url):
    from serving.auth import AuthError, KeyStore, hash_key

    store = KeyStore(db_url)
    key = store.create("hr", "hr_system")
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM api_keys").fetchall()
    assert rows and all(key not in map(str, row) for row in rows)
    assert rows[0][0] == hash_key(key)
    assert store.principal(key) == Principal("hr", "hr_system", None)
    for attempt in ("lg_guess", ""):
        with pytest.raises(AuthError) as refused:
            store.principal(attempt)
        assert refused.value.status == 401
    assert list(store._cache) == [hash_key(key)]
    with pytest.raises(ValueError):
        store.create("boss", "manager")  # a manager needs an org unit



def test_a_manager_assigns_within_their_subtree_or_to_the_owners_the_warning_names(engine, tables, units):
    """Scope covers what a manager may do, not only what they may read (#16): an in-scope warning cannot be
    handed to someone else's team; the warning's own owners (e.g. a functional owner elsewhere) may be named."""
    staff = tables["employees"][tables["employees"]["leave_date"].isna()]
    inside = staff[staff["department_id"] == units["child"]].iloc[0]["employee_id"]
    outside = staff[staff["department_id"] == units["other"]].iloc[0]["employee_id"]
    warning = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="assign"))["warning"]
    manager = Principal("m", "manager", units["marketing"])
    for refused in (outside, "E99999"):  # another team, or nobody: the same answer
        with pytest.raises(InputError) as error:
            engine.transition(warning["id"], "assign", manager, assignee=refused)
        assert error.value.field == "assignee" and "不在您可指派的范围内" in error.value.message
    assert engine.transition(warning["id"], "assign", manager, assignee=inside)["assignee"] == inside
    named = [p["employee_id"] for group in ("functional", "management") for p in warning["owners"][group]
             if tables["employees"].set_index("employee_id").at[p["employee_id"], "department_id"]
             not in engine.chart.subtree(units["marketing"])]
    assert named, "the chain above the department is named on the warning and lies outside the subtree"
    for person in named[:1]:  # an owner outside the manager's subtree, named on the warning
        assert engine.transition(warning["id"], "assign", manager, assignee=person)["assignee"] == person
    hr = Principal("h", "hr_system")
    assert engine.transition(warning["id"], "assign", hr, assignee=outside)["assignee"] == outside


def test_invisible_characters_are_removed_before_scoring_and_storing_and_kept_in_the_audit(engine, units):
    raw = f"{NEGATIVE}：\u202e违背用户第一\u202c\u200b"
    result = engine.assess(event(raw, units["child"], post_id="bidi"))
    stored = engine.store.get(result["warning"]["id"])
    assert stored.text == f"{NEGATIVE}：违背用户第一" and stored.risk["raw_text"] == raw
    assert engine.store.audit_entries(stored.id)[0].after["risk"]["raw_text"] == raw
    for hit in engine.score_texts([raw])[0]["keyword_hits"]:
        assert raw[hit["start"]:hit["end"]].replace("\u202e", "").replace("\u202c", "") == hit["term"]
    with pytest.raises(InputError) as refused:
        engine.assess(event("\u200b\u200b", units["child"]))
    assert refused.value.field == "event.text"


def test_reach_is_capped_at_a_plausible_audience_and_the_warning_says_so(engine, units):
    class Enormous(SpreadStandIn):
        def forecast(self, posts, reposts, text_scores=None, window_minutes=None):
            frame = super().forecast(posts, reposts, text_scores, window_minutes)
            return frame.assign(reach=reposts.groupby("post_id").size().to_numpy(dtype=float) * 1e10)

    engine.models["spread"] = LoadedModel("spread", "7", "models:/spread@champion", Enormous())
    created = _now() - timedelta(minutes=50)
    reposts = [{"timestamp": created + timedelta(seconds=i), "user_followers": 10_000_000_000} for i in range(600)]
    result = engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="huge", created_at=created,
                                 reposts=reposts))
    spread = result["predictions"]["spread"]
    assert spread["reach"] == settings.max_reach and spread["notes"] and "封顶" in spread["notes"][0]
    assert any("封顶" in reason for reason in result["warning"]["reasons"])


def test_the_timer_unmutes_escalates_and_anchors_the_chain_off_the_host(engine, units):
    class Sender:
        def __init__(self):
            self.sent = []

        def send(self, target, event_name, payload):
            self.sent.append((target, event_name, payload))

    engine.anchor_sender = Sender()
    engine.assess(event(f"{NEGATIVE}：违背用户第一", units["child"], post_id="anchored"))
    engine.tick()
    engine.tick()  # nothing new: no second anchor
    (target, name, anchor), = engine.anchor_sender.sent
    assert (target, name) == ("audit_anchor", "checkpoint") and anchor | {"line": 1} == engine.store.anchors.last()
    assert engine.store.verify_audit().anchored == anchor["seq"]
