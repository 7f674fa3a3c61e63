"""`lossguard evaluate` / `lossguard promote`: re-score the champion and a challenger on one evaluation set.

Each version's training run scored it on the data of its day; once data or features move, those figures are no
longer comparable. Here both versions are scored now, on the same held-out split built by the model's own module
(its split and metric functions, not copies), with the same text features (today's sentiment champion), and the
gate (training/gate.py) decides on those figures.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from tqdm import tqdm

from features.errors import NotFound
from features.model_specs import SPECS, Evaluator
from features.model_specs import spec as model_spec
from features.modelio import load_model
from features.settings import configure_mlflow
from training.gate import maybe_promote
from training.registry import champion_version


def evaluator(name: str, data_dir: Path | str | None = None) -> Evaluator:
    """The model's own re-scoring recipe, from its training module (named in its ModelSpec); with `data_dir`, on
    that imported data instead of the built-in data."""
    recipe = model_spec(name).resolve("evaluator")
    return recipe(name) if data_dir is None else recipe(name, data_dir=data_dir)


def evaluation_set(name: str, data_dir: Path | str | None = None):
    """The fixed held-out data `lossguard evaluate` scores `name` on (notebooks plot from it too)."""
    configure_mlflow()
    return evaluator(name, data_dir).load()


def registered_versions(name: str) -> list[str]:
    configure_mlflow()
    return sorted((str(v.version) for v in MlflowClient().search_model_versions(f"name = '{name}'")), key=int)


def score_versions(name: str, versions: list[str], data_dir: Path | str | None = None) -> dict[str, dict[str, float]]:
    """Metrics per version on the fixed evaluation set (loaded once, shared by all versions)."""
    configure_mlflow()
    recipe = evaluator(name, data_dir)
    client = MlflowClient()
    out = {}
    with tqdm(total=len(versions) + 1, desc=f"evaluate {name}", unit="step", file=sys.stderr) as bar:
        data = recipe.load()
        bar.update()
        for version in versions:
            run_id = client.get_model_version(name, version).run_id
            estimator = load_model(f"models:/{name}/{version}", name).estimator
            out[version] = recipe.score(estimator, data, run_id)
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
        gate = SPECS[self.name].gate
        roles = {gate.primary.name: "primary"}
        roles.update({m.name: f"secondary (tol {m.tolerance:g})" for m in gate.secondary})
        columns = {f"v{v}{' (champion)' if v == self.champion else ''}": gate.metrics(m)
                   for v, m in self.metrics.items()}
        names = list(roles) + sorted(set().union(*map(set, columns.values())) - set(roles))
        frame = pd.DataFrame({c: [m.get(n) for n in names] for c, m in columns.items()}, index=names)
        frame.insert(0, "gate", [roles.get(n, "") for n in names])
        if len(columns) == 2:
            champion, challenger = frame.columns[1], frame.columns[2]
            frame["delta"] = frame[challenger] - frame[champion]
        return frame


def compare_versions(name: str, version: str | None = None, data_dir: Path | str | None = None) -> Comparison:
    """Score the champion and `version` (default: the latest) on the same evaluation set (of `data_dir`)."""
    model_spec(name)  # NotFound naming the known models
    registered = registered_versions(name)
    if not registered:
        raise NotFound(f"{name} 尚无注册版本: 请先运行 `lossguard train {name}`", field="model")
    challenger = str(version or registered[-1])
    if challenger not in registered:
        raise NotFound(f"{name} 没有版本 {challenger}; 已注册: {', '.join(registered)}", field="version")
    champion = champion_version(name)
    versions = [v for v in dict.fromkeys([champion, challenger]) if v is not None]
    return Comparison(name, champion, challenger, score_versions(name, versions, data_dir))


def promote(name: str, version: str | None = None, force: bool = False,
            data_dir: Path | str | None = None) -> tuple[bool, Comparison]:
    """Re-score both versions and let the gate decide on those figures; the comparison table is logged to MLflow
    with the gate's own (nested) decision run."""
    comparison = compare_versions(name, version, data_dir)
    champion = comparison.metrics.get(comparison.champion) if comparison.champion != comparison.challenger else None
    with mlflow.start_run(run_name=f"promote-{name}-v{comparison.challenger}"):
        mlflow.set_tags({"promote.model": name, "promote.challenger": comparison.challenger,
                         "promote.champion": str(comparison.champion), "promote.forced": str(force)})
        mlflow.log_table(comparison.table().reset_index(names="metric"), "comparison.json")
        promoted = maybe_promote(name, comparison.challenger, comparison.metrics[comparison.challenger],
                                 force=force, champion_metrics=champion)
    return promoted, comparison
