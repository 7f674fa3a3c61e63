"""Judging an attrition model on a single export: the champion's score on the challenger's rows is fair.

Same export (same digest): the champion's own cross-validated figures are the same-data comparison (same rows,
same seeded folds). Other data: the champion is scored only on people it never saw, and refused when too few are
left; a version whose inputs the data lacks is refused naming them.
"""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from features.settings import configure_mlflow
from training.attrition_data import ExportSet, hashed_ids, score_export


class _Stub:
    """Scores the `risk` column; remembers which employees it was asked about."""

    def __init__(self, trained_on=(), needs=("risk",)):
        self.metadata = {"trained_on": sorted(trained_on)}
        self.needs = needs
        self.seen: list[str] = []

    def missing_inputs(self, features):
        return [c for c in self.needs if c not in features or features[c].isna().all()]

    def predict_proba(self, features):
        self.seen += features["employee_id"].tolist()
        return features["risk"].to_numpy(dtype=float)


def _export(n: int = 200, seed: int = 0) -> ExportSet:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.2).astype(int)
    ids = pd.Series([f"E{i}" for i in range(n)])
    features = pd.DataFrame({"employee_id": ids, "risk": np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)})
    return ExportSet(features, y, "digest-A", hashed_ids(ids))


def _run(**params) -> str:
    configure_mlflow()
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics({"roc_auc": 0.777, "brier": 0.1})
    return run.info.run_id


def test_on_the_same_export_the_champions_own_cross_validation_is_the_comparison():
    run_id = _run(data_digest="digest-A", data_design="export")
    stub = _Stub()
    assert score_export(stub, _export(), run_id)["roc_auc"] == pytest.approx(0.777)
    assert stub.seen == []  # not re-scored in-sample on rows it was fitted on


def test_on_other_data_only_people_the_champion_never_saw_are_scored():
    data = _export()
    trained_on = hashed_ids(pd.Series([f"E{i}" for i in range(0, 200, 2)]))  # every other person
    stub = _Stub(trained_on)
    metrics = score_export(stub, data, _run(data_digest="digest-B", data_design="export"))
    assert sorted(stub.seen) == sorted(f"E{i}" for i in range(1, 200, 2))
    assert metrics["n"] == 100 and 0.5 < metrics["roc_auc"] <= 1.0


def test_a_champion_that_saw_almost_everyone_or_lacks_inputs_cannot_be_scored():
    data = _export()
    with pytest.raises(InputError, match="见过"):
        score_export(_Stub(hashed_ids(pd.Series([f"E{i}" for i in range(190)]))), data, "")
    with pytest.raises(InputError, match="Age"):
        score_export(_Stub(needs=("risk", "Age")), data, "")
