"""The retraining workflow against its budgets: `lossguard train all` <= 5 min on 2 cores, and `make run` on a
fresh machine (install included) serving in <= 10 min.

Run: .venv/bin/python bench/workflow.py            # train all on the default data (generated if missing)
     .venv/bin/python bench/workflow.py --fresh    # also: clone, make venv data train, serve, wait for /readyz

Training runs against a throwaway MLflow store and warning DB, pinned to 2 cores, so the developer's registry
and champions are untouched and a bigger machine cannot flatter the figure.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from features.settings import settings

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BUDGET_S, FRESH_BUDGET_S = 5 * 60.0, 10 * 60.0
CORES = 2
READY_TIMEOUT_S = 180.0


def _two_cores() -> None:
    """Pin the child (and everything it starts) to at most CORES cores."""
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:CORES])


def _verdict(seconds: float, budget: float) -> str:
    return "OK" if seconds <= budget else "OVER BUDGET"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout). CPU seconds beside wall time show when other load on the machine inflated it."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, preexec_fn=_two_cores)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, _cpu_seconds() - cpu, done.stdout


def bench_train(scratch: Path) -> None:
    data = settings.generated_dir
    if not (data / "truth.json").exists():
        data = scratch / "generated"
        print(f"no data in {settings.generated_dir}: generating {settings.employees} x {settings.days} into {data}")
        _run([sys.executable, "-m", "cli", "data", "generate", "--out", str(data)], ROOT, dict(os.environ))
    env = {**os.environ, "LOSSGUARD_GENERATED_DIR": str(data), "LOSSGUARD_MLFLOW_DIR": str(scratch / "mlflow"),
           "LOSSGUARD_MODELS_DIR": str(scratch / "models"),
           "LOSSGUARD_WARNINGS_DB": f"sqlite:///{scratch / 'no-warnings.db'}"}
    env.pop("LOSSGUARD_MLFLOW_TRACKING_URI", None)
    load = os.getloadavg()[0]
    seconds, cpu, output = _run([sys.executable, "-m", "cli", "train", "all"], ROOT, env)
    print(f"lossguard train all ({CORES} cores, data {data}): {seconds:6.1f} s   budget {TRAIN_BUDGET_S:.0f} s   "
          f"{_verdict(seconds, TRAIN_BUDGET_S)}   (CPU {cpu:.0f} s, load average {load:.1f} at start)")
    for line in output.splitlines():
        print("  " + line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(port: int, server: subprocess.Popen) -> None:
    deadline = time.perf_counter() + READY_TIMEOUT_S
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            sys.exit(f"make serve exited with {server.returncode} before /readyz answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"/readyz did not answer within {READY_TIMEOUT_S:.0f} s")


def bench_fresh(scratch: Path) -> None:
    """What a newcomer's `make run` does, step by step, in a clean clone (committed files only)."""
    clone = scratch / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOSSGUARD_", "VIRTUAL_ENV"))}
    steps = {}
    for target in ("venv", "data", "train"):
        steps[f"make {target}"], _, _ = _run(["make", target], clone, env)
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen(["make", "serve", f"PORT={port}"], cwd=clone, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, preexec_fn=_two_cores, start_new_session=True)
    try:
        _wait_ready(port, server)
        steps["make serve -> /readyz"] = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    total = sum(steps.values())
    print(f"fresh make run (clone of {commit.strip()}, {CORES} cores, install included): {total:6.1f} s   "
          f"budget {FRESH_BUDGET_S:.0f} s   {_verdict(total, FRESH_BUDGET_S)}")
    for step, seconds in steps.items():
        print(f"  {step:24s} {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="also time a fresh clone's make run up to /readyz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lossguard-bench-") as folder:
        bench_train(Path(folder))
        if args.fresh:
            bench_fresh(Path(folder))


if __name__ == "__main__":
    main()
