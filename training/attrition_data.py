"""`lossguard train attrition [--data DIR]`: attrition on whichever data it is given, evaluated as that data allows.

- no `--data`: the synthetic company (training/attrition.py: monthly snapshots, time split);
- `--data DIR` with a snapshot history (`features.imported.attrition_design` says HISTORY): the same
  point-in-time design on the company's months, earlier months train, the latest test;
- `--data DIR` with a single export (one row per person, a left/stayed outcome, like IBM's): there is no later
  period to hold out, so the model is judged by 5x3 repeated stratified cross-validation, everything (feature
  statistics, stack weights, calibration, band thresholds) fitted inside each training fold, the way
  bench/attrition.py measures it (the bench calls `cross_validate` below, so both report the same figure); the
  registered model is then fitted on every row.

For the gate the champion is scored on the challenger's data (training/gate.py). On a single export, a champion
trained on the same rows (same data digest) is compared by its own cross-validated figures: same rows, same
folds (same seed), same protocol; a champion trained on other data is scored on the rows it never saw (people it
was trained on are left out, by hashed employee id), against the challenger's cross-validated figures.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.model_selection import RepeatedStratifiedKFold

from features.attrition_build import build_features
from features.attrition_features import PROTECTED, FeatureSpec, export_spec
from features.errors import InputError
from features.imported import EXPORT, attrition_design, data_digest, export_labels, load_imported
from features.model_specs import Evaluator
from features.settings import settings
from training import attrition
from training.attrition import MODEL_NAME, baseline_proba, evaluate, fit_baseline, fit_model

CV_SPLITS, CV_REPEATS = 5, 3
MIN_UNSEEN_ROWS = 30  # fewer rows a champion never saw: no fair score for it
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train rows, test rows) -> P(leave) on the test rows


class ExportSet(NamedTuple):
    """A single export's evaluation set: every row (each scored out of fold by the challenger)."""

    features: pd.DataFrame
    y: np.ndarray
    digest: str
    ids: np.ndarray  # hashed employee ids, to leave out the people a champion trained on


def hashed_ids(employee_ids: pd.Series) -> np.ndarray:
    """Short stable hashes of employee ids: enough to tell who a model was trained on, without storing ids."""
    return np.array([hashlib.sha256(str(i).encode("utf-8")).hexdigest()[:16] for i in employee_ids], dtype=object)


def cross_validate(features: pd.DataFrame, y: np.ndarray, specs: dict[str, FeatureSpec], *, seed: int,
                   others: dict[str, Scorer] | None = None, splits: int = CV_SPLITS,
                   repeats: int = CV_REPEATS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fold metrics (one row per model per fold) of our model fitted with each spec and of each of `others`,
    and the out-of-fold scores of the first repeat (one column per model)."""
    rows, oof = [], {}
    cv = RepeatedStratifiedKFold(n_splits=splits, n_repeats=repeats, random_state=seed)
    for fold, (train, test) in enumerate(cv.split(features, y)):
        scores = {name: score(train, test) for name, score in (others or {}).items()}
        for name, spec in specs.items():
            model = fit_model(features.iloc[train], y[train], spec=spec, seed=seed)
            scores[name] = model.predict_proba(features.iloc[test])
        for name, p in scores.items():
            rows.append({"model": name, "fold": fold, **evaluate(y[test], p)})
            if fold < splits:
                oof.setdefault(name, np.full(len(y), np.nan))[test] = p
    return pd.DataFrame(rows), pd.DataFrame(oof)


def cv_metrics(folds: pd.DataFrame) -> dict[str, float]:
    """Mean of each figure over the folds for `ours` (with the ROC-AUC spread), `baseline_` for the baseline."""
    ours = folds[folds["model"] == "ours"].drop(columns=["model", "fold"])
    base = folds[folds["model"] == "LR baseline"].drop(columns=["model", "fold"])
    metrics = {k: float(v) for k, v in ours.mean().items()}
    metrics["roc_auc_std"] = float(ours["roc_auc"].std(ddof=1))
    metrics["cv_folds"] = float(len(ours))
    metrics.update({f"baseline_{k}": float(v) for k, v in base.mean().items() if k not in ("n", "base_rate")})
    return metrics


def train_export(employees: pd.DataFrame, *, data: dict[str, str], promote: bool = True, force: bool = False,
                 seed: int = settings.seed) -> list[dict]:
    """Cross-validate, fit on all rows, log, register and gate an attrition model from a single export."""
    import mlflow

    from features.settings import configure_mlflow
    from training.gate import maybe_promote, rescore_champion
    from training.registry import log_and_register, log_figure, log_json

    configure_mlflow()
    features = build_features(employees)
    y = export_labels(employees).to_numpy(dtype=int)
    if np.bincount(y, minlength=2).min() < CV_SPLITS:
        raise InputError(f"单次导出中离职 {int(y.sum())} 人、在职 {int(len(y) - y.sum())} 人: "
                         f"每类至少需要 {CV_SPLITS} 人才能做交叉验证", field="left")
    spec = export_spec(features)

    def lr_baseline(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        fitted = fit_baseline(features.iloc[train], y[train], spec)
        return baseline_proba(fitted, features.iloc[test], spec)

    with mlflow.start_run(run_name=MODEL_NAME):
        folds, oof = cross_validate(features, y, {"ours": spec}, seed=seed, others={"LR baseline": lr_baseline})
        metrics = cv_metrics(folds)
        model = fit_model(features, y, spec=spec, seed=seed)
        ids = hashed_ids(employees["employee_id"])
        model.metadata.update({"design": EXPORT, "trained_on": sorted(ids)})
        p_oof = oof["ours"].to_numpy()
        gaps = {attr: attrition.group_gaps(p_oof, y, features[attr]) for attr in PROTECTED if attr in features}
        for attr, table in gaps.items():
            if len(table):
                metrics[f"score_gap_{attr}"] = float(table["mean_score"].max() - table["mean_score"].min())
        importance = attrition.global_drivers(model, features)
        mlflow.log_params({
            "spec": spec.name, "features": ",".join(spec.columns), "horizon_days": model.horizon_days,
            "use_protected": spec.use_protected, "data_design": EXPORT, "n_rows": len(y), "n_leavers": int(y.sum()),
            "evaluation": f"{CV_SPLITS}x{CV_REPEATS} repeated stratified K-fold, seed {seed}; final fit on all rows",
            "blend_c_a_b": ",".join(f"{v:.3f}" for v in model.blend),
            "band_thresholds": ",".join(f"{v:.4f}" for v in model.thresholds),
            "linear_C": attrition.LINEAR_C, **{f"tree_{k}": v for k, v in attrition.TREE_PARAMS.items()}, **data,
        })
        mlflow.log_metrics(metrics)
        curves = {"ours (out of fold)": p_oof, "LR baseline (out of fold)": oof["LR baseline"].to_numpy()}
        for path, figure in attrition._plots(y, curves, importance).items():
            log_figure(figure, path)
        log_json({"importance": importance.round(5).to_dict(),
                  "fairness": {a: t.round(4).reset_index().to_dict("records") for a, t in gaps.items()},
                  "cv_folds": folds.round(5).to_dict("records")}, "attrition_report.json")
        version = log_and_register(model, MODEL_NAME, input_example=attrition.example_rows(employees.head(3)),
                                   tags={"spec": spec.name, "roc_auc": f"{metrics['roc_auc']:.4f}",
                                         "design": EXPORT})
    evaluation = ExportSet(features, y, data["data_digest"], ids)
    rescored = rescore_champion(MODEL_NAME, version, score_export, evaluation, data["data_digest"])
    promoted = maybe_promote(MODEL_NAME, version, metrics, promote=promote, force=force, rescored=rescored)
    return [{"name": MODEL_NAME, "version": version, "metrics": metrics,
             "summary": f"{CV_SPLITS}x{CV_REPEATS} CV " + attrition.summary_line(metrics), "promoted": promoted}]


def score_export(estimator, data: ExportSet, run_id: str) -> dict[str, float]:
    """A version's figures on a single export (see the module docstring for which rows)."""
    from mlflow import MlflowClient

    run = MlflowClient().get_run(run_id) if run_id else None
    if run is not None and run.data.params.get("data_digest") == data.digest and \
            run.data.params.get("data_design") == EXPORT:
        return dict(run.data.metrics)  # its own CV on these very rows and folds
    seen = set(getattr(estimator, "metadata", {}).get("trained_on", ()))
    unseen = ~np.isin(data.ids, list(seen)) if seen else np.ones(len(data.y), dtype=bool)
    if unseen.sum() < MIN_UNSEEN_ROWS or len(np.unique(data.y[unseen])) < 2:
        raise InputError(f"该版本训练时已见过本数据中的大部分员工 (未见过的仅 {int(unseen.sum())} 人), 无法公平评分",
                         field="employee_id")
    return attrition.score_on(estimator, (data.features[unseen].reset_index(drop=True), data.y[unseen]))


def _data_params(data_dir: Path, names: list[str], design: str) -> dict[str, str]:
    return {"data_dir": str(data_dir), "data_digest": data_digest(data_dir, names), "data_source": "imported",
            "data_entities": ",".join(sorted(names)), "data_design": design}


def train(promote: bool = True, force: bool = False, generated_dir: Path | None = None,
          data_dir: Path | str | None = None, **_) -> list[dict]:
    """The registry's attrition trainer: synthetic company by default, else the imported data in `data_dir`."""
    if data_dir is None:
        return attrition.train(promote=promote, force=force, generated_dir=generated_dir)
    data_dir = Path(data_dir)
    tables = load_imported(data_dir, "employees", optional=("posts", "complaints", "org_units"))
    design = attrition_design(tables["employees"])
    if design == EXPORT:
        return train_export(tables["employees"], data=_data_params(data_dir, ["employees"], design),
                            promote=promote, force=force)
    history = {"snapshots": tables.pop("employees"), **tables}
    return attrition.train(promote=promote, force=force, tables=history,
                           data=_data_params(data_dir, ["employees", *tables], design))


def evaluator(name: str = MODEL_NAME, data_dir: Path | str | None = None) -> Evaluator:
    """`lossguard evaluate|promote attrition [--data DIR]`: the evaluation set of the data's design."""
    if data_dir is None:
        return attrition.evaluator(name)
    data_dir = Path(data_dir)

    def load():
        tables = load_imported(data_dir, "employees", optional=("posts", "complaints", "org_units"))
        employees = tables.pop("employees")
        if attrition_design(employees) == EXPORT:
            return ExportSet(build_features(employees), export_labels(employees).to_numpy(dtype=int),
                             data_digest(data_dir, ["employees"]), hashed_ids(employees["employee_id"]))
        sentiment_fn, _ = attrition.registered_sentiment()
        features, y = attrition.synthetic_dataset({"snapshots": employees, **tables}, sentiment_fn=sentiment_fn)
        _, test = attrition.time_split(features)
        return features[test].reset_index(drop=True), y[test].to_numpy(dtype=int)

    def score(estimator, data, run_id: str) -> dict[str, float]:
        return score_export(estimator, data, run_id) if isinstance(data, ExportSet) else \
            attrition.score_on(estimator, data, run_id)

    return Evaluator(load, score)
