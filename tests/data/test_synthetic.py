"""The synthetic company: contracts hold, the org is a sane tree, and the planted truth shows in the data.

Statistical checks use the session's 1000-person company (seed 42) and person-month comparisons, so they test
the mechanism (hazard, cascades) rather than one lucky draw; every threshold is far from what a broken
generator (no driver, light-tailed cascades) would produce.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

import synthetic
from features.contracts import FUNCTIONS, INTERNAL_CHANNELS, validate
from synthetic import generate

TABLES = ("org_units", "employees", "snapshots", "posts", "complaints", "reposts")
MONITORING_TABLES = ("series", "complaint_bursts")  # generate(monitoring=True), the default
CONTRACT_OF = {"org_units": "OrgUnit", "snapshots": "Employee", "posts": "Post", "complaints": "Complaint",
               "reposts": "Repost"}


@pytest.fixture(scope="module")
def data(synthetic_dir):
    frames = {name: pd.read_parquet(synthetic_dir / f"{name}.parquet") for name in TABLES}
    frames["truth"] = json.loads((synthetic_dir / "truth.json").read_text(encoding="utf-8"))
    return frames


@pytest.fixture(scope="module")
def person_months(data):
    """Snapshot rows that have a following snapshot, with y = the person leaves before that next snapshot."""
    snaps = data["snapshots"]
    dates = np.sort(snaps["snapshot_date"].unique())
    rows = snaps[snaps["snapshot_date"] < dates[-1]].copy()
    rows["next_date"] = rows["snapshot_date"].map(dict(zip(dates[:-1], dates[1:], strict=True)))
    rows["leaves"] = rows["leave_date"].notna() & (rows["leave_date"] <= rows["next_date"])
    since = rows["last_promotion_date"].fillna(rows["hire_date"])
    rows["years_since_promotion"] = (rows["snapshot_date"] - since).dt.days / 365.25
    return rows


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_and_another_seed_differs(synthetic_dir, tmp_path, data):
    truth = data["truth"]
    generate(employees=truth["employees"], days=truth["days"], seed=truth["seed"], out_dir=tmp_path / "same")
    generate(employees=truth["employees"], days=truth["days"], seed=truth["seed"] + 1, out_dir=tmp_path / "other")
    reference = _digests(synthetic_dir)
    assert set(reference) == {f"{t}.parquet" for t in TABLES + MONITORING_TABLES} | {"truth.json"}
    assert _digests(tmp_path / "same") == reference
    other = _digests(tmp_path / "other")
    assert all(other[name] != reference[name] for name in reference)


def test_the_monitoring_feed_leaves_every_other_table_as_it_was(synthetic_dir, tmp_path, data):
    """Planting draws from a stream of its own: with it off the company is byte-identical, truth.json too apart
    from its `monitoring` section."""
    truth = data["truth"]
    generate(employees=truth["employees"], days=truth["days"], seed=truth["seed"], out_dir=tmp_path / "off",
             monitoring=False)
    off, on = _digests(tmp_path / "off"), _digests(synthetic_dir)
    assert set(off) == {f"{t}.parquet" for t in TABLES} | {"truth.json"}
    assert all(off[f"{t}.parquet"] == on[f"{t}.parquet"] for t in TABLES)
    planted = json.loads((synthetic_dir / "truth.json").read_text(encoding="utf-8"))
    assert "monitoring" in planted and "monitoring" not in json.loads((tmp_path / "off" / "truth.json").read_text())
    del planted["monitoring"]
    assert json.dumps(planted, ensure_ascii=False, indent=2) == (tmp_path / "off" / "truth.json").read_text()


def test_the_monitoring_feed_holds_what_truth_json_says(synthetic_dir, data):
    series = pd.read_parquet(synthetic_dir / "series.parquet")
    bursts = pd.read_parquet(synthetic_dir / "complaint_bursts.parquet")
    planted = data["truth"]["monitoring"]
    level2 = set(data["org_units"].query("level == 2")["unit_id"])
    assert set(series["department_id"]) == level2
    assert (series["negative"] <= series["total"]).all() and (series["total"] > 0).all()
    assert (series["bucket_start"].dt.minute % planted["bucket_minutes"] == 0).all()
    start = pd.Timestamp(planted["start"])
    assert start.dayofweek == 0 and series["bucket_start"].min() >= start
    # spikes: about one per series per 30 days after the warm-up, each visible as a jump in its department
    months = len(level2) * (planted["weeks"] - planted["warmup_weeks"]) * 7 / 30
    assert 0.5 * months <= sum(not s["incident"] for s in planted["spikes"]) <= 1.6 * months
    hourly = series.set_index("bucket_start").groupby("department_id")["negative"].resample("h").sum()
    jumps = [hourly[s["department_id"]][pd.Timestamp(s["start"]).floor("h"):].iloc[:2].sum() /
             max(hourly[s["department_id"]][:pd.Timestamp(s["start"]).floor("h")].iloc[-169:-167].mean(), 0.5)
             for s in planted["spikes"]]
    assert np.median(jumps) >= 2.5
    kinds = {e["kind"] for e in planted["effects"]}
    assert planted["effects"] and kinds <= {"works", "no_effect", "backfires"}
    for issue in planted["complaint_issues"]:
        rows = bursts[bursts["planted_issue"] == issue["issue"]]
        assert len(rows) == issue["size"] and (rows["department_id"] == issue["department_id"]).all()
        assert rows["text"].str.contains(issue["product"], regex=False).all()
        span = rows["created_at"].max() - rows["created_at"].min()
        assert span <= pd.Timedelta(hours=issue["hours"])


@pytest.mark.parametrize("table", sorted(CONTRACT_OF))
def test_tables_pass_their_contracts(data, table):
    units = set(data["org_units"]["unit_id"])
    result = validate(data[table], CONTRACT_OF[table], known_departments=units, strict=True)
    assert len(result.frame) == len(data[table]) > 0


def test_employees_table_is_one_row_per_person_with_ordered_dates(data):
    people = data["employees"]
    assert people["employee_id"].is_unique
    assert (people["leave_date"].dropna() >= people.loc[people["leave_date"].notna(), "hire_date"]).all()
    assert set(data["snapshots"]["employee_id"]) <= set(people["employee_id"])
    assert people["job_level"].between(1, 10).all() and 0 < people["is_key"].mean() < 0.3
    assert set(people["department_id"]) <= set(data["org_units"]["unit_id"])


def test_org_is_a_five_level_tree_covering_every_function(data):
    units = data["org_units"].set_index("unit_id")
    roots = units.index[units["parent_id"].isna()]
    assert len(roots) == 1 and units.loc[roots[0], "level"] == 0
    assert units["parent_id"].dropna().isin(units.index).all()
    for unit_id in units.index:  # walking up always reaches the root, one level per step
        depth, current = 0, unit_id
        while pd.notna(units.loc[current, "parent_id"]):
            current, depth = units.loc[current, "parent_id"], depth + 1
            assert depth <= 10, f"cycle above {unit_id}"
        assert depth == units.loc[unit_id, "level"]
    assert sorted(units["level"].unique()) == [0, 1, 2, 3, 4]
    assert set(FUNCTIONS) <= set(units["function"])
    culture_parents = units.loc[units.loc[units["function"].eq("culture") & units["level"].eq(2), "parent_id"]]
    assert set(culture_parents["function"]) <= {"hr", "management"}
    assert units.loc[units["level"] <= 1, "head_employee_id"].notna().all()  # every division has its 分管领导
    assert units["head_employee_id"].isna().sum() >= 2
    assert units["name"].str.contains("部|组|中心|办").all()


def test_managers_fall_back_to_the_nearest_head_above(data):
    units = data["org_units"].set_index("unit_id")
    last = data["snapshots"][data["snapshots"]["snapshot_date"] == data["snapshots"]["snapshot_date"].max()]

    def nearest_head(unit_id):
        while unit_id is not None and pd.isna(units.loc[unit_id, "head_employee_id"]):
            unit_id = units.loc[unit_id, "parent_id"] if pd.notna(units.loc[unit_id, "parent_id"]) else None
        return None if unit_id is None else units.loc[unit_id, "head_employee_id"]

    fallbacks = 0
    for row in last.itertuples():
        is_head = units.loc[row.department_id, "head_employee_id"] == row.employee_id
        parent = units.loc[row.department_id, "parent_id"]
        expected = (nearest_head(parent) if pd.notna(parent) else None) if is_head else nearest_head(row.department_id)
        assert (None if pd.isna(row.manager_id) else row.manager_id) == expected, row
        fallbacks += (not is_head) and pd.isna(units.loc[row.department_id, "head_employee_id"])
    assert fallbacks > 0


def test_yearly_attrition_is_in_the_planted_band_and_headcount_stays_stable(data):
    snaps, people, truth = data["snapshots"], data["employees"], data["truth"]
    headcount = snaps.groupby("snapshot_date").size()
    rate = people["leave_date"].notna().sum() / headcount.mean() * 365.25 / truth["days"]
    assert 0.10 <= rate <= 0.20
    assert rate == pytest.approx(truth["attrition"]["realized_yearly_rate"], abs=1e-3)
    assert abs(headcount.iloc[-1] / headcount.iloc[0] - 1) < 0.05
    assert len(people) > truth["employees"]  # leavers were replaced


def test_hazard_is_reproducible_from_the_published_columns(data, person_months):
    """truth_monthly_hazard = h0 exp(beta . x) with x computed from observable columns, as data/README.md says."""
    snaps, attrition = data["snapshots"], data["truth"]["attrition"]
    since = snaps["last_promotion_date"].fillna(snaps["hire_date"])
    x = pd.DataFrame({
        "overtime_excess": np.maximum(0, snaps["overtime_hours"] - attrition["normal_overtime_hours"]) / 10,
        "pay_below_band": np.maximum(0, 1 - snaps["pay_vs_band"]),
        "years_since_promotion": (snaps["snapshot_date"] - since).dt.days / 365.25,
        "manager_changed_90d": snaps["manager_changed_90d"].astype(float),
        "low_engagement": np.maximum(0, attrition["low_engagement_threshold"] - snaps["engagement_score"]) / 10,
        "neg_internal_posts_90d": snaps["neg_internal_posts_90d"].astype(float),
    })
    beta = pd.Series(attrition["beta"])
    hazard = attrition["h0_monthly"] * np.exp(x[beta.index].to_numpy() @ beta.to_numpy())
    np.testing.assert_allclose(hazard, snaps["truth_monthly_hazard"], rtol=1e-9)


def test_driver_columns_match_the_history_they_summarize(data):
    snaps, posts = data["snapshots"].sort_values(["employee_id", "snapshot_date"]), data["posts"]
    dates = np.sort(snaps["snapshot_date"].unique())
    previous = snaps.groupby("employee_id")["manager_id"].shift()
    had_previous = snaps.groupby("employee_id")["snapshot_date"].shift().notna()
    changed_at = snaps.loc[had_previous & (previous.fillna("-") != snaps["manager_id"].fillna("-")),
                           ["employee_id", "snapshot_date"]]
    window = snaps[snaps["snapshot_date"] > dates[0] + pd.Timedelta(days=90)]  # history fully inside the table
    merged = window[["employee_id", "snapshot_date"]].merge(changed_at, on="employee_id", how="left",
                                                            suffixes=("", "_change"))
    age = (merged["snapshot_date"] - merged["snapshot_date_change"]).dt.days
    recent = merged.assign(hit=age.between(0, 90)).groupby(["employee_id", "snapshot_date"])["hit"].any()
    expected = window.set_index(["employee_id", "snapshot_date"])["manager_changed_90d"]
    assert recent.loc[expected.index].to_numpy().tolist() == expected.to_numpy().tolist()
    assert expected.mean() > 0.02

    negative = posts[posts["internal"] & posts["sentiment"].eq("neg")]
    merged = snaps[["employee_id", "snapshot_date"]].merge(negative[["employee_id", "created_at"]], how="left")
    days_before = (merged["snapshot_date"] - merged["created_at"].dt.floor("D")).dt.days
    counts = merged.assign(hit=days_before.between(0, 89)).groupby(["employee_id", "snapshot_date"])["hit"].sum()
    published = snaps.set_index(["employee_id", "snapshot_date"])["neg_internal_posts_90d"]
    assert counts.loc[published.index].to_numpy().tolist() == published.to_numpy().tolist()
    assert published.sum() > 0


def test_leavers_drivers_differ_in_the_planted_direction(person_months):
    leavers, stayers = person_months[person_months["leaves"]], person_months[~person_months["leaves"]]
    assert len(leavers) > 80
    assert leavers["overtime_hours"].mean() > stayers["overtime_hours"].mean() + 1
    assert leavers["engagement_score"].mean() < stayers["engagement_score"].mean() - 1
    assert leavers["years_since_promotion"].mean() > stayers["years_since_promotion"].mean() + 0.3
    assert leavers["manager_changed_90d"].mean() > stayers["manager_changed_90d"].mean()
    assert leavers["pay_vs_band"].mean() < stayers["pay_vs_band"].mean()
    assert leavers["truth_monthly_hazard"].mean() > 1.5 * stayers["truth_monthly_hazard"].mean()


def test_negative_internal_posts_raise_attrition(person_months):
    exposed = person_months["neg_internal_posts_90d"] > 0
    rate_exposed = person_months.loc[exposed, "leaves"].mean()
    rate_other = person_months.loc[~exposed, "leaves"].mean()
    assert exposed.sum() > 200
    assert rate_exposed > 1.5 * rate_other
    # one-sided Poisson check: the exposed leave far more often than the others' rate predicts
    expected = exposed.sum() * rate_other
    assert person_months.loc[exposed, "leaves"].sum() > expected + 2 * np.sqrt(expected)


def test_cascade_sizes_are_heavy_tailed(data):
    sizes = np.sort(data["posts"]["final_reposts_24h"].to_numpy())[::-1]
    top_share = sizes[: max(1, len(sizes) // 100)].sum() / sizes.sum()
    assert top_share > 0.25  # an exponential size law with this mean gives ~0.06
    spreading = sizes[sizes > 0]
    assert sizes[0] > 50 * np.median(spreading)
    tail = sizes[sizes >= 10]
    ccdf = np.arange(1, len(tail) + 1) / len(sizes)
    slope = np.polyfit(np.log(tail), np.log(ccdf), 1)[0]
    assert -1.2 < slope < -0.3  # P(size > s) ~ s^-alpha with alpha < 1.2; same-mean geometric sizes give ~ -1.5


def test_reposts_follow_their_post_and_parent(data):
    posts, reposts = data["posts"].set_index("post_id"), data["reposts"]
    created = reposts["post_id"].map(posts["created_at"])
    delay = (reposts["timestamp"] - created).dt.total_seconds()
    assert (delay >= 0).all() and (delay <= 24 * 3600).all()
    position = reposts.groupby("post_id").cumcount()
    assert (reposts["parent_index"] < position).all() and (reposts["parent_index"] >= -1).all()
    start = position.index.to_numpy() - position.to_numpy()
    has_parent = reposts["parent_index"].to_numpy() >= 0
    parent_row = start[has_parent] + reposts["parent_index"].to_numpy()[has_parent]
    assert (reposts["timestamp"].to_numpy()[parent_row] <= reposts["timestamp"].to_numpy()[has_parent]).all()
    parent_generation = np.zeros(len(reposts), np.int64)
    parent_generation[has_parent] = reposts["generation"].to_numpy()[parent_row]
    assert (reposts["generation"].to_numpy() == parent_generation + 1).all()
    counts = reposts.groupby("post_id").size().reindex(posts.index, fill_value=0)
    assert (counts == posts["final_reposts_24h"]).all()
    big = counts[counts >= 50].index
    assert len(big) > 0 and (reposts[reposts["post_id"].isin(big)].groupby("post_id")["region"].nunique() >= 5).all()


def test_negative_posts_spread_with_higher_branching(data):
    posts, reposts, cascades = data["posts"], data["reposts"], data["truth"]["cascades"]
    planted = posts.groupby("sentiment")["branching"].mean()
    assert planted["neg"] > planted["pos"] > planted["neu"]
    by_channel = posts.groupby("channel")["branching"].median()
    assert by_channel["weibo"] > by_channel["employee_forum"] and by_channel["douyin"] > by_channel["employee_forum"]

    # SEISMIC-style estimate from the data alone: reposts / sum over events of mark * kernel mass left in 24 h
    s0, theta = cascades["kernel"]["s0_seconds"], cascades["kernel"]["theta"]

    def kernel_mass(seconds):
        seconds = np.asarray(seconds, float)
        return np.where(seconds <= s0, theta / (s0 * (1 + theta)) * seconds,
                        1 - (np.maximum(seconds, s0) / s0) ** -theta / (1 + theta))

    mean_followers = cascades["mean_reposter_followers"]
    age = (reposts["timestamp"] - reposts["post_id"].map(posts.set_index("post_id")["created_at"])).dt.total_seconds()
    repost_mass = (reposts["user_followers"] / mean_followers * kernel_mass(24 * 3600 - age)).groupby(
        reposts["post_id"]).sum()
    mass = (posts["author_followers"] / mean_followers * kernel_mass(24 * 3600)
            + posts["post_id"].map(repost_mass).fillna(0))
    estimate = {}
    for sentiment in ("neg", "pos"):
        group = posts["sentiment"].eq(sentiment) & (posts["final_reposts_24h"] < cascades["cap_events"])
        estimate[sentiment] = posts.loc[group, "final_reposts_24h"].sum() / mass[group].sum()
        truth = (posts.loc[group, "branching"] * mass[group]).sum() / mass[group].sum()
        assert estimate[sentiment] == pytest.approx(truth, rel=0.15)
    assert estimate["neg"] > estimate["pos"]


def test_posts_volume_authors_and_labels(data):
    posts, truth = data["posts"], data["truth"]
    per_year_for_5000 = len(posts) * 365.25 / truth["days"] * 5000 / truth["employees"]
    assert 1500 <= per_year_for_5000 <= 4000
    internal = posts[posts["internal"]]
    assert internal["channel"].isin(INTERNAL_CHANNELS).all() and internal["employee_id"].notna().all()
    assert posts.loc[~posts["internal"], "employee_id"].isna().all()
    assert not posts.loc[~posts["internal"], "channel"].isin(INTERNAL_CHANNELS).any()
    authors = internal.merge(data["snapshots"][["employee_id", "hire_date"]].drop_duplicates("employee_id"))
    assert (authors["created_at"] >= authors["hire_date"]).all()
    from features.loaders import load_workplace_corpus

    corpus = pd.concat([load_workplace_corpus(), pd.DataFrame(synthetic.FALLBACK_CORPUS, columns=[
        "text", "sentiment", "loss_type", "function", "channel"])]).drop_duplicates("text").set_index("text")
    labelled = posts.join(corpus[["sentiment", "loss_type", "function"]], on="text", rsuffix="_corpus")
    for column in ("sentiment", "loss_type", "function"):
        assert (labelled[column] == labelled[f"{column}_corpus"]).all()
    complaints = data["complaints"]
    assert complaints["sentiment"].eq("neg").mean() > 0.6 and complaints["severity"].between(1, 5).all()


def test_generation_falls_back_to_built_in_texts_without_a_corpus(tmp_path, monkeypatch):
    import features.loaders

    monkeypatch.setattr(features.loaders, "load_workplace_corpus", lambda path=None: pd.DataFrame(
        columns=["text", "sentiment", "loss_type", "function", "channel", "sarcasm", "source"]))
    paths = generate(employees=150, days=45, seed=7, out_dir=tmp_path)
    posts = pd.read_parquet(paths["posts"])
    assert len(posts) > 0
    assert set(posts["text"]) <= {row[0] for row in synthetic.FALLBACK_CORPUS}
    snapshot_dates = pd.read_parquet(paths["snapshots"])["snapshot_date"].unique()
    assert sorted(pd.Series(snapshot_dates).dt.strftime("%m-%d")) == ["01-31", "02-14"]  # month end + last day


def test_too_small_a_company_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="employees"):
        generate(employees=20, days=60, seed=1, out_dir=tmp_path)


@pytest.mark.parametrize("days", [7, 30])
def test_a_company_shorter_than_the_feeds_warm_up_generates_without_spikes(tmp_path, days):
    """`lossguard data generate --days 30` (and the routing bench's month-long company) crashed in the spike
    planter: no spike may start before WARMUP_WEEKS of baseline, so a shorter feed gets none, and still has series."""
    paths = generate(employees=150, days=days, seed=7, out_dir=tmp_path)
    truth = json.loads(paths["truth"].read_text(encoding="utf-8"))["monitoring"]
    assert truth["spikes"] == []
    assert pd.read_parquet(paths["series"])["total"].sum() > 0
