"""Attrition: point-in-time features and labels from HR snapshots, posts, complaints and the org chart.

Point in time: a row describes an employee as of its ``snapshot_date`` (end of that day). Every feature reads
only history snapshots, posts, complaints and departures dated on or before it, so editing anything later
cannot change it (tests/unit/test_attrition_features.py mutates the future to prove it).

Training, the batch CLI and the BentoML service all build features here (scoring goes through
AttritionModel.predict_frame), one copy, so a feature can never mean one thing in training and another in
serving. The model that reads them is features/attrition_features.py; the sentences about them are
features/attrition_explain.py.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.settings import settings

SentimentFn = Callable[[list[str]], np.ndarray]  # texts -> P(negative)

WINDOW_DAYS = 90  # "last 90 days" signals: events on the snapshot day and the 89 days before it
MONTH_DAYS = 30.44

# Features build_features computes itself from the Employee contract, the history and the event tables (a
# history signal may come out unknown, which the model imputes). Any other column a model's spec reads must be
# sent by the caller: an export's own columns such as IBM's Age (AttritionModel.request_inputs).
COMPUTED_FEATURES = frozenset({
    "tenure_years", "log_tenure", "years_since_promotion", "promotion_gap_share", "overtime_3m", "overtime_trend",
    "manager_changed_90d", "team_leavers_90d", "neg_internal_posts_90d", "internal_posts_90d", "team_complaints_90d",
})

# Derived from columns an IBM-style export carries; computed only when every source column is present.
_EXPORT_DERIVED: dict[str, tuple[tuple[str, ...], Callable[[pd.DataFrame], pd.Series]]] = {
    "log_monthly_income": (("MonthlyIncome",), lambda f: np.log(f["MonthlyIncome"].clip(lower=1))),
    "income_per_level": (("MonthlyIncome",), lambda f: f["MonthlyIncome"] / f["job_level"]),
    "log_total_working_years": (("TotalWorkingYears",), lambda f: np.log1p(f["TotalWorkingYears"].clip(lower=0))),
    "tenure_share_of_career": (("TotalWorkingYears",), lambda f: f["tenure_years"] / (f["TotalWorkingYears"] + 1)),
    "role_share_of_tenure": (("YearsInCurrentRole",), lambda f: f["YearsInCurrentRole"] / (f["tenure_years"] + 1)),
    "manager_share_of_tenure": (("YearsWithCurrManager",),
                                lambda f: f["YearsWithCurrManager"] / (f["tenure_years"] + 1)),
    "companies_per_year": (("NumCompaniesWorked", "TotalWorkingYears"),
                           lambda f: f["NumCompaniesWorked"] / (f["TotalWorkingYears"] + 1)),
    "age_at_hire": (("Age",), lambda f: f["Age"] - f["tenure_years"]),
    "age_under_25": (("Age",), lambda f: (f["Age"] < 25).astype(float)),
    "log_distance": (("DistanceFromHome",), lambda f: np.log1p(f["DistanceFromHome"].clip(lower=0))),
}
COMPUTED_FEATURES = COMPUTED_FEATURES | frozenset(_EXPORT_DERIVED)


# --------------------------------------------------------------------------------------------- features
def _as_time(values) -> pd.Series:
    values = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values, errors="coerce", format="mixed")


def _count_in_window(keys: pd.Series, times: pd.Series, event_keys: pd.Series, event_times: pd.Series,
                     days: int = WINDOW_DAYS, weights: pd.Series | None = None) -> np.ndarray:
    """Sum of event weights (default 1) per row over events with the row's key dated within the `days` calendar
    days that end with the row's time (that whole day included)."""
    out = np.zeros(len(keys))
    events = pd.DataFrame({"key": event_keys.to_numpy(), "time": _as_time(event_times).to_numpy(),
                           "w": 1.0 if weights is None else np.asarray(weights, dtype=float)})
    events = events.dropna(subset=["key", "time"]).sort_values(["key", "time"], kind="stable")
    grouped = {k: (g["time"].to_numpy(), np.concatenate([[0.0], np.cumsum(g["w"].to_numpy())]))
               for k, g in events.groupby("key", sort=False)}
    times = _as_time(times).dt.normalize()
    for key, rows in pd.Series(np.arange(len(keys))).groupby(keys.to_numpy(), sort=False):
        if key not in grouped:
            continue
        stamps, cumulative = grouped[key]
        t = times.to_numpy()[rows.to_numpy()]
        hi = np.searchsorted(stamps, t + np.timedelta64(1, "D"), side="left")
        lo = np.searchsorted(stamps, t - np.timedelta64(days - 1, "D"), side="left")
        out[rows.to_numpy()] = cumulative[hi] - cumulative[lo]
    return out


def _history_features(frame: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Overtime level/trend and manager changes from the employee's own snapshots up to the row's date."""
    cols = ["employee_id", "snapshot_date", "manager_id", "overtime_hours"]
    own = frame.reindex(columns=cols)
    hist = pd.concat([history.reindex(columns=cols), own], ignore_index=True)
    hist["snapshot_date"] = _as_time(hist["snapshot_date"]).dt.normalize()
    hist["overtime_hours"] = _numeric(hist["overtime_hours"])
    hist = hist.dropna(subset=["employee_id", "snapshot_date"])
    hist = hist.drop_duplicates(["employee_id", "snapshot_date"], keep="last")
    hist = hist.sort_values(["employee_id", "snapshot_date"], kind="stable")
    manager = hist["manager_id"].astype(object).where(hist["manager_id"].notna(), "")
    previous = manager.groupby(hist["employee_id"]).shift()
    hist["changed"] = (previous.notna() & (manager != previous)).astype(float)

    keys = pd.DataFrame({"employee_id": frame["employee_id"].to_numpy(),
                         "t": _as_time(frame["snapshot_date"]).dt.normalize().to_numpy(),
                         "hire": _as_time(frame["hire_date"]).to_numpy(), "_row": np.arange(len(frame))})
    merged = keys.merge(hist, on="employee_id", how="left")
    merged = merged[(merged["t"] - merged["snapshot_date"]).dt.days >= 0]  # on or before the row's date only
    age = (merged["t"] - merged["snapshot_date"]).dt.days
    recent = merged[age < 3 * MONTH_DAYS - 15]                     # the last 3 monthly snapshots
    before = merged[(age >= 3 * MONTH_DAYS - 15) & (age < 6 * MONTH_DAYS - 15)]  # the 3 before those
    changes = merged[age <= WINDOW_DAYS]
    out = pd.DataFrame(index=np.arange(len(frame)))
    out["overtime_3m"] = recent.groupby("_row")["overtime_hours"].mean()
    out["overtime_trend"] = out["overtime_3m"] - before.groupby("_row")["overtime_hours"].mean()
    changed = changes.groupby("_row")["changed"].max().reindex(out.index).fillna(0.0)
    first_seen = merged.groupby("_row")["snapshot_date"].min().reindex(out.index)
    covered = (first_seen <= keys["t"] - pd.Timedelta(days=WINDOW_DAYS)) | (
        keys["hire"] > keys["t"] - pd.Timedelta(days=WINDOW_DAYS))
    out["manager_changed_90d"] = np.where(changed > 0, 1.0, np.where(covered, 0.0, np.nan))
    return out


def _leaver_events(history: pd.DataFrame) -> pd.DataFrame:
    """(department, leave date) per departure, taken from the leaver's rows dated up to their leave date, so a
    later row (or a future leave date) can never create a past departure."""
    rows = history.reindex(columns=["employee_id", "department_id", "snapshot_date", "leave_date"]).copy()
    rows["snapshot_date"] = _as_time(rows["snapshot_date"])
    rows["leave_date"] = _as_time(rows["leave_date"])
    rows = rows[rows["leave_date"].notna() & (rows["snapshot_date"] <= rows["leave_date"])]
    rows = rows.sort_values("snapshot_date", kind="stable").drop_duplicates(["employee_id", "leave_date"], keep="last")
    return rows[["department_id", "leave_date"]]


def _unit_ancestors(units: pd.Series, org_units: pd.DataFrame | None) -> pd.DataFrame:
    """(unit, ancestor-or-self) pairs below the company root, so complaints about a department count for the
    teams inside it. Without an org chart a unit matches only itself."""
    unique = pd.Series(units.dropna().unique())
    if org_units is None or not len(org_units):
        return pd.DataFrame({"unit": unique, "match": unique})
    parent = {u: p for u, p in zip(org_units["unit_id"], org_units["parent_id"], strict=True) if pd.notna(p)}
    known = set(org_units["unit_id"])
    pairs = []
    for unit in unique:
        if unit not in known:
            pairs.append((unit, unit))
        node, seen = unit, set()
        while node in parent and node not in seen:  # stops below the root: the whole company is not "their team"
            seen.add(node)
            pairs.append((unit, node))
            node = parent[node]
    return pd.DataFrame(pairs, columns=["unit", "match"]).drop_duplicates()


def _negativity(posts: pd.DataFrame, sentiment_fn: SentimentFn | None) -> pd.Series:
    """P(negative) per post: the sentiment model's hook when given, else the posts' own labels."""
    if sentiment_fn is not None:
        return pd.Series(np.asarray(sentiment_fn(posts["text"].astype(str).tolist()), dtype=float),
                         index=posts.index)
    return (posts["sentiment"].astype(str) == "neg").astype(float)


def build_features(
    frame: pd.DataFrame,
    *,
    history: pd.DataFrame | None = None,
    posts: pd.DataFrame | None = None,
    complaints: pd.DataFrame | None = None,
    org_units: pd.DataFrame | None = None,
    sentiment_fn: SentimentFn | None = None,
) -> pd.DataFrame:
    """Features of each Employee-contract row as of its snapshot_date, row-aligned with `frame`.

    history: all snapshot rows known (defaults to `frame`); posts/complaints: the Post/Complaint tables (posts
    need `internal` and a `sentiment` label unless `sentiment_fn` is given). A signal whose table is not given,
    or that the history cannot settle (a manager change before the first snapshot), is read from an input column
    of the same name when the caller supplies one (the service gets them precomputed), else left missing.
    Input columns that are not features (protected attributes, export extras) are carried through.
    """
    frame = frame.reset_index(drop=True)
    history = frame if history is None else history
    t = _as_time(frame["snapshot_date"]).dt.normalize()
    hire = _as_time(frame["hire_date"])
    promoted = _as_time(frame.get("last_promotion_date", pd.Series(pd.NaT, index=frame.index)))
    promoted = promoted.where(promoted <= t)  # a promotion after the snapshot is not known at it
    out = frame.copy()
    out["snapshot_date"] = t
    out["tenure_years"] = (t - hire).dt.days / 365.25
    out["log_tenure"] = np.log1p(out["tenure_years"].clip(lower=0))
    out["years_since_promotion"] = (t - promoted.fillna(hire)).dt.days / 365.25
    out["promotion_gap_share"] = out["years_since_promotion"] / (out["tenure_years"] + 1)
    for column in ("job_level", "pay_vs_band", "overtime_hours", "performance_rating", "engagement_score"):
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)

    hist_feats = _history_features(frame, history)
    out["overtime_3m"] = hist_feats["overtime_3m"].to_numpy()
    out["overtime_trend"] = hist_feats["overtime_trend"].to_numpy()
    changed = hist_feats["manager_changed_90d"]
    if "manager_changed_90d" in frame:
        changed = changed.fillna(_numeric(frame["manager_changed_90d"]))
    out["manager_changed_90d"] = changed.to_numpy(dtype=float)

    leavers = _leaver_events(history)
    out["team_leavers_90d"] = _count_in_window(frame["department_id"], t, leavers["department_id"],
                                               leavers["leave_date"])

    if posts is not None:
        internal = posts[posts["internal"].astype(bool) & posts["employee_id"].notna()]
        p_neg = _negativity(internal, sentiment_fn)
        out["neg_internal_posts_90d"] = _count_in_window(frame["employee_id"], t, internal["employee_id"],
                                                         internal["created_at"], weights=p_neg)
        out["internal_posts_90d"] = _count_in_window(frame["employee_id"], t, internal["employee_id"],
                                                     internal["created_at"])
    if complaints is not None:
        pairs = _unit_ancestors(frame["department_id"], org_units)
        expanded = complaints[["department_id", "created_at"]].merge(pairs, left_on="department_id",
                                                                     right_on="match")
        out["team_complaints_90d"] = _count_in_window(frame["department_id"], t, expanded["unit"],
                                                      expanded["created_at"])
    for column in ("neg_internal_posts_90d", "internal_posts_90d", "team_complaints_90d"):
        out[column] = _numeric(out[column]).to_numpy() if column in out else np.nan

    for name, (sources, derive) in _EXPORT_DERIVED.items():
        if all(s in out for s in sources):
            numeric = out.assign(**{s: pd.to_numeric(out[s], errors="coerce") for s in sources})
            out[name] = derive(numeric).astype(float)
    return out


def labels(frame: pd.DataFrame, horizon_days: int | None = None,
           observed_until: pd.Timestamp | str | None = None) -> pd.Series:
    """1.0 if the employee leaves within `horizon_days` after the snapshot, 0.0 if not; NaN when the window
    runs past `observed_until` (not fully observed yet) or the person had already left (not at risk)."""
    horizon = pd.Timedelta(days=horizon_days or settings.attrition_horizon_days)
    t = pd.Series(_as_time(frame["snapshot_date"]).dt.normalize().to_numpy())
    leave = pd.Series(_as_time(frame["leave_date"]).to_numpy())
    y = ((leave > t) & (leave <= t + horizon)).astype(float)
    y[leave.notna() & (leave <= t)] = np.nan
    if observed_until is not None:  # censored: counting only the leavers already seen would bias the rate up
        y[t + horizon > pd.Timestamp(observed_until)] = np.nan
    return y.set_axis(frame.index)


# Also the model's input conversion (features.attrition_features imports it): the model depends on this module,
# never the reverse.
def _numeric(values: pd.Series) -> pd.Series:
    """Numbers from a column that may hold bools, numeric strings or None (JSON, CSV, Parquet)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values.astype(object).map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                         errors="coerce").astype(float)
