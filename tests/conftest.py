"""Shared fixtures. Every test session gets its own MLflow store, cache and warning DB under a temp folder,
so tests never touch (or depend on) the developer's mlflow/ or data/generated/."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="lossguard-tests-"))
# Spread training defaults to the real cascades when they exist (settings.cascades_dir): the session trains on the
# synthetic company unless a test asks for the real ones (`real_cascades`), so no result depends on ../shared.
REAL_CASCADES = Path(os.environ.get("LOSSGUARD_CASCADES_DIR")
                     or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "weibo_cascades")
os.environ["LOSSGUARD_CASCADES_DIR"] = "none"
# Likewise sentiment trains on the shipped corpora (as a clone without ../shared does) unless a test asks for the
# SMP2020-EWECT posts (`real_smp`); LOSSGUARD_SMP_DIR=/missing runs the whole suite as such a clone.
REAL_SMP = Path(os.environ.get("LOSSGUARD_SMP_DIR")
                or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "smp2020_ewect")
os.environ["LOSSGUARD_SMP_DIR"] = "none"
os.environ.setdefault("LOSSGUARD_MLFLOW_DIR", str(_SESSION_DIR / "mlflow"))
os.environ.setdefault("LOSSGUARD_GENERATED_DIR", str(_SESSION_DIR / "generated"))
os.environ.setdefault("LOSSGUARD_MODELS_DIR", str(_SESSION_DIR / "models"))
os.environ.setdefault("LOSSGUARD_WARNINGS_DB", f"sqlite:///{_SESSION_DIR / 'warnings.db'}")
# bentoml serve keeps its Prometheus multiprocess dir under BENTOML_HOME and wipes it on start: a test server sharing
# ~/bentoml with a running service (or another test run) empties the other's /metrics. Never the user's.
os.environ["BENTOML_HOME"] = str(_SESSION_DIR / "bentoml")
for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                   "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}.items():
    os.environ.setdefault(key, value)

from features.settings import settings  # noqa: E402  (after the env above)

IBM_CSV = settings.ibm_hr_csv


def pytest_addoption(parser):
    parser.addoption(
        "--model-uri", action="append", default=[], metavar="NAME=URI",
        help="Run NAME's behavioural tests against a registered model instead of one trained in the session, e.g. "
             "--model-uri sentiment=models:/sentiment/7 (the challenger the gate is about to promote). Repeatable.")


@pytest.fixture(scope="session")
def model_uris(request) -> dict[str, str]:
    """NAME -> URI from --model-uri; an unknown model name or a malformed value stops the run naming it."""
    from features.model_specs import SPECS

    out = {}
    for value in request.config.getoption("--model-uri"):
        name, _, uri = value.partition("=")
        if name not in SPECS or not uri:
            raise pytest.UsageError(f"--model-uri {value!r}: expected NAME=URI with NAME one of {', '.join(SPECS)}")
        out[name] = uri
    return out


@pytest.fixture(scope="session")
def registered_or(model_uris):
    """registered_or(NAME, fit): the estimator behind --model-uri NAME=URI when given, else `fit()` (a model
    trained in the session)."""
    def choose(name: str, fit):
        if name not in model_uris:
            return fit()
        from features.modelio import load_model

        return load_model(model_uris[name], name).estimator

    return choose


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def ibm_csv() -> Path:
    if not IBM_CSV.exists():
        pytest.skip(f"IBM HR attrition export not found at {IBM_CSV} (it lives in ../shared/data, never committed)")
    return IBM_CSV


@pytest.fixture(scope="session")
def cascades_location() -> Path:
    """Where the real cascades would be (they may be absent): for tests that pass it on, e.g. to a notebook."""
    return REAL_CASCADES


@pytest.fixture(scope="session")
def real_cascades() -> Path:
    if not all((REAL_CASCADES / name).exists() for name in ("posts.parquet", "reposts.parquet")):
        pytest.skip(f"real repost cascades not found at {REAL_CASCADES} (they live in ../shared/data, never "
                    "committed; LOSSGUARD_CASCADES_DIR points elsewhere)")
    return REAL_CASCADES


@pytest.fixture(scope="session")
def real_smp() -> Path:
    from features.loaders import smp_location

    if smp_location(REAL_SMP) is None:
        pytest.skip(f"SMP2020-EWECT posts not found at {REAL_SMP} (they live in ../shared/data, never committed; "
                    "LOSSGUARD_SMP_DIR points elsewhere)")
    return REAL_SMP


SYNTHETIC_EMPLOYEES, SYNTHETIC_DAYS = 1000, 365  # big enough that the planted drivers show through the noise


@pytest.fixture(scope="session")
def synthetic_dir(session_dir) -> Path:
    """The seeded synthetic company (1000 people x 365 days), generated once per test session; read-only."""
    from synthetic import generate

    out = session_dir / "synthetic"
    generate(employees=SYNTHETIC_EMPLOYEES, days=SYNTHETIC_DAYS, seed=settings.seed, out_dir=out)
    return out


# --- PostgreSQL: a throwaway cluster for the tests that run the store on both databases -------------------------

def _postgres_bin() -> Path | None:
    """Debian keeps the server tools in /usr/lib/postgresql/<major>/bin (newest wins); elsewhere they are on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return debian[-1].parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl in a temp folder, on 127.0.0.1 with its socket in that folder; trust auth, no fsync (tests
    only). initdb refuses to run as root, so as root the server runs as the `postgres` (or `nobody`) user."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="lossguard-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = next((name for name in ("postgres", "nobody") if _has_user(name)), None)
            if user is None:
                raise RuntimeError("running as root, but there is no `postgres` or `nobody` user to run initdb as")
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", user, "--"]
        self.port = 0

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / tool), *args]
        done = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "lossguard", "-A", "trust", "-E", "UTF8", "--no-locale", "-N")
        for attempt in range(3):  # another process may take the free port between probing and binding it
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                       "-c timezone=Asia/Shanghai")  # not UTC: a time stored with a zone shift would show
            try:
                return self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                                 "-o", options)
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():  # a failed start leaves nothing to stop (and keeps its error)
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://lossguard@127.0.0.1:{self.port}/{database}"  # the form the README gives

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=lossguard dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope="session")
def postgres_cluster():
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (no initdb/pg_ctl; `make postgres` installs Debian's): "
                    "Postgres variants skip")
    pytest.importorskip("psycopg", reason="psycopg (the Postgres driver, in the dev extras) not installed")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database per test, dropped afterwards (even with connections a failed test left open)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_cluster.admin(f'CREATE DATABASE "{name}"')
    yield postgres_cluster.url(name)
    postgres_cluster.admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def db_url(request, tmp_path) -> str:
    """The warning store's (and API keys') database: every test that takes it runs on SQLite and on PostgreSQL
    (slow: it starts a server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warnings.db'}"
    return request.getfixturevalue("postgres_url")


# --- a company's own data: the committed IBM-shaped export, imported and trained on once per session ------------
OWN_EXPORT = Path(__file__).resolve().parent / "fixtures" / "ibm_like.csv"


@pytest.fixture(scope="session")
def own_export_dir(session_dir) -> Path:
    """tests/fixtures/ibm_like.csv imported with data/mappings/ibm.yaml (what `lossguard data import` writes)."""
    from typer.testing import CliRunner

    from cli import app

    out = session_dir / "own-export"
    result = CliRunner().invoke(app, ["data", "import", str(OWN_EXPORT), "--mapping", "ibm", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def own_export_trained(own_export_dir) -> tuple[str, str]:
    """`lossguard train all --data DIR --no-promote` on the imported export: (CLI output, attrition version).
    Not promoted, so the champions the other tests and the live service use stay those of the synthetic company."""
    import mlflow
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["train", "all", "--data", str(own_export_dir), "--no-promote", "--no-feedback"])
    assert result.exit_code == 0, result.output
    versions = mlflow.MlflowClient().search_model_versions("name = 'attrition'")
    return result.output, max(versions, key=lambda v: int(v.version)).version
