"""`bentoml build` packs the service offline (lock_packages: false) with everything it reads at run time."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_bentoml_build_packs_code_policy_keywords_page_and_pins(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PIP_NO_INDEX": "1"}
    built = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    bentos = list((tmp_path / "bentoml" / "bentos" / "lossguard").glob("*/bento.yaml"))
    assert len(bentos) == 1
    bento = bentos[0].parent
    for path in ("serving/service.py", "serving/engine.py", "serving/store/__init__.py", "serving/store/schema.py",
                 "serving/policy.py", "serving/policy.yaml", "serving/static/review.html",
                 "serving/static/review.js", "serving/static/dashboard.js", "serving/static/vendor/echarts.min.js",
                 "serving/monitoring/monitor.py", "serving/store/series.py", "data/keywords.yaml", "features/text.py"):
        assert (bento / "src" / path).is_file(), path
    assert not (bento / "src" / "tests").exists() and not (bento / "src" / "mlflow").exists()
    pins = (ROOT / "serving" / "requirements.txt").read_text().split()
    packed = (bento / "env" / "python" / "requirements.txt").read_text()
    assert all(pin in packed for pin in pins if "==" in pin)
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "serving.service:Lossguard"
    assert {e["name"]: e["value"] for e in info["envs"]}["HF_HUB_OFFLINE"] == "1"
