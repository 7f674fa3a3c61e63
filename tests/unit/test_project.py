"""Project wiring: settings overrides, pins that must agree, CLI help, one-way dependencies."""
from __future__ import annotations

import ast
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
    code = ("import os; os.environ.pop('HF_HUB_OFFLINE', None); import features.settings; "
            "print(os.environ['HF_HUB_OFFLINE'], os.environ['MLFLOW_DISABLE_TELEMETRY'], os.environ['BENTOML_DO_NOT_TRACK'])")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "MLFLOW_DISABLE_TELEMETRY", "BENTOML_DO_NOT_TRACK")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["1", "true", "true"]


def test_runtime_pins_agree_everywhere():
    """pyproject, the bento's requirements and the MLflow model requirements must name the same versions."""
    from features.modelio import PIP_REQUIREMENTS

    project = _pins((ROOT / "pyproject.toml").read_text().splitlines())
    for source, pins in (("serving/requirements.txt", _pins((ROOT / "serving/requirements.txt").read_text().splitlines())),
                         ("features.modelio.PIP_REQUIREMENTS", _pins(PIP_REQUIREMENTS))):
        for name, version in pins.items():
            assert project.get(name) == version, f"{source} pins {name}=={version}, pyproject has {project.get(name)}"
    assert project["torch"] == "2.13.0"


def test_serving_never_imports_training():
    for path in (ROOT / "serving").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "training" or n.startswith("training.") for n in names), f"{path} imports training"


def _serving_imports() -> dict[str, set[str]]:
    """Each serving module and the serving modules it imports at run time, lazy imports included; imports under
    `if TYPE_CHECKING:` are annotations only and left out."""
    modules = {}
    for path in (ROOT / "serving").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(inner) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
                       for inner in ast.walk(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                module = (node.module or "") if node.level == 0 else ".".join(p for p in (base, node.module) if p)
                targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_serving_modules_import_each_other_without_cycles():
    graph = _serving_imports()
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module not in done:
            for dependency in sorted(graph[module]):
                walk(dependency, path + [module])
            done.add(module)

    for module in sorted(graph):
        walk(module, [])


def test_store_concerns_and_policy_import_one_way():
    """serving.store: schema <- audit, dispatch <- intake, lifecycle, export <- the package (WarningStore); no
    concern imports the façade or a sibling at its own level. The policy model never imports the evaluator."""
    graph = _serving_imports()
    allowed = {"schema": set(), "audit": {"schema"}, "dispatch": {"schema"}, "intake": {"schema", "audit", "dispatch"},
               "lifecycle": {"schema", "audit", "dispatch"}, "export": {"schema", "audit", "dispatch"}}
    concerns = {name.removeprefix("serving.store."): deps for name, deps in graph.items()
                if name.startswith("serving.store.")}
    assert set(concerns) == set(allowed), "a store module was added or removed: place it in the layers above"
    for concern, deps in concerns.items():
        store_deps = {d.removeprefix("serving.store.") for d in deps if d.startswith("serving.store")}
        extra = sorted(store_deps - allowed[concern])
        assert not extra, f"serving.store.{concern} imports {extra}"
    assert "serving.rules" not in graph["serving.policy"]


def test_features_import_neither_training_nor_serving():
    for path in (ROOT / "features").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+(training|serving)\b", source, re.M), path


@pytest.mark.parametrize("command", [[], ["data", "generate"], ["train"], ["predict", "sentiment"],
                                     ["predict", "attrition"], ["predict", "spread"], ["audit", "verify"],
                                     ["keys", "create"], ["keys", "bootstrap"], ["evaluate"], ["promote"],
                                     ["feedback", "export"]])
def test_every_cli_command_has_help(command):
    from typer.testing import CliRunner

    from training.cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_rejects_unknown_model_with_a_clear_message():
    from typer.testing import CliRunner

    from training.cli import app

    result = CliRunner().invoke(app, ["train", "horoscope"])
    assert result.exit_code == 2
    assert "horoscope" in result.output
