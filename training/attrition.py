"""Attrition training: fit the stacked LightGBM + logistic model, calibrate on held-out predictions, evaluate out
of time against a plain logistic-regression baseline, log to MLflow, register `attrition`, batch-score CSVs.

Data: the synthetic company (monthly snapshots with point-in-time labels). Earlier snapshot months train, the
latest labelled months test; only snapshots whose whole horizon lies inside the data are labelled. Train labels
may run into the test months: that leaks no feature (features never look past their snapshot), it only means a
strict replay would have to wait one horizon longer before training. The stack's weights and calibration come
from forward-chained months inside the training period (fit on earlier months, predict the next), the way the
model is used.

`predict_file` keeps one output row per input row: bad rows carry their reasons in an `error` column (and on
stderr) instead of a score, so a file with a few broken rows is still scored and nothing is silently dropped.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from features.attrition_build import SentimentFn, build_features, labels
from features.attrition_explain import department_of, rollup
from features.attrition_features import (
    CORE_SPEC,
    PROTECTED,
    AttritionModel,
    FeatureSpec,
    fit_categories,
    linear_input,
    reference_quantiles,
)
from features.model_specs import BatchResult, Evaluator
from features.settings import settings

MODEL_NAME = "attrition"
# Small trees, many samples per leaf, slow learning: the signal is mostly additive and leavers are few.
TREE_PARAMS = dict(n_estimators=300, learning_rate=0.03, num_leaves=4, min_child_samples=40, subsample=0.8,
                   subsample_freq=1, colsample_bytree=0.7, reg_lambda=5.0, n_jobs=1, verbose=-1)
LINEAR_C = 0.3           # L2 strength of the model's linear part (the baseline keeps sklearn's default 1.0)
INNER_FOLDS = 5          # out-of-fold predictions for the stack weights and calibration
BAND_QUANTILES = (0.7, 0.9)  # medium = top 30% of held-out propensities, high = top 10%
TEST_SHARE = 1 / 3       # of the labelled snapshot months
ECE_BINS = 10
# truth.json's planted hazard drivers -> the features that carry them (for recovery checks)
PLANTED_FEATURES = {
    "overtime_excess": ("overtime_hours", "overtime_3m", "overtime_trend"),
    "pay_below_band": ("pay_vs_band",),
    "years_since_promotion": ("years_since_promotion",),
    "manager_changed_90d": ("manager_changed_90d",),
    "low_engagement": ("engagement_score",),
    "neg_internal_posts_90d": ("neg_internal_posts_90d", "internal_posts_90d"),
}


# ------------------------------------------------------------------------------------------------- fitting
def _linear(spec: FeatureSpec, C: float) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    return Pipeline([
        ("prepare", ColumnTransformer([("num", numeric, list(spec.numeric)),
                                       ("cat", OneHotEncoder(handle_unknown="ignore"), spec.one_hot)],
                                      sparse_threshold=0.0)),
        ("logistic", LogisticRegression(C=C, solver="newton-cholesky", max_iter=200)),
    ])


def _tree(spec: FeatureSpec, seed: int) -> lgb.LGBMClassifier:
    monotone = dict(spec.monotone)
    return lgb.LGBMClassifier(random_state=seed, monotone_constraints=[monotone.get(c, 0) for c in spec.columns],
                              **TREE_PARAMS)


def _folds(y: np.ndarray, groups: np.ndarray | None, times: np.ndarray | None, seed: int):
    """Held-out splits for the stack. With snapshot times: forward chaining (fit on earlier months, predict the
    next), because the model will always score months it has not seen and drift is what it must survive.
    Otherwise stratified K-fold, grouped by employee when one person has several rows."""
    if times is not None:
        months = np.unique(times)
        for month in months[1:]:
            yield np.flatnonzero(times < month), np.flatnonzero(times == month)
    elif groups is None:
        yield from StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        yield from StratifiedGroupKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)


def _fit_parts(shell: AttritionModel, features: pd.DataFrame, y: np.ndarray, seed: int) -> AttritionModel:
    """(Re)fit both parts of `shell` in place on these rows; the categories stay those of the full training set."""
    shell.linear = _linear(shell.spec, LINEAR_C).fit(shell.linear_input(features), y)
    shell.tree = _tree(shell.spec, seed).fit(shell.tree_input(features), y)
    return shell


def _stack(held_out: np.ndarray, y: np.ndarray, seed: int) -> tuple[LogisticRegression, float, float]:
    """Blend weights (stacker, a, b) on held-out part scores [z_linear, z_tree].

    Candidates: both parts, the linear part alone, the tree alone; one with a negative weight is out (it would
    explain risk backwards). Each candidate's log-loss is measured on held-out rows its weights were not fitted
    on (K-fold over the held-out scores), and the one-standard-error rule picks: the fewest parts whose loss is
    within one standard error of the best. On a small, mostly additive table (IBM) a tree weight fitted
    in-sample buys noise, so the linear part stands alone; on the synthetic company (threshold effects) the
    tree wins by many standard errors."""
    def fit(columns, rows):
        return LogisticRegression(C=1e4, max_iter=1000).fit(held_out[np.ix_(rows, list(columns))], y[rows])

    candidates = {}
    for columns in ((0, 1), (0,), (1,)):
        stacker = fit(columns, np.arange(len(y)))
        if (stacker.coef_[0] >= 0).all():
            candidates[columns] = stacker
    if not candidates:  # neither part ranks the right way round on its own: keep the linear one, say so plainly
        candidates[(0,)] = fit((0,), np.arange(len(y)))
    chosen = next(iter(candidates))
    if len(candidates) > 1 and np.bincount(y, minlength=2).min() >= INNER_FOLDS:
        losses = {c: np.zeros(len(y)) for c in candidates}  # per-row out-of-fold log-loss
        for train, test in StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(held_out, y):
            for columns, loss in losses.items():
                z = fit(columns, train).decision_function(held_out[np.ix_(test, list(columns))])
                loss[test] = np.logaddexp(0.0, z) - y[test] * z
        best = min(losses, key=lambda c: losses[c].mean())
        within = [c for c in losses if (losses[c] - losses[best]).mean()
                  <= (losses[c] - losses[best]).std(ddof=1) / np.sqrt(len(y))]
        chosen = min(within, key=lambda c: (len(c), losses[c].mean()))
    stacker = candidates[chosen]
    weights = dict(zip(chosen, stacker.coef_[0], strict=True))
    return stacker, float(weights.get(0, 0.0)), float(weights.get(1, 0.0))


def fit_model(features: pd.DataFrame, y: Sequence[float], *, spec: FeatureSpec = CORE_SPEC,
              groups: Sequence | None = None, times: Sequence | None = None, horizon_days: int | None = None,
              seed: int = settings.seed) -> AttritionModel:
    """Fit the stack on `features` (from build_features). The blend weights and the calibration are fitted on
    held-out predictions (see _folds): `times` (snapshot dates) for time-ordered data, else `groups` (employee
    ids) keep one person's rows in one fold."""
    with threadpool_limits(1):  # small dense problems: BLAS threads only contend on a shared box
        return _fit_model(features.reset_index(drop=True), np.asarray(y, dtype=int), spec, groups, times,
                          horizon_days or settings.attrition_horizon_days, seed)


def _fit_model(features: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, groups, times, horizon_days: int,
               seed: int) -> AttritionModel:
    categories = fit_categories(features, spec)
    shell = AttritionModel(spec=spec, linear=None, tree=None, blend=(0.0, 1.0, 1.0), categories=categories,
                           thresholds=(0.0, 0.0), reference={}, horizon_days=horizon_days)
    held_out = np.full((len(y), 2), np.nan)
    splits = _folds(y, None if groups is None else np.asarray(groups),
                    None if times is None else np.asarray(times), seed)
    for train, test in splits:
        part = _fit_parts(shell, features.iloc[train], y[train], seed)
        held_out[test, 0] = part.linear.decision_function(part.linear_input(features.iloc[test]))
        held_out[test, 1] = part.tree.predict(part.tree_input(features.iloc[test]), raw_score=True)
    scored = ~np.isnan(held_out[:, 0])
    held_out, y_held = held_out[scored], y[scored]
    stacker, a, b = _stack(held_out, y_held, seed)
    model = _fit_parts(shell, features, y, seed)
    model.blend = (float(stacker.intercept_[0]), float(a), float(b))
    held_out_p = 1 / (1 + np.exp(-(model.blend[0] + model.blend[1] * held_out[:, 0] + model.blend[2] * held_out[:, 1])))
    model.thresholds = tuple(float(q) for q in np.quantile(held_out_p, BAND_QUANTILES))
    prepare = model.linear[:-1]
    transformed = np.asarray(prepare.transform(model.linear_input(features)), dtype=float)
    model.linear_means = transformed.mean(axis=0)
    one_hot = model.linear.named_steps["prepare"].named_transformers_.get("cat")
    sizes = [1] * len(spec.numeric) + ([len(c) for c in one_hot.categories_] if spec.one_hot else [])
    model.linear_groups = np.repeat(np.arange(len(spec.columns)), sizes)
    model.reference = reference_quantiles(features, [*spec.numeric, *spec.ordinal])
    model.metadata = {"rows": int(len(y)), "positives": int(y.sum()), "blend": model.blend,
                      "held_out_auc": float(roc_auc_score(y_held, held_out_p))}
    return model


def fit_baseline(features: pd.DataFrame, y: Sequence[float], spec: FeatureSpec = CORE_SPEC) -> Pipeline:
    """The simple baseline the issue asks us to beat: one-hot + scaling + logistic regression, nothing else."""
    return _linear(spec, 1.0).fit(linear_input(features, spec), np.asarray(y, dtype=int))


def baseline_proba(baseline: Pipeline, features: pd.DataFrame, spec: FeatureSpec = CORE_SPEC) -> np.ndarray:
    return baseline.predict_proba(linear_input(features, spec))[:, 1]


# ---------------------------------------------------------------------------------------------- evaluation
def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Leaver rate among the 10% highest scores over the overall rate (how much a manager's shortlist helps)."""
    top = np.argsort(-p, kind="stable")[: max(1, int(np.ceil(0.1 * len(p))))]
    return float(y[top].mean() / y.mean())


def evaluate(y: Sequence[float], p: Sequence[float]) -> dict[str, float]:
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
            "brier": float(brier_score_loss(y, p)), "ece": expected_calibration_error(y, p),
            "top_decile_lift": top_decile_lift(y, p), "base_rate": float(y.mean()), "n": float(len(y))}


def group_gaps(p: np.ndarray, y: np.ndarray, groups: pd.Series) -> pd.DataFrame:
    """Mean score and actual leaver rate per group: the fairness view for attributes the model does not use."""
    frame = pd.DataFrame({"group": groups.astype(str).to_numpy(), "score": p, "actual": y})
    table = frame.groupby("group").agg(n=("score", "size"), mean_score=("score", "mean"),
                                       actual_rate=("actual", "mean"))
    return table[table["n"] >= 20]


def global_drivers(model: AttritionModel, features: pd.DataFrame) -> pd.Series:
    """Mean |log-odds contribution| per feature, largest first."""
    contributions, _ = model.contributions(features)
    return contributions.abs().mean().sort_values(ascending=False)


def planted_recovered(importance: pd.Series) -> dict[str, int]:
    """Rank (1 = strongest) of each planted driver among the global drivers, a driver's importance being the
    sum over the features that carry it (three overtime views share one signal) and other features ranked as is."""
    carried = {f for features in PLANTED_FEATURES.values() for f in features}
    grouped = pd.concat([
        importance[[f for f in importance.index if f not in carried]],
        pd.Series({k: importance.reindex(list(fs)).fillna(0.0).sum() for k, fs in PLANTED_FEATURES.items()}),
    ]).sort_values(ascending=False)
    rank = {name: i + 1 for i, name in enumerate(grouped.index)}
    return {k: rank[k] for k in PLANTED_FEATURES}


# ------------------------------------------------------------------------------------------- synthetic data
def load_tables(folder: Path | str | None = None) -> dict[str, pd.DataFrame]:
    folder = Path(folder or settings.generated_dir)
    names = ("snapshots", "posts", "complaints", "org_units")
    missing = [n for n in names if not (folder / f"{n}.parquet").exists()]
    if missing:
        raise FileNotFoundError(f"{folder} 中缺少 {missing}: 请先运行 `lossguard data generate` (make data)")
    return {n: pd.read_parquet(folder / f"{n}.parquet") for n in names}


def registered_sentiment() -> tuple[SentimentFn | None, str]:
    """The registered sentiment model as P(neg) hook (no train/serve skew), else the generator's labels."""
    from features.modelio import ModelNotFound, load_champion

    try:
        loaded = load_champion("sentiment")
    except ModelNotFound:
        return None, "generator labels"

    def p_neg(texts: list[str]) -> np.ndarray:
        return loaded.estimator.predict_frame(pd.DataFrame({"text": texts}))["p_neg"].to_numpy(dtype=float)

    return p_neg, f"sentiment v{loaded.version}"


def synthetic_dataset(tables: dict[str, pd.DataFrame], horizon_days: int | None = None,
                      sentiment_fn: SentimentFn | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Features and labels of every snapshot whose horizon is fully observed in the data."""
    snapshots = tables["snapshots"]
    y = labels(snapshots, horizon_days, observed_until=pd.Timestamp(snapshots["snapshot_date"].max()))
    keep = y.notna().to_numpy()
    posts = tables.get("posts")
    if posts is not None and sentiment_fn is None and "sentiment" not in posts:
        posts = None  # imported posts carry no labels: without a sentiment model there is no negativity to count
    features = build_features(snapshots[keep], history=snapshots, posts=posts,
                              complaints=tables.get("complaints"), org_units=tables.get("org_units"),
                              sentiment_fn=sentiment_fn)
    return features, y[keep].reset_index(drop=True)


def time_split(features: pd.DataFrame, test_share: float = TEST_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: the earlier snapshot months train, the latest `test_share` of months test."""
    months = np.sort(features["snapshot_date"].unique())
    n_test = max(1, int(round(len(months) * test_share)))
    cut = months[len(months) - n_test]
    test = (features["snapshot_date"] >= cut).to_numpy()
    return ~test, test


# --------------------------------------------------------------------------------------------------- plots
def _plots(y: np.ndarray, scores: dict[str, np.ndarray], importance: pd.Series):
    import matplotlib.pyplot as plt  # the backend is left to the caller (inline in notebooks, Agg headless)
    from sklearn.metrics import roc_curve

    roc, ax = plt.subplots(figsize=(5, 5))
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Attrition ROC (test months)")
    ax.legend(loc="lower right")

    calibration, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for name, p in scores.items():
        bins = np.array_split(np.argsort(p), 10)
        predicted, observed = [p[b].mean() for b in bins], [y[b].mean() for b in bins]
        ax.plot(predicted, observed, "o-", label=name)
        top = max(top, *predicted, *observed)
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set(xlabel="mean predicted propensity (decile)", ylabel="observed leaver rate", title="Calibration")
    ax.legend()

    bars, ax = plt.subplots(figsize=(6, 5))
    shown = importance.head(15)[::-1]
    ax.barh(shown.index, shown.to_numpy())
    ax.set(xlabel="mean |log-odds contribution|", title="Global drivers (TreeSHAP + linear)")
    bars.tight_layout()
    return {"plots/roc.png": roc, "plots/calibration.png": calibration, "plots/importance.png": bars}


def _rollups(model: AttritionModel, test: pd.DataFrame, org_units: pd.DataFrame | None, top: int = 10) -> dict:
    """Riskiest teams (leaf units), departments (with an org chart) and managers' teams at the latest test month."""
    latest = test[test["snapshot_date"] == test["snapshot_date"].max()]
    scored = model.score(latest)
    views = [("team", "department_id"), ("manager", "manager_id")]
    if org_units is not None and "level" in org_units:
        scored = scored.assign(department=department_of(scored["department_id"], org_units))
        views.insert(1, ("department", "department"))
    return {f"rollup_{name}": rollup(scored, by).head(top).round(4).to_dict("records") for name, by in views
            if scored[by].notna().any()}


# ---------------------------------------------------------------------------------------------------- train
def summary_line(metrics: dict[str, float]) -> str:
    return (f"ROC-AUC {metrics['roc_auc']:.3f} (LR {metrics['baseline_roc_auc']:.3f})  "
            f"Brier {metrics['brier']:.4f} (LR {metrics['baseline_brier']:.4f})  ECE {metrics['ece']:.3f}  "
            f"lift@10% {metrics['top_decile_lift']:.2f}")


def train(promote: bool = True, force: bool = False, generated_dir: Path | None = None, *,
          tables: dict[str, pd.DataFrame] | None = None, data: dict[str, str] | None = None, **_) -> list[dict]:
    """Fit on a snapshot history's earlier months, evaluate on the latest ones, log, register, gate.

    The history is the synthetic company in `generated_dir` unless `tables` (snapshots and optionally posts,
    complaints, org_units: a company's imported history) are given; `data` (data_dir, data_digest, ...) is then
    logged so the model card names the data. The champion is re-scored on the same test months before the gate.
    """
    import mlflow

    from features.settings import configure_mlflow
    from training.gate import maybe_promote, rescore_champion
    from training.registry import log_and_register, log_figure, log_json

    configure_mlflow()
    tables = tables if tables is not None else load_tables(generated_dir)
    sentiment_fn, sentiment_source = registered_sentiment()
    features, y = synthetic_dataset(tables, sentiment_fn=sentiment_fn)
    train_mask, test_mask = time_split(features)
    with mlflow.start_run(run_name=MODEL_NAME):
        model = fit_model(features[train_mask], y[train_mask], times=features["snapshot_date"][train_mask])
        model.metadata["design"] = "history"
        baseline = fit_baseline(features[train_mask], y[train_mask])
        test = features[test_mask].reset_index(drop=True)
        y_test = y[test_mask].to_numpy(dtype=int)
        p = model.predict_proba(test)
        p_base = baseline_proba(baseline, test)
        metrics = evaluate(y_test, p)
        metrics.update({f"baseline_{k}": v for k, v in evaluate(y_test, p_base).items() if k not in ("n", "base_rate")})
        gaps = {attr: group_gaps(p, y_test, test[attr]) for attr in PROTECTED if attr in test}
        for attr, table in gaps.items():
            metrics[f"score_gap_{attr}"] = float(table["mean_score"].max() - table["mean_score"].min())
        importance = global_drivers(model, test)
        months = {name: ",".join(str(pd.Timestamp(d).date()) for d in np.unique(features["snapshot_date"][mask]))
                  for name, mask in (("train_months", train_mask), ("test_months", test_mask))}
        mlflow.log_params({
            "spec": model.spec.name, "features": ",".join(model.spec.columns), "horizon_days": model.horizon_days,
            "use_protected": model.spec.use_protected, "text_features": sentiment_source, **months,
            "blend_c_a_b": ",".join(f"{v:.3f}" for v in model.blend),
            "band_thresholds": ",".join(f"{v:.4f}" for v in model.thresholds), "data_design": "history",
            "linear_C": LINEAR_C, **{f"tree_{k}": v for k, v in TREE_PARAMS.items()},
            **(data or {"data_dir": str(generated_dir or settings.generated_dir), "data_source": "synthetic"}),
        })
        mlflow.log_metrics(metrics)
        for path, figure in _plots(y_test, {"ours": p, "LR baseline": p_base}, importance).items():
            log_figure(figure, path)
        log_json({"importance": importance.round(5).to_dict(),
                  "fairness": {a: t.round(4).reset_index().to_dict("records") for a, t in gaps.items()},
                  **_rollups(model, test, tables.get("org_units"))}, "attrition_report.json")
        snapshots = tables["snapshots"]
        example = snapshots.iloc[:3].drop(columns=[c for c in snapshots if c.startswith("truth_")])
        version = log_and_register(model, MODEL_NAME, input_example=example_rows(example),
                                   tags={"spec": model.spec.name, "roc_auc": f"{metrics['roc_auc']:.4f}"})
    rescored = rescore_champion(MODEL_NAME, version, score_on, (test, y_test), (data or {}).get("data_digest"))
    promoted = maybe_promote(MODEL_NAME, version, metrics, promote=promote, force=force, rescored=rescored)
    return [{"name": MODEL_NAME, "version": version, "metrics": metrics, "summary": summary_line(metrics),
             "promoted": promoted}]


def example_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows MLflow can store as the input example: nullable types (Int64, boolean, pd.NA) as plain objects."""
    out = frame.astype(object).where(frame.notna(), None)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = frame[column].dt.strftime("%Y-%m-%d").where(frame[column].notna(), None)
    return out


def score_on(estimator: AttritionModel, data: tuple[pd.DataFrame, np.ndarray], run_id: str = "") -> dict[str, float]:
    """A version's metrics on (features, labels); InputError when the features lack what its spec reads."""
    from features.errors import InputError

    features, y = data
    missing = estimator.missing_inputs(features)
    if missing:
        raise InputError(f"评估数据缺少该版本需要的特征 {missing[:8]}{' …' if len(missing) > 8 else ''}",
                         field=missing[0])
    return evaluate(y, estimator.predict_proba(features))


def evaluator(name: str = MODEL_NAME) -> Evaluator:
    """Re-score on today's synthetic time split, text features from today's sentiment champion."""
    def load():
        sentiment_fn, _ = registered_sentiment()
        features, y = synthetic_dataset(load_tables(), sentiment_fn=sentiment_fn)
        _, test = time_split(features)
        return features[test].reset_index(drop=True), y[test].to_numpy(dtype=int)

    return Evaluator(load, score_on)


# ---------------------------------------------------------------------------------------------- batch CLI
def predict_file(input: Path | str, output: Path | str, mapping: str | None = None,
                 model_uri: str | None = None, chunk_rows: int = 2000) -> BatchResult:
    """Score an HR export into CSV or Parquet (by `output`'s suffix): one output row per input row, in order.

    Output columns: row (0-based data row; CSV line = row + 2), employee_id, snapshot_date, propensity, band,
    band_zh, driver_1..driver_3, error. A bad row (missing required field, impossible date, hire after the
    snapshot = negative tenure, ...) keeps its place with an empty score and the reason in `error`, and is also
    listed on stderr; every other row is scored. The export is read whole (mappings compute group medians over
    it, histories need all of a person's rows; HR exports are thousands of rows, not millions) and scored in
    chunks. A model trained on an export's own columns (an IBM-export model given a plain Employee file) is
    refused naming the columns it lacks (`request_inputs`), instead of scoring blanks; history signals a plain
    file cannot carry are imputed, as in the service.
    """
    from tqdm import tqdm

    from features.contracts import EMPLOYEE, validate
    from features.errors import InputError
    from features.loaders import load_hr_export
    from features.modelio import load_champion, load_model
    from features.tables import TableWriter, check_output, read_table

    output = check_output(output)
    # a mapping or contract that cannot be applied, an unreadable file or no champion: InputError/Unavailable
    checked = load_hr_export(input, mapping) if mapping else validate(read_table(input), EMPLOYEE)
    loaded = load_model(model_uri, MODEL_NAME) if model_uri else load_champion(MODEL_NAME)
    features = build_features(checked.frame)
    needed = loaded.estimator.request_inputs() if hasattr(loaded.estimator, "request_inputs") else []
    missing = [c for c in needed if c not in features or features[c].isna().all()] if len(features) else []
    if missing:
        raise InputError(f"{input}: 模型 {MODEL_NAME} v{loaded.version} 需要的列缺失 {missing[:8]} (该版本按 "
                         f"{loaded.estimator.spec.name} 特征训练; 单次导出请用训练时的 --mapping)", field=missing[0])
    chunks = range(0, len(features), chunk_rows)
    parts = [loaded.estimator.score(features.iloc[start:start + chunk_rows])
             for start in tqdm(chunks, desc="attrition", unit="chunk", disable=len(chunks) < 3, file=sys.stderr)]
    scored = pd.concat(parts) if parts else pd.DataFrame(
        {c: [] for c in ("employee_id", "snapshot_date", "propensity", "band", "band_zh", "drivers")})
    good = pd.DataFrame({
        "row": checked.source_rows,
        "employee_id": scored["employee_id"].to_numpy(),
        "snapshot_date": pd.to_datetime(scored["snapshot_date"]).dt.date.to_numpy(),
        "propensity": np.round(scored["propensity"].to_numpy(dtype=float), 4),
        "band": scored["band"].to_numpy(), "band_zh": scored["band_zh"].to_numpy(),
        **{f"driver_{k + 1}": [d[k] if len(d) > k else "" for d in scored["drivers"]] for k in range(3)},
        "error": "",
    })
    messages: dict[int, list[str]] = {}
    for error in checked.errors:
        messages.setdefault(error.row, []).append(f"{error.field}: {error.message}")
        print(f"[attrition] {error}", file=sys.stderr)
    bad = pd.DataFrame({"row": list(messages), "error": ["; ".join(m) for m in messages.values()]})
    out = pd.concat([good, bad], ignore_index=True).sort_values("row", kind="stable")
    with TableWriter(output, encoding="utf-8-sig") as writer:
        writer.write(out.astype({"snapshot_date": str}).replace({"snapshot_date": {"NaT": None, "nan": None}})
                     if output.suffix.lower() == ".parquet" else out)
    print(f"[attrition] 已打分 {len(good)} 行, 错误 {len(bad)} 行 -> {output}", file=sys.stderr)
    return BatchResult(Path(output), scored=len(good), errors=len(bad))
