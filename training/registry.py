"""MLflow helpers used by every training module: log a model, register it, move the champion alias."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from features.modelio import PIP_REQUIREMENTS, LossguardPyfunc
from features.settings import configure_mlflow

CHAMPION = "champion"


def log_and_register(
    estimator: Any,
    name: str,
    *,
    input_example: Any = None,
    tags: Mapping[str, str] | None = None,
    python_model: mlflow.pyfunc.PythonModel | None = None,
    artifacts: Mapping[str, str] | None = None,
) -> str:
    """Log `estimator` in the active run as pyfunc `name`, register it, return the new version number.

    `python_model`/`artifacts` let a model ship files (e.g. transformer weights) instead of being pickled whole.
    """
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model or LossguardPyfunc(estimator),
        artifacts=dict(artifacts) if artifacts else None,
        pip_requirements=PIP_REQUIREMENTS,
        input_example=input_example,
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, str(value))
    return version


def log_json(data: Any, artifact_file: str) -> None:
    mlflow.log_dict(data if isinstance(data, (dict, list)) else json.loads(json.dumps(data)), artifact_file)


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure as PNG and close it (figures pile up in long training runs)."""
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def champion_version(name: str) -> str | None:
    configure_mlflow()
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except Exception:  # noqa: BLE001 - MLflow raises several types for a missing alias
        return None


def set_champion(name: str, version: str) -> None:
    configure_mlflow()
    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))


def version_metrics(name: str, version: str) -> dict[str, float]:
    """Metrics of the run that produced a registered version."""
    client = MlflowClient()
    run_id = client.get_model_version(name, str(version)).run_id
    return dict(client.get_run(run_id).data.metrics)


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lossguard-"))
