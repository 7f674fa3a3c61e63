"""Model cards are rendered from what the version's run recorded: data, per-slice metrics, fairness gaps."""
from __future__ import annotations

import uuid

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.model_specs import SPECS
from features.settings import configure_mlflow
from training.model_card import CARD_ARTIFACT, render_model_card, split_metric, write_model_card
from training.registry import log_and_register


class _Constant:
    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"p": [0.1] * len(frame)})


@pytest.mark.parametrize("name, expected", [
    ("workplace_macro_f1", ("workplace", "macro_f1")),
    ("snownlp_accuracy", ("snownlp", "accuracy")),
    ("baseline_roc_auc", ("baseline", "roc_auc")),
    ("coverage_T60", ("T60", "coverage")),
    ("msle_ours_all_T30", ("T30", "msle_ours_all")),
    ("roc_auc", ("overall", "roc_auc")),
    ("macro_f1", ("overall", "macro_f1")),
    ("culture_f1", ("culture", "f1")),
])
def test_metric_names_split_into_slice_and_metric(name, expected):
    assert split_metric(name) == expected


@pytest.fixture(scope="module")
def registered() -> tuple[str, str]:
    """A version whose run logged slice metrics, a fairness metric and a fairness table, like attrition does."""
    configure_mlflow()
    name = f"card-test-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(run_name=name):
        mlflow.log_params({"n_rows": 1234, "test_months": "2025-10-31,2025-11-30", "learning_rate": 0.03})
        mlflow.log_metrics({"roc_auc": 0.81, "baseline_roc_auc": 0.74, "brier": 0.05, "baseline_brier": 0.06,
                            "score_gap_gender": 0.031})
        mlflow.log_dict({"fairness": {"gender": [{"group": "F", "n": 40, "mean_score": 0.12},
                                                 {"group": "M", "n": 60, "mean_score": 0.151}]}},
                        "attrition_report.json")
        version = log_and_register(_Constant(), name)
    return name, version


def test_card_shows_data_slices_fairness_and_limits(registered):
    name, version = registered
    card = render_model_card(name, version)
    data = card.split("## 使用的数据")[1].split("## 指标")[0]
    assert "n_rows | 1234" in data and "test_months" in data and "learning_rate" not in data
    slices = card.split("### 分切片")[1].split("## 公平性")[0]
    assert "| baseline | 0.0600 | 0.7400 |" in slices and "| overall | 0.0500 | 0.8100 |" in slices
    fairness = card.split("## 公平性差距")[1].split("## 已知局限")[0]
    assert "score_gap_gender | 0.0310" in fairness
    assert "| M | 60 | 0.1510 |" in fairness
    assert "learning_rate | 0.03" in card.split("## 训练参数")[1]


def test_known_models_have_their_own_use_and_limits(registered):
    for model, spec in SPECS.items():
        assert spec.card.intended_use and spec.card.data and spec.card.limits, model
    name, version = registered
    assert "未填写" in render_model_card(name, version)  # an unknown model says so instead of inventing prose


def test_card_is_logged_on_the_run_and_linked_from_the_version(registered):
    name, version = registered
    path = write_model_card(name, version)
    client = MlflowClient()
    model_version = client.get_model_version(name, version)
    assert model_version.tags["model_card"] == f"runs:/{model_version.run_id}/{CARD_ARTIFACT}"
    assert mlflow.artifacts.load_text(model_version.tags["model_card"]) == path.read_text(encoding="utf-8")
