"""Point-in-time attrition features: no future data leaks in, windows are exact, labels are honest."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.attrition_build import build_features, labels
from features.attrition_explain import department_of, reason_text
from features.attrition_features import CORE_SPEC, IBM_SPEC, OTHER_CATEGORY, PROTECTED, category_strings

SIGNALS = list(CORE_SPEC.numeric)
CJK = re.compile(r"[\u4e00-\u9fff]")


def _row(employee, snapshot, **overrides):
    row = {"employee_id": employee, "department_id": "T1", "manager_id": "M1", "hire_date": "2020-01-01",
           "job_level": 3, "role": "工程师", "pay_vs_band": 1.0, "overtime_hours": 20.0,
           "last_promotion_date": "2023-01-01", "performance_rating": 3.0, "engagement_score": 70.0,
           "snapshot_date": snapshot, "leave_date": None, "gender": "F", "marital_status": "single"}
    row.update(overrides)
    return row


@pytest.fixture(scope="module")
def tables(synthetic_dir):
    return {name: pd.read_parquet(synthetic_dir / f"{name}.parquet")
            for name in ("snapshots", "posts", "complaints", "org_units")}


def _features_at(tables, cut):
    snapshots = tables["snapshots"]
    rows = snapshots[snapshots["snapshot_date"] == cut]
    return build_features(rows, history=snapshots, posts=tables["posts"], complaints=tables["complaints"],
                          org_units=tables["org_units"])[SIGNALS]


def test_changing_anything_after_the_snapshot_date_changes_no_feature(tables):
    snapshots = tables["snapshots"]
    cut = pd.Timestamp(sorted(snapshots["snapshot_date"].unique())[6])
    before = _features_at(tables, cut)

    rng = np.random.default_rng(0)
    future = tables["snapshots"].copy()
    later = future["snapshot_date"] > cut
    future.loc[later, "overtime_hours"] = 150.0
    future.loc[later, "manager_id"] = "SOMEONE_NEW"
    future.loc[later, "department_id"] = rng.permutation(future.loc[later, "department_id"].to_numpy())
    future.loc[later, "leave_date"] = cut - pd.Timedelta(days=5)  # a later row claiming a past departure
    # leave dates are the label: every departure after the cut moves, even inside rows dated at or before it
    leaving_later = future["leave_date"] > cut
    future.loc[leaving_later, "leave_date"] = cut + pd.Timedelta(days=1)
    posts = tables["posts"].copy()
    late_posts = posts["created_at"] >= cut + pd.Timedelta(days=1)
    posts.loc[late_posts, "sentiment"] = "neg"
    posts.loc[late_posts, "internal"] = True
    posts.loc[late_posts, "employee_id"] = rng.choice(snapshots["employee_id"].unique(), late_posts.sum())
    complaints = tables["complaints"]
    extra = complaints.sample(200, random_state=0).assign(created_at=cut + pd.Timedelta(hours=30))
    after = _features_at({"snapshots": future, "posts": posts, "complaints": pd.concat([complaints, extra]),
                          "org_units": tables["org_units"]}, cut)

    assert late_posts.sum() > 0 and later.sum() > 0
    pd.testing.assert_frame_equal(before, after)


def test_changing_the_past_does_change_features(tables):
    """The guard for the test above: the same kind of edit before the snapshot is seen."""
    snapshots = tables["snapshots"]
    cut = pd.Timestamp(sorted(snapshots["snapshot_date"].unique())[6])
    before = _features_at(tables, cut)
    posts = tables["posts"].copy()
    recent = (posts["created_at"] < cut + pd.Timedelta(days=1)) & (posts["created_at"] > cut - pd.Timedelta(days=30))
    posts.loc[recent & posts["internal"], "sentiment"] = "neg"
    after = _features_at({**tables, "posts": posts}, cut)
    assert (after["neg_internal_posts_90d"] > before["neg_internal_posts_90d"]).any()


def test_signals_match_the_generators_as_of_columns(tables):
    """The generator records what HR knew at each snapshot; our history-derived signals must agree."""
    snapshots = tables["snapshots"]
    first = snapshots["snapshot_date"].min()
    rows = snapshots[snapshots["snapshot_date"] >= first + pd.Timedelta(days=120)]
    features = build_features(rows, history=snapshots.drop(columns=["manager_changed_90d"]), posts=tables["posts"])
    recorded = rows["manager_changed_90d"].astype(float).to_numpy()
    assert np.mean(features["manager_changed_90d"].to_numpy() == recorded) > 0.999
    np.testing.assert_array_equal(features["neg_internal_posts_90d"].to_numpy(),
                                  rows["neg_internal_posts_90d"].astype(float).to_numpy())


def test_windows_are_exact_to_the_day():
    t = pd.Timestamp("2025-06-30")
    frame = pd.DataFrame([_row("A", t), _row("B", t, department_id="T2")])
    history = pd.DataFrame([
        _row("A", "2025-03-31", overtime_hours=10.0), _row("A", "2025-04-30", overtime_hours=30.0),
        _row("A", "2025-05-31", overtime_hours=40.0, manager_id="M0"),
        _row("A", "2025-01-31", overtime_hours=0.0), _row("A", "2025-02-28", overtime_hours=0.0),
        _row("L1", "2025-05-31", leave_date="2025-06-10"), _row("L2", "2025-03-31", leave_date="2025-04-01"),
        _row("L3", "2025-06-30", leave_date="2025-07-15"),
    ])
    posts = pd.DataFrame({
        "employee_id": ["A", "A", "A", "A", "B"], "internal": [True, True, True, False, True],
        "sentiment": ["neg", "neg", "neg", "neg", "pos"], "text": ["x"] * 5,
        "created_at": pd.to_datetime(["2025-06-30 23:59", "2025-07-01 00:00", "2025-04-02 08:00",
                                      "2025-06-01 09:00", "2025-06-15 09:00"]),
    })
    complaints = pd.DataFrame({"department_id": ["T1", "T1", "T2"], "created_at": pd.to_datetime(
        ["2025-04-01 10:00", "2025-04-02 00:00", "2025-06-29 12:00"])})
    out = build_features(frame, history=pd.concat([history, frame]), posts=posts, complaints=complaints)
    a, b = out.iloc[0], out.iloc[1]
    assert a["overtime_3m"] == pytest.approx((30 + 40 + 20) / 3)       # Apr, May, Jun snapshots
    assert a["overtime_trend"] == pytest.approx((30 + 40 + 20) / 3 - (0 + 0 + 10) / 3)
    assert a["manager_changed_90d"] == 1.0                               # M1 -> M0 -> M1 within 90 days
    assert a["neg_internal_posts_90d"] == 2.0  # day t counts, t+1 does not, t-89 (Apr 2) does; external never
    assert a["team_complaints_90d"] == 1.0     # Apr 1 is day t-90: outside
    assert a["team_leavers_90d"] == 1.0        # L1 left Jun 10; L2 left before the window, L3 after t
    assert b["team_complaints_90d"] == 1.0 and b["neg_internal_posts_90d"] == 0.0
    assert a["tenure_years"] == pytest.approx((t - pd.Timestamp("2020-01-01")).days / 365.25)


def test_manager_change_falls_back_to_the_supplied_column_only_when_history_cannot_tell():
    t = "2025-06-30"
    alone = pd.DataFrame([_row("A", t, manager_changed_90d=True), _row("B", t, manager_changed_90d=False),
                          _row("C", t, hire_date="2025-05-01")])
    out = build_features(alone)
    assert out["manager_changed_90d"].tolist() == [1.0, 0.0, 0.0]  # C was hired inside the window: no change
    without = build_features(alone.drop(columns=["manager_changed_90d"]).iloc[:1])
    assert np.isnan(without["manager_changed_90d"].iat[0])


def test_promotion_recorded_after_the_snapshot_is_ignored():
    out = build_features(pd.DataFrame([_row("A", "2025-06-30", last_promotion_date="2025-09-01")]))
    assert out["years_since_promotion"].iat[0] == pytest.approx(out["tenure_years"].iat[0])


def test_labels_use_the_horizon_and_leave_censored_rows_out():
    frame = pd.DataFrame([
        _row("A", "2025-01-31", leave_date="2025-07-20"),  # 170 days later: a leaver within 180
        _row("B", "2025-01-31", leave_date="2025-08-20"),  # 201 days: not within 180
        _row("C", "2025-01-31"),
        _row("D", "2025-06-30"),                           # window ends after the data: unknown
        _row("E", "2025-06-30", leave_date="2025-07-05"),  # a leaver, but in a censored window all rows are unknown
        _row("F", "2025-01-31", leave_date="2025-01-10"),  # already gone
    ])
    y = labels(frame, 180, observed_until="2025-09-30")
    assert y.iloc[:3].tolist() == [1.0, 0.0, 0.0]
    assert y.iloc[3:].isna().all()
    assert labels(frame, 90).iloc[0] == 0.0


def test_reasons_are_chinese_and_place_the_value_in_the_department():
    reference = {"overtime_3m": {"__all__": [5, 10, 20, 30, 40], "T1": [10, 20, 30, 40, 50]}}
    text = reason_text("overtime_3m", 62.0, reference, "T1")
    assert "高于部门90%分位" in text and "62" in text and CJK.search(text)
    assert "公司" in reason_text("overtime_3m", 62.0, reference, "unknown-team")
    assert reason_text("manager_changed_90d", 1.0, {}, None) == "近90天更换了直属上级"
    assert CJK.search(reason_text("role", "销售代表", {}, None))


def test_rare_and_unseen_categories_share_one_level():
    values = pd.Series(["a", "b", None, 3.0, "zzz"])
    assert category_strings(values).tolist() == ["a", "b", "NA", "3", "zzz"]
    assert category_strings(values, ["a", "NA", OTHER_CATEGORY]).tolist() == ["a", OTHER_CATEGORY, "NA",
                                                                             OTHER_CATEGORY, OTHER_CATEGORY]


def test_protected_attributes_are_not_features_by_default():
    for spec in (CORE_SPEC, IBM_SPEC):
        assert not set(PROTECTED) & set(spec.columns)
        assert not {"Gender", "MaritalStatus"} & set(spec.columns)
        assert set(PROTECTED) <= set(spec.with_protected().columns)


def test_ibm_export_maps_onto_every_model_feature(ibm_csv):
    from features.loaders import load_hr_export

    checked = load_hr_export(ibm_csv, "ibm")
    features = build_features(checked.frame)
    missing = features.reindex(columns=IBM_SPEC.columns).isna().mean()
    assert (missing == 0).all(), missing[missing > 0]
    y = labels(checked.frame)
    assert y.notna().all() and y.mean() == pytest.approx((pd.read_csv(ibm_csv)["Attrition"] == "Yes").mean())


def test_complaints_about_a_department_count_for_its_teams_and_rollups_climb_to_it():
    org = pd.DataFrame({"unit_id": ["C", "D", "T1", "T2"], "parent_id": [None, "C", "D", "D"], "level": [0, 2, 3, 3]})
    frame = pd.DataFrame([_row("A", "2025-06-30", department_id="T1")])
    complaints = pd.DataFrame({"department_id": ["D", "T2", "C"], "created_at": pd.to_datetime(["2025-06-01"] * 3)})
    out = build_features(frame, complaints=complaints, org_units=org)
    assert out["team_complaints_90d"].iat[0] == 1.0  # its department, not the sister team or the whole company
    assert department_of(pd.Series(["T1", "T2", "D", "C"]), org).tolist() == ["D", "D", "D", "C"]
