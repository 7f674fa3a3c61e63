"""Loading registered models: shared by the CLI's batch scoring and the BentoML service.

Every Lossguard model is stored in MLflow as a pyfunc wrapping one of our estimator objects (defined in
features/, so serving can unpickle it without importing training/). `load_champion` returns that object with
its full interface (probabilities, drivers, quantiles), not just pyfunc's `predict`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import pandas as pd

from features.errors import Unavailable
from features.settings import configure_mlflow

# Explicit requirements keep MLflow from inferring them (slow, and it would record test tools and +cpu tags).
PIP_REQUIREMENTS = [
    "torch==2.13.0",
    "transformers==5.24.0",
    "scikit-learn==1.9.1",
    "lightgbm==4.7.0",
    "pandas==3.1.1",
    "numpy==2.4.6",
    "jieba==0.42.1",
    "opencc-python-reimplemented==0.1.7",
    "mlflow==3.17.2",
]


class ModelNotFound(Unavailable):
    """A model the caller needs is not registered yet; the message says how to fix it."""


class LossguardPyfunc(mlflow.pyfunc.PythonModel):
    """Adapter so MLflow can store our estimators; `predict` takes and returns DataFrames."""

    def __init__(self, estimator: Any):
        self.estimator = estimator

    def predict(self, context, model_input, params=None):  # noqa: D401 - MLflow's signature
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.estimator.predict_frame(frame)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    uri: str
    estimator: Any


def resolve_uri(name: str, alias: str = "champion") -> str:
    return f"models:/{name}@{alias}"


def load_model(uri: str, name: str | None = None) -> LoadedModel:
    """Load any model URI (models:/..., runs:/..., a local path) and unwrap our estimator."""
    configure_mlflow()
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # MLflow raises several types for "not there"
        raise ModelNotFound(f"模型 {uri} 不存在或无法加载 ({type(exc).__name__}): 请先运行 `make train`") from exc
    version = ""
    if uri.startswith("models:/"):
        client = mlflow.MlflowClient()
        model_name, _, ref = uri.removeprefix("models:/").partition("@")
        try:
            version = client.get_model_version_by_alias(model_name, ref).version if ref else ""
        except Exception:  # noqa: BLE001 - MLflow raises several types for a missing alias
            version = ""
    estimator = pyfunc.unwrap_python_model().estimator
    return LoadedModel(name=name or uri, version=str(version or pyfunc.metadata.run_id or ""), uri=uri,
                       estimator=estimator)


def load_champion(name: str, alias: str = "champion") -> LoadedModel:
    return load_model(resolve_uri(name, alias), name=name)
