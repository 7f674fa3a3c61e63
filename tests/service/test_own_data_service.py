"""The service serves what was trained on a company's own data (in-process Engine, the export-trained model).

The org chart and roster come from an import folder (`LOSSGUARD_SERVE_DATA_DIR`); IBM-shaped /attrition records
are scored by the model trained on the IBM-shaped export, with drivers; a record without the export's columns is
refused naming them; and a roster the model cannot read (the synthetic history under an export model) is shown
unscored with the reason, never crashing a team view or scoring blanks.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.contracts import EMPLOYEE
from features.errors import InputError, Unavailable
from features.loaders import apply_mapping
from features.modelio import LoadedModel, load_model
from features.settings import settings
from ingest.run import run
from serving import roster as roster_module
from serving.api_models import EXPORT_COLUMNS, EmployeeIn
from serving.auth import Principal
from serving.engine import Engine
from tests.service.test_engine import stand_in_engine

pytestmark = pytest.mark.slow

FIXTURE = settings.root / "tests" / "fixtures" / "ibm_like.csv"
CJK = re.compile(r"[\u4e00-\u9fff]")
ADMIN = Principal("admin", "admin")
DEPARTMENTS = {"Sales": "sales", "Research & Development": "rd", "Human Resources": "hr"}


@pytest.fixture(scope="module")
def export_model(own_export_trained) -> LoadedModel:
    return load_model(f"models:/attrition/{own_export_trained[1]}", "attrition")


@pytest.fixture(scope="module")
def serve_dir(own_export_dir, tmp_path_factory):
    """The imported export plus an imported org chart naming its departments."""
    folder = tmp_path_factory.mktemp("serve") / "imported"
    folder.mkdir()
    shutil.copy2(own_export_dir / "employees.parquet", folder / "employees.parquet")
    chart = tmp_path_factory.mktemp("chart") / "org_units.csv"
    pd.DataFrame({"unit_id": ["CO", *DEPARTMENTS], "name": ["公司", "销售部", "研发部", "人力资源部"],
                  "parent_id": [None, "CO", "CO", "CO"], "function": ["management", *DEPARTMENTS.values()]}
                 ).to_csv(chart, index=False)
    assert run([chart], [], folder).report.problems == []
    return folder


def _engine(monkeypatch, tmp_path, attrition: LoadedModel, serve_data_dir: str) -> Engine:
    current = roster_module.settings
    monkeypatch.setattr(roster_module, "settings", dataclasses.replace(current, serve_data_dir=serve_data_dir))
    return stand_in_engine(Engine.data_tables(), tmp_path, attrition)


def _api_records(rows: pd.DataFrame) -> list[dict]:
    """IBM-shaped rows as an HR system sends them: the Employee contract fields plus the export's columns the
    model reads (the API refuses any other field)."""
    mapped = apply_mapping(rows, "ibm").astype({"employee_id": str})
    for column in ("hire_date", "last_promotion_date", "snapshot_date", "leave_date"):
        mapped[column] = pd.to_datetime(mapped[column]).dt.strftime("%Y-%m-%d")  # ISO dates, as JSON carries them
    sent = [c for c in mapped.columns if c in EMPLOYEE.names or c in EXPORT_COLUMNS]
    records = json.loads(mapped[sent].to_json(orient="records", date_format="iso"))
    return [EmployeeIn(**{k: v for k, v in r.items() if v is not None}).model_dump() for r in records]


def test_the_imported_chart_and_roster_are_served_and_scored(monkeypatch, tmp_path, serve_dir, export_model):
    engine = _engine(monkeypatch, tmp_path, export_model, str(serve_dir))
    source = pd.read_csv(FIXTURE)
    stayed = source[source["Attrition"] == "No"]
    assert set(engine.chart.units) == {"CO", *DEPARTMENTS} and engine.roster_note is None
    assert len(engine.roster) == len(stayed) and engine.roster["propensity"].between(0, 1).all()
    team = engine.team_risk("CO", ADMIN)
    json.dumps(team, allow_nan=False)  # a valid JSON reply
    assert team["headcount"] == len(stayed) and team["expected_leavers"] > 0
    assert all(CJK.search(d) for e in team["employees"] for d in e["drivers"])
    sales = engine.team_risk("Sales", ADMIN)
    assert sales["headcount"] == int((stayed["Department"] == "Sales").sum())


def test_ibm_shaped_records_get_propensity_band_and_drivers(monkeypatch, tmp_path, serve_dir, export_model):
    engine = _engine(monkeypatch, tmp_path, export_model, str(serve_dir))
    rows = pd.read_csv(FIXTURE).head(40)
    answers = engine.score_employees(_api_records(rows))
    expected = export_model.estimator.predict_frame(apply_mapping(rows, "ibm"))
    np.testing.assert_allclose([a["propensity"] for a in answers], expected["propensity"], atol=1e-4)
    assert [a["band"] for a in answers] == expected["band"].tolist()
    assert all(a["drivers"] and all(CJK.search(d) for d in a["drivers"]) for a in answers if a["band"] != "low")
    without_age = _api_records(rows.head(2))
    del without_age[1]["Age"]
    with pytest.raises(InputError) as refused:
        engine.score_employees(without_age)
    assert refused.value.field == "[1].Age" and "MonthlyIncome" not in refused.value.message.split("还需要")[0]


def test_a_roster_the_model_cannot_read_is_shown_unscored_with_the_reason(monkeypatch, tmp_path, export_model,
                                                                           synthetic_dir):
    monkeypatch.setattr(roster_module, "settings", dataclasses.replace(settings, generated_dir=synthetic_dir))
    engine = _engine(monkeypatch, tmp_path, export_model, "")  # the synthetic history under an export model
    assert engine.roster_note and "Age" in engine.roster_note and engine.roster["propensity"].isna().all()
    root = next(u for u in engine.chart.units.values() if u.parent_id is None).unit_id
    team = engine.team_risk(root, ADMIN)
    json.dumps(team, allow_nan=False)
    assert team["headcount"] == len(engine.roster) > 0
    assert team["expected_leavers"] is None and team["employees"] == [] and "Age" in team["note"]


def test_the_api_declares_every_column_an_export_model_reads_and_nothing_else(export_model):
    assert set(export_model.estimator.request_inputs()) <= set(EXPORT_COLUMNS)
    record = {k: v for k, v in _api_records(pd.read_csv(FIXTURE).head(1))[0].items() if v is not None}
    assert record["Age"] > 0 and record["BusinessTravel"]
    for bad in ({"Age": "30"}, {"Age": {"years": 30}}, {"JobSatisfaction": 7}, {"DailyRate": 800}):
        with pytest.raises(ValidationError):  # strict types, the scale's range, and no undeclared column
            EmployeeIn(**{**record, **bad})


def test_preflight_names_the_missing_roster(monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setattr(roster_module, "settings", dataclasses.replace(settings, serve_data_dir=str(tmp_path)))
    # every champion "exists": only the data part of the preflight is checked here
    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_by_alias", lambda self, name, alias: None)
    with pytest.raises(Unavailable, match="employees.parquet"):
        Engine.preflight()
