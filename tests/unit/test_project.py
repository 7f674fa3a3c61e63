"""Project wiring: settings overrides, pins that must agree, CLI help, one-way dependencies."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r'\s*"?([A-Za-z0-9_.\-]+)==([^",\s]+)', line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_settings_env_override_reaches_derived_paths(tmp_path):
    code = "from features.settings import settings; print(settings.tracking_uri); print(settings.seed)"
    env = {**os.environ, "LOSSGUARD_MLFLOW_DIR": str(tmp_path / "ml"), "LOSSGUARD_SEED": "7"}
    env.pop("LOSSGUARD_MLFLOW_TRACKING_URI", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    uri, seed = out.stdout.split()
    assert uri == f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    assert seed == "7"


def test_settings_sets_offline_and_no_telemetry_flags():
    flags = ("HF_HUB_OFFLINE", "MLFLOW_DISABLE_TELEMETRY", "BENTOML_DO_NOT_TRACK")
    code = ("import os; os.environ.pop('HF_HUB_OFFLINE', None); import features.settings; "
            f"print(*(os.environ[k] for k in {flags!r}))")
    env = {k: v for k, v in os.environ.items() if k not in flags}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["1", "true", "true"]


def test_runtime_pins_agree_everywhere():
    """pyproject, the bento's requirements and the MLflow model requirements must name the same versions."""
    from features.modelio import PIP_REQUIREMENTS

    project = _pins((ROOT / "pyproject.toml").read_text().splitlines())
    bento = _pins((ROOT / "serving/requirements.txt").read_text().splitlines())
    model = _pins(PIP_REQUIREMENTS)
    for source, pins in (("serving/requirements.txt", bento), ("features.modelio.PIP_REQUIREMENTS", model)):
        for name, version in pins.items():
            assert project.get(name) == version, f"{source} pins {name}=={version}, pyproject has {project.get(name)}"
    assert project["torch"] == "2.13.0"


@pytest.mark.parametrize("command", [[], ["data", "generate"], ["data", "import"], ["data", "check"], ["train"],
                                     ["predict", "sentiment"],
                                     ["predict", "attrition"], ["predict", "spread"], ["audit", "verify"],
                                     ["audit", "checkpoint"], ["audit", "rotate-key"], ["store", "backup"],
                                     ["store", "restore"], ["keys", "create"], ["keys", "bootstrap"], ["evaluate"],
                                     ["promote"], ["policy", "check"], ["policy", "test"], ["feedback", "export"]])
def test_every_cli_command_has_help(command):
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_rejects_unknown_model_with_a_clear_message():
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["train", "horoscope"])
    assert result.exit_code == 2
    assert "horoscope" in result.output


def test_each_served_instance_has_its_own_bentoml_home_under_the_project():
    """`bentoml serve` recreates the Prometheus folder in its BentoML home on start: two instances sharing one
    left the first one's /metrics stale (#16). make serve gives each port its own home, inside the project."""
    homes = []
    for port in ("3101", "3102"):
        plan = subprocess.run(["make", "-n", "serve", f"PORT={port}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
        line = next(line for line in plan.splitlines() if "bentoml serve" in line)
        match = re.search(r"BENTOML_HOME=(\S+)", line)
        assert match, f"make serve runs bentoml without its own BENTOML_HOME: {line}"
        homes.append(Path(match.group(1)))
    assert homes[0] != homes[1] and all(ROOT in home.parents for home in homes)
