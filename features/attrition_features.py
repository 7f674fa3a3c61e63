"""Attrition: point-in-time features, labels, and the inference model that training, the batch CLI and the
BentoML service all share (one copy, so a feature can never mean one thing in training and another in serving).

Point in time: a row describes an employee as of its ``snapshot_date`` (end of that day). Every feature reads
only history snapshots, posts, complaints and departures dated on or before it, so editing anything later
cannot change it (tests/unit/test_attrition_features.py mutates the future to prove it).

The model (`AttritionModel`) is a held-out stack of a regularized, monotone LightGBM and a logistic regression
on the same features: log-odds = c + a * z_linear + b * z_tree, with (a, b, c) fitted on held-out predictions,
which also calibrates it (Platt). Drivers are exact additive log-odds contributions of that blend: LightGBM's
native TreeSHAP (``pred_contrib=True``) for the tree part plus coef * (x - mean) for the linear part. Where the
stack gives the linear part no weight (the synthetic company, whose planted effects are thresholds) the drivers
are pure TreeSHAP; on the small, mostly additive IBM export the tree rarely earns a weight on rows the blend was
not fitted on, so the linear part usually stands alone (see training.attrition._stack).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.attrition_reasons import FEATURE_ZH, department_of, reason_text, rollup  # noqa: F401 - re-exported
from features.attrition_specs import (  # noqa: F401 - re-exported: pickled models name them here
    CORE_SPEC,
    EXPORT_SPEC,
    IBM_SPEC,
    MONOTONE,
    PROTECTED,
    FeatureSpec,
    export_spec,
)
from features.settings import settings

SentimentFn = Callable[[list[str]], np.ndarray]  # texts -> P(negative)

WINDOW_DAYS = 90  # "last 90 days" signals: events on the snapshot day and the 89 days before it
MONTH_DAYS = 30.44
MISSING_CATEGORY = "NA"
OTHER_CATEGORY = "其他"  # categories too rare in training to learn from share one level
MIN_CATEGORY_ROWS = 50
BANDS = ("low", "medium", "high")
BAND_ZH = {"low": "低", "medium": "中", "high": "高"}
REFERENCE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
MIN_REFERENCE_ROWS = 30  # fewer rows in a department -> compare with the whole company


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


# Explanations and team roll-ups (FEATURE_ZH, reason_text, rollup, department_of) live in
# features/attrition_reasons.py; re-exported here.

# ------------------------------------------------------------------------------------------------ model
@dataclass
class AttritionModel:
    """Fitted attrition estimator (built by training.attrition); everything serving needs to score and explain.

    linear: sklearn Pipeline (ColumnTransformer -> LogisticRegression) on spec.columns;
    tree: fitted lightgbm.LGBMClassifier; blend: (c, a, b) so that logit(p) = c + a * z_linear + b * z_tree.
    """

    spec: FeatureSpec
    linear: object
    tree: object
    blend: tuple[float, float, float]
    categories: dict[str, list[str]]  # levels per one-hot column (see fit_categories)
    thresholds: tuple[float, float]  # propensity at which medium / high start
    reference: dict[str, dict[str, list[float]]]
    horizon_days: int
    linear_groups: np.ndarray = field(repr=False, default=None)  # transformed column -> feature index
    linear_means: np.ndarray = field(repr=False, default=None)   # training mean of each transformed column
    metadata: dict = field(default_factory=dict)

    # -- inputs
    def linear_input(self, features: pd.DataFrame) -> pd.DataFrame:
        return linear_input(features, self.spec, self.categories)

    def tree_input(self, features: pd.DataFrame) -> pd.DataFrame:
        return tree_input(features, self.spec, self.categories)

    def missing_inputs(self, features: pd.DataFrame) -> list[str]:
        """Spec columns these features lack entirely (absent, or empty in every row): scoring them would read
        blanks, e.g. an IBM-export model on a snapshot history without Age or MonthlyIncome."""
        return [c for c in self.spec.columns if c not in features or features[c].isna().all()]

    # -- scores
    def log_odds(self, features: pd.DataFrame) -> np.ndarray:
        c, a, b = self.blend
        z_linear = self.linear.decision_function(self.linear_input(features))
        z_tree = self.tree.predict(self.tree_input(features), raw_score=True)
        return c + a * z_linear + b * z_tree

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds(features)))

    def band(self, propensity: np.ndarray) -> np.ndarray:
        medium, high = self.thresholds
        return np.where(propensity >= high, "high", np.where(propensity >= medium, "medium", "low"))

    def contributions(self, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Per-feature log-odds contributions and the base value; base + row sum == log_odds exactly."""
        c, a, b = self.blend
        X = self.linear_input(features)
        transformed = np.asarray(self.linear[:-1].transform(X), dtype=float)
        logistic = self.linear[-1]
        coef = logistic.coef_[0]
        linear_parts = (transformed - self.linear_means) * coef
        n_features = len(self.spec.columns)
        grouping = np.zeros((len(coef), n_features))
        grouping[np.arange(len(coef)), self.linear_groups] = 1.0
        tree_parts = np.asarray(self.tree.predict(self.tree_input(features), pred_contrib=True), dtype=float)
        parts = a * (linear_parts @ grouping) + b * tree_parts[:, :n_features]
        base = c + a * (logistic.intercept_[0] + coef @ self.linear_means) + b * tree_parts[:, n_features]
        return pd.DataFrame(parts, columns=self.spec.columns, index=features.index), base

    def drivers(self, features: pd.DataFrame, contributions: pd.DataFrame, top: int = 3) -> list[list[tuple[str, str]]]:
        """Top risk-raising features per row as (feature, Chinese reason); only positive contributions count."""
        values = contributions.to_numpy()
        order = np.argsort(-values, axis=1)
        departments = (features["department_id"] if "department_id" in features
                       else pd.Series(None, index=features.index))
        out = []
        for i, row in enumerate(order):
            picked = []
            for j in row:
                if values[i, j] <= 0 or len(picked) == top:
                    break
                name = contributions.columns[j]
                value = _plain(features[name].iat[i]) if name in features else None
                if value is None or (not isinstance(value, str) and pd.isna(value)):
                    continue  # an unknown is no reason a manager can act on
                picked.append((name, reason_text(name, value, self.reference, departments.iat[i])))
            out.append(picked)
        return out

    def score(self, features: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Propensity, band and drivers for already-built features (row-aligned)."""
        contributions, base = self.contributions(features)
        propensity = 1.0 / (1.0 + np.exp(-(base + contributions.sum(axis=1).to_numpy())))
        bands = self.band(propensity)
        drivers = self.drivers(features, contributions, top)
        return pd.DataFrame({
            "employee_id": features["employee_id"].astype(str).to_numpy() if "employee_id" in features else None,
            "snapshot_date": features["snapshot_date"].to_numpy() if "snapshot_date" in features else None,
            "department_id": features["department_id"].to_numpy() if "department_id" in features else None,
            "manager_id": features["manager_id"].to_numpy() if "manager_id" in features else None,
            "propensity": propensity,
            "band": bands,
            "band_zh": [BAND_ZH[b] for b in bands],
            "drivers": [[text for _, text in d] for d in drivers],
            "driver_features": [[name for name, _ in d] for d in drivers],
        }, index=features.index)

    def predict_frame(self, frame: pd.DataFrame, **tables) -> pd.DataFrame:
        """Score Employee-contract rows (positionally aligned output). `tables` go to build_features."""
        features = build_features(frame, **tables)
        return self.score(features).reset_index(drop=True)


def _numeric(values: pd.Series) -> pd.Series:
    """Numbers from a column that may hold bools, numeric strings or None (JSON, CSV, Parquet)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values.astype(object).map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                         errors="coerce").astype(float)


def linear_input(features: pd.DataFrame, spec: FeatureSpec,
                 categories: Mapping[str, list[str]] | None = None) -> pd.DataFrame:
    """The linear part's view: numbers as floats, one-hot columns as category strings (rare ones lumped when
    `categories` is given)."""
    X = features.reindex(columns=spec.columns).copy()
    for column in spec.numeric:
        X[column] = _numeric(X[column])
    for column in spec.one_hot:
        X[column] = category_strings(X[column], None if categories is None else categories[column])
    return X


def tree_input(features: pd.DataFrame, spec: FeatureSpec, categories: Mapping[str, list[str]]) -> pd.DataFrame:
    """LightGBM's view: ordinals stay numeric; categories fixed at training so codes mean the same at serving."""
    X = features.reindex(columns=spec.columns).copy()
    for column in spec.columns:
        if column in spec.tree_categorical:
            X[column] = pd.Categorical(category_strings(X[column], categories[column]), categories=categories[column])
        else:
            X[column] = _numeric(X[column])
    return X


def fit_categories(features: pd.DataFrame, spec: FeatureSpec) -> dict[str, list[str]]:
    """Levels seen at least MIN_CATEGORY_ROWS times per one-hot column, plus OTHER for the rest and the unseen."""
    out = {}
    for column in spec.one_hot:
        counts = category_strings(features[column] if column in features else pd.Series([None] * len(features)))
        counts = counts.value_counts()
        out[column] = sorted(set(counts[counts >= MIN_CATEGORY_ROWS].index) | {OTHER_CATEGORY})
    return out


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return float(value)
    return value


def category_strings(values: pd.Series, allowed: Sequence[str] | None = None) -> pd.Series:
    """Categories as strings with one spelling for missing (survey scales 3 and 3.0 are the same answer);
    levels outside `allowed` become OTHER_CATEGORY."""
    def one(v):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return MISSING_CATEGORY
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v).strip() or MISSING_CATEGORY
    out = pd.Series([one(v) for v in values], index=values.index, dtype=object)
    return out if allowed is None else out.where(out.isin(list(allowed)), OTHER_CATEGORY)


def reference_quantiles(features: pd.DataFrame, columns: Iterable[str]) -> dict[str, dict[str, list[float]]]:
    """Company and per-department quantiles of each numeric feature, stored in the model for the reasons."""
    values = features[list(columns)].apply(_numeric)
    values = values.loc[:, values.notna().any()]
    overall = values.quantile(REFERENCE_QUANTILES)
    out = {c: {"__all__": overall[c].astype(float).tolist()} for c in values}
    if "department_id" in features:
        by_department = values.groupby(features["department_id"].astype(str))
        counts = by_department.count()
        quantiles = by_department.quantile(REFERENCE_QUANTILES)
        for column in values:
            for department in counts.index[counts[column] >= MIN_REFERENCE_ROWS]:
                out[column][department] = quantiles.loc[department, column].astype(float).tolist()
    return out
