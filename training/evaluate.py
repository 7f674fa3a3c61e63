"""`lossguard evaluate` / `lossguard promote`: re-score the champion and a challenger on one evaluation set.

Each version's training run scored it on the data of its day; once data or features move, those figures are no
longer comparable. Here both versions are scored now, on the same held-out split built by the model's own module
(its split and metric functions, not copies), with the same text features (today's sentiment champion), and the
gate (training/gate.py) decides on those figures.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import mlflow
import pandas as pd
from mlflow import MlflowClient
from tqdm import tqdm

from features.modelio import load_model
from features.settings import configure_mlflow
from training.gate import SPECS, derived, maybe_promote
from training.registry import champion_version


@dataclass(frozen=True)
class Evaluator:
    """How one model is re-scored: `load()` builds the fixed evaluation set once; `score(estimator, data, run_id)`
    returns the metrics the training run logs (run_id gives access to what was fitted beside the model)."""

    load: Callable[[], Any]
    score: Callable[[Any, Any, str], dict[str, float]]


def _text_data():
    from training.sentiment import load_training_data

    return load_training_data()


def _text_score(task: str) -> Callable[[Any, Any, str], dict[str, float]]:
    def score(estimator, data, run_id: str) -> dict[str, float]:
        from training.sentiment import evaluate

        return evaluate(task, estimator, data)[0]

    return score


def _attrition_data():
    from training.attrition import load_tables, registered_sentiment, synthetic_dataset, time_split

    sentiment_fn, _ = registered_sentiment()
    features, y = synthetic_dataset(load_tables(), sentiment_fn=sentiment_fn)
    _, test = time_split(features)
    return features[test].reset_index(drop=True), y[test].to_numpy(dtype=int)


def _attrition_score(estimator, data, run_id: str) -> dict[str, float]:
    from training.attrition import evaluate

    features, y = data
    return evaluate(y, estimator.predict_proba(features))


def _spread_data():
    from training.spread import load_cascades, time_split, with_text_scores

    posts, reposts = load_cascades()
    posts, _ = with_text_scores(posts)
    return time_split(posts)[1], reposts


def _spread_score(estimator, data, run_id: str) -> dict[str, float]:
    """The baselines' fitted parameters come from the version's own run (calibration.json), so re-scoring
    needs no refit; only the model's figures matter to the gate."""
    from training.spread import Baselines, evaluate

    test, reposts = data
    fitted = mlflow.artifacts.load_dict(f"runs:/{run_id}/calibration.json")
    baselines = Baselines(n_star=estimator.n_star,
                          seismic={float(w): tuple(p) for w, p in fitted["seismic_alpha_gamma_cap"].items()},
                          growth_ratios={float(w): r for w, r in fitted["naive_growth_ratios"].items()})
    return evaluate(estimator, baselines, test, reposts)


EVALUATORS: dict[str, Evaluator] = {
    **{task: Evaluator(_text_data, _text_score(task)) for task in ("sentiment", "loss_type", "function")},
    "attrition": Evaluator(_attrition_data, _attrition_score),
    "spread": Evaluator(_spread_data, _spread_score),
}


def evaluation_set(name: str):
    """The fixed held-out data `lossguard evaluate` scores `name` on (notebooks plot from it too)."""
    configure_mlflow()
    return EVALUATORS[name].load()


def registered_versions(name: str) -> list[str]:
    configure_mlflow()
    return sorted((str(v.version) for v in MlflowClient().search_model_versions(f"name = '{name}'")), key=int)


def score_versions(name: str, versions: list[str]) -> dict[str, dict[str, float]]:
    """Metrics per version on the fixed evaluation set (loaded once, shared by all versions)."""
    configure_mlflow()
    evaluator = EVALUATORS[name]
    client = MlflowClient()
    out = {}
    with tqdm(total=len(versions) + 1, desc=f"evaluate {name}", unit="step", file=sys.stderr) as bar:
        data = evaluator.load()
        bar.update()
        for version in versions:
            run_id = client.get_model_version(name, version).run_id
            estimator = load_model(f"models:/{name}/{version}", name).estimator
            out[version] = evaluator.score(estimator, data, run_id)
            bar.update()
    return out


@dataclass
class Comparison:
    name: str
    champion: str | None
    challenger: str
    metrics: dict[str, dict[str, float]]  # version -> metrics

    def table(self) -> pd.DataFrame:
        """Gate metrics first (with their role and tolerance), then every other shared metric."""
        spec = SPECS.get(self.name)
        roles = {}
        if spec:
            roles[spec.primary.name] = "primary"
            roles.update({m.name: f"secondary (tol {m.tolerance:g})" for m in spec.secondary})
        columns = {f"v{v}{' (champion)' if v == self.champion else ''}": derived(self.name, m)
                   for v, m in self.metrics.items()}
        names = list(roles) + sorted(set().union(*map(set, columns.values())) - set(roles))
        frame = pd.DataFrame({c: [m.get(n) for n in names] for c, m in columns.items()}, index=names)
        frame.insert(0, "gate", [roles.get(n, "") for n in names])
        if len(columns) == 2:
            champion, challenger = frame.columns[1], frame.columns[2]
            frame["delta"] = frame[challenger] - frame[champion]
        return frame


def compare_versions(name: str, version: str | None = None) -> Comparison:
    """Score the champion and `version` (default: the latest) on the same evaluation set."""
    if name not in EVALUATORS:
        raise KeyError(f"未知模型 {name!r}; 可评估: {', '.join(EVALUATORS)}")
    registered = registered_versions(name)
    if not registered:
        raise LookupError(f"{name} 尚无注册版本: 请先运行 `lossguard train {name}`")
    challenger = str(version or registered[-1])
    if challenger not in registered:
        raise LookupError(f"{name} 没有版本 {challenger}; 已注册: {', '.join(registered)}")
    champion = champion_version(name)
    versions = [v for v in dict.fromkeys([champion, challenger]) if v is not None]
    return Comparison(name, champion, challenger, score_versions(name, versions))


def promote(name: str, version: str | None = None, force: bool = False) -> tuple[bool, Comparison]:
    """Re-score both versions and let the gate decide on those figures; the comparison table is logged to MLflow
    with the gate's own (nested) decision run."""
    comparison = compare_versions(name, version)
    champion = comparison.metrics.get(comparison.champion) if comparison.champion != comparison.challenger else None
    with mlflow.start_run(run_name=f"promote-{name}-v{comparison.challenger}"):
        mlflow.set_tags({"promote.model": name, "promote.challenger": comparison.challenger,
                         "promote.champion": str(comparison.champion), "promote.forced": str(force)})
        mlflow.log_table(comparison.table().reset_index(names="metric"), "comparison.json")
        promoted = maybe_promote(name, comparison.challenger, comparison.metrics[comparison.challenger],
                                 force=force, champion_metrics=champion)
    return promoted, comparison
