"""Shared fixtures. Every test session gets its own MLflow store, cache and warning DB under a temp folder,
so tests never touch (or depend on) the developer's mlflow/ or data/generated/."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="lossguard-tests-"))
os.environ.setdefault("LOSSGUARD_MLFLOW_DIR", str(_SESSION_DIR / "mlflow"))
os.environ.setdefault("LOSSGUARD_GENERATED_DIR", str(_SESSION_DIR / "generated"))
os.environ.setdefault("LOSSGUARD_MODELS_DIR", str(_SESSION_DIR / "models"))
os.environ.setdefault("LOSSGUARD_WARNINGS_DB", f"sqlite:///{_SESSION_DIR / 'warnings.db'}")
for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                   "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}.items():
    os.environ.setdefault(key, value)

from features.settings import settings  # noqa: E402  (after the env above)

IBM_CSV = settings.ibm_hr_csv


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def ibm_csv() -> Path:
    if not IBM_CSV.exists():
        pytest.skip(f"IBM HR attrition export not found at {IBM_CSV} (it lives in ../shared/data, never committed)")
    return IBM_CSV


SYNTHETIC_EMPLOYEES, SYNTHETIC_DAYS = 1000, 365  # big enough that the planted drivers show through the noise


@pytest.fixture(scope="session")
def synthetic_dir(session_dir) -> Path:
    """The seeded synthetic company (1000 people x 365 days), generated once per test session; read-only."""
    from features.synthetic import generate

    out = session_dir / "synthetic"
    generate(employees=SYNTHETIC_EMPLOYEES, days=SYNTHETIC_DAYS, seed=settings.seed, out_dir=out)
    return out
