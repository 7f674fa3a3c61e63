"""Serving benchmark: the real `bentoml serve` on 127.0.0.1, adaptive batching on vs off, side by side.

For each mode it starts the server (models from the trained MLflow store: run `make train` first; warnings go to
a throw-away database), then measures
  (a) open loop: 200 users each sending one /assess per second (~200 req/s), latency counted from the moment a
      request was due, so a slow server cannot hide its queue by slowing the senders (no coordinated omission).
      Twice: posts and complaints as they arrive, and the same with 10% of posts carrying their first reposts
      (which adds a spread forecast to the call);
  (b) closed loop: the highest sustained throughput of /assess and of /sentiment (100 texts per request) over a
      few concurrency levels.
Events are the synthetic company's own posts and complaints. Targets: /assess p99 <= 250 ms with 0 errors at
200 users; /sentiment >= 5,000 texts/s. Client and server share this machine's CPUs; the load average printed
first says how busy the machine already was.

    python bench/serving.py            # whole run < ~4 minutes
    python bench/serving.py --quick    # shorter phases: a smoke check, not a measurement
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.settings import settings  # noqa: E402

USERS = 200
P99_TARGET_MS = 250.0
SENTIMENT_TARGET = 5000.0
TEXTS_PER_REQUEST = 100
REPOST_SHARE = 0.1
ASSESS_LEVELS = (16, 64)
SENTIMENT_LEVELS = (4, 16)
READY_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 10


def check_prerequisites() -> None:
    """Fail in a second, with the fix, instead of after a server start."""
    folder = Path(settings.generated_dir)
    missing = [t for t in ("org_units", "employees", "snapshots", "posts", "complaints", "reposts")
               if not (folder / f"{t}.parquet").exists()]
    if missing:
        sys.exit(f"缺少生成数据 {missing}（{folder}）: 请先运行 `make train`（会先生成数据）")
    if settings.tracking_uri.startswith("sqlite:///") and not Path(settings.tracking_uri[10:]).exists():
        sys.exit(f"MLflow 库 {settings.tracking_uri} 不存在: 请先运行 `make train`")


# ---- workload --------------------------------------------------------------------------------------------
def build_events(n: int, repost_share: float, seed: int = 7) -> list[bytes]:
    """/assess bodies from the generated posts (70%) and complaints (30%), dated just now; `repost_share` of all
    events are posts sent with the reposts they have had so far (shifted along)."""
    folder = Path(settings.generated_dir)
    posts = pd.read_parquet(folder / "posts.parquet")
    complaints = pd.read_parquet(folder / "complaints.parquet")
    reposts = pd.read_parquet(folder / "reposts.parquet").sort_values("timestamp")
    by_post = {pid: group.head(100) for pid, group in reposts.groupby("post_id")}
    cascades = posts[posts["post_id"].isin(by_post)]
    units = set(pd.read_parquet(folder / "org_units.parquet")["unit_id"])
    rng = random.Random(seed)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)

    def clean(value):
        return value if isinstance(value, str) and value else None

    bodies = []
    for i in range(n):
        draw = rng.random()
        if draw < 0.7:
            with_reposts = draw < repost_share and len(cascades) > 0
            pool = cascades if with_reposts else posts
            row = pool.iloc[rng.randrange(len(pool))]
            created = now - pd.Timedelta(minutes=rng.uniform(5, 90))
            event = {"kind": "post", "text": row["text"], "channel": row["channel"], "post_id": f"bench-p{i}",
                     "created_at": created.isoformat(), "author_followers": int(row["author_followers"]),
                     "internal": bool(row["internal"]), "region": clean(row["region"]),
                     "department_id": clean(row["department_id"]), "employee_id": clean(row["employee_id"])}
            if with_reposts:
                cascade = by_post[row["post_id"]]
                stamps = cascade["timestamp"] + (created - pd.Timestamp(row["created_at"]))
                seen = stamps <= now
                event["reposts"] = [{"timestamp": t.isoformat(), "user_followers": int(f), "region": clean(r)}
                                    for t, f, r in zip(stamps[seen], cascade["user_followers"][seen],
                                                       cascade["region"][seen], strict=True)]
        else:
            row = complaints.iloc[rng.randrange(len(complaints))]
            created = now - pd.Timedelta(minutes=rng.uniform(1, 60))
            event = {"kind": "complaint", "text": row["text"], "channel": row["channel"],
                     "complaint_id": f"bench-c{i}", "created_at": created.isoformat(),
                     "department_id": clean(row["department_id"]), "severity": int(row["severity"])}
        if event.get("department_id") not in units:
            event["department_id"] = None
        bodies.append(json.dumps({"event": event}, ensure_ascii=False).encode())
    return bodies


def build_texts(requests: int, seed: int = 11) -> list[bytes]:
    folder = Path(settings.generated_dir)
    texts = pd.concat([pd.read_parquet(folder / "posts.parquet")["text"],
                       pd.read_parquet(folder / "complaints.parquet")["text"]]).tolist()
    rng = random.Random(seed)
    return [json.dumps({"texts": [texts[rng.randrange(len(texts))] for _ in range(TEXTS_PER_REQUEST)]},
                       ensure_ascii=False).encode() for _ in range(requests)]


# ---- the server --------------------------------------------------------------------------------------------
class Server:
    """`bentoml serve` in its own process group on a free port; the whole group is stopped on exit."""

    def __init__(self, env: dict[str, str], log_path: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # its own BentoML home: a shared one has its Prometheus folder recreated under a running service
        self.env, self.log_path = {**env, "BENTOML_HOME": str(log_path.parent / f"bentoml-{self.port}")}, log_path

    def __enter__(self) -> Server:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "serving.service:Lossguard", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        started = time.monotonic()
        while time.monotonic() - started < READY_TIMEOUT_S and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        print(f"  server ready in {time.monotonic() - started:.0f} s")
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        sys.exit(f"服务未能启动（日志 {self.log_path}）:\n{tail}\n如提示缺少模型, 请先运行 `make train`")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ---- load --------------------------------------------------------------------------------------------------
def summary(latencies: list[float], errors: int, seconds: float, items_per_request: int = 1) -> dict:
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"ok": len(latencies), "errors": errors, "rps": len(latencies) / seconds,
            "items_per_s": len(latencies) * items_per_request / seconds,
            "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99))}


def client(key: str, connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        headers={"X-API-Key": key, "Content-Type": "application/json"})


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    try:
        async with session.post(url, data=body) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def preflight(url: str, key: str, path: str, bodies: list[bytes]) -> None:
    """Stop with the server's reply when the workload is refused: a bench of 422s measures nothing."""
    async with client(key, 1) as session:
        for body in bodies[:20]:
            async with session.post(url + path, data=body) as response:
                if response.status != 200:
                    raise SystemExit(f"{path} refused the bench's request ({response.status}): "
                                     f"{(await response.text())[:400]}")


async def drain(url: str, key: str, probe: bytes) -> None:
    """Wait (up to 60 s) until the server answers at once again, so one phase's backlog is not the next's."""
    async with client(key, 1) as session:
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            if await post(session, url + "/assess", probe) and time.perf_counter() - sent < 0.2:
                return
            await asyncio.sleep(0.5)


async def open_loop(url: str, key: str, bodies: list[bytes], seconds: float) -> dict:
    """Each user sends one request per second at its own phase; a late answer never delays the next send."""
    latencies: list[float] = []
    errors = 0
    schedule = sorted(second + user / USERS for second in range(int(seconds)) for user in range(USERS))
    async with client(key, USERS + 50) as session:
        async def one(due: float, body: bytes) -> None:
            nonlocal errors
            if await post(session, url + "/assess", body):
                latencies.append(time.perf_counter() - due)
            else:
                errors += 1

        start = time.perf_counter() + 0.2
        tasks = []
        for n, offset in enumerate(schedule):
            due = start + offset
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            tasks.append(asyncio.create_task(one(due, bodies[n % len(bodies)])))
        await asyncio.gather(*tasks)
    return summary(latencies, errors, seconds)


async def closed_loop(url: str, path: str, key: str, bodies: list[bytes], concurrency: int, seconds: float,
                      items_per_request: int = 1) -> dict:
    """`concurrency` clients, each sending its next request as soon as the previous one is answered."""
    latencies: list[float] = []
    errors = 0
    async with client(key, concurrency) as session:
        stop = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                sent = time.perf_counter()
                if await post(session, url + path, bodies[n % len(bodies)]):
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1
                n += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {**summary(latencies, errors, elapsed, items_per_request), "concurrency": concurrency}


def show(label: str, run: dict, unit: str = "req/s") -> None:
    print(f"    {label:<34} {run['items_per_s']:7,.0f} {unit:<7} p50 {run['p50']:7.1f}  p95 {run['p95']:7.1f}  "
          f"p99 {run['p99']:7.1f} ms  errors {run['errors']}")


async def measure(url: str, key: str, workload: dict[str, list[bytes]], texts: list[bytes], phase_s: float,
                  open_s: float) -> dict:
    plain = workload["no reposts"]
    await preflight(url, key, "/sentiment", texts)
    for bodies in workload.values():
        await preflight(url, key, "/assess", bodies)
    await closed_loop(url, "/sentiment", key, texts, 4, 2)  # warm-up: caches, BentoML's batching optimizer
    await closed_loop(url, "/assess", key, plain, 8, 2)
    out = {}
    for name, bodies in workload.items():
        await drain(url, key, plain[0])
        out[f"open_{name}"] = await open_loop(url, key, bodies, open_s)
        show(f"/assess open loop, {name}", out[f"open_{name}"])
    runs = []
    for level in ASSESS_LEVELS:
        await drain(url, key, plain[0])
        runs.append(await closed_loop(url, "/assess", key, workload["with reposts"], level, phase_s))
        show(f"/assess closed loop c={level}", runs[-1])
    out["assess"] = max(runs, key=lambda r: (r["errors"] == 0, r["items_per_s"]))
    runs = []
    for level in SENTIMENT_LEVELS:
        runs.append(await closed_loop(url, "/sentiment", key, texts, level, phase_s, TEXTS_PER_REQUEST))
        show(f"/sentiment closed loop c={level}", runs[-1], "texts/s")
    out["sentiment"] = max(runs, key=lambda r: (r["errors"] == 0, r["items_per_s"]))
    return out


# ---- report --------------------------------------------------------------------------------------------------
def report(results: dict[str, dict], names: list[str]) -> None:
    on, off = results["on"], results["off"]
    rows: list[tuple[str, str, str]] = []
    for name in names:
        key = f"open_{name}"
        rows.append((f"/assess open loop {USERS} users x 1/s, {name}", "", ""))
        rows.append(("  requests/s", f"{on[key]['rps']:,.0f}", f"{off[key]['rps']:,.0f}"))
        for q in ("p50", "p95", "p99"):
            rows.append((f"  {q} ms", f"{on[key][q]:,.1f}", f"{off[key][q]:,.1f}"))
        rows.append(("  errors", f"{on[key]['errors']:,}", f"{off[key]['errors']:,}"))
    for key, title, unit in (("assess", "/assess closed loop (best level)", "requests/s"),
                             ("sentiment", f"/sentiment closed loop, {TEXTS_PER_REQUEST} texts/request", "texts/s")):
        rows.append((title, "", ""))
        rows.append((f"  {unit}", f"{on[key]['items_per_s']:,.0f}", f"{off[key]['items_per_s']:,.0f}"))
        rows.append(("  at concurrency", str(on[key]["concurrency"]), str(off[key]["concurrency"])))
        rows.append(("  p50 / p99 ms", f"{on[key]['p50']:,.0f} / {on[key]['p99']:,.0f}",
                     f"{off[key]['p50']:,.0f} / {off[key]['p99']:,.0f}"))
        rows.append(("  errors", f"{on[key]['errors']:,}", f"{off[key]['errors']:,}"))
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'':{width}}{'batching on':>18}{'batching off':>18}")
    for label, a, b in rows:
        print(f"{label:{width}}{a:>18}{b:>18}")
    print("\ntargets (batching on):")
    for name in names:
        o = on[f"open_{name}"]
        met = o["p99"] <= P99_TARGET_MS and o["errors"] == 0
        print(f"  /assess {name}: p99 {o['p99']:,.0f} ms (<= {P99_TARGET_MS:.0f}), errors {o['errors']} (0): "
              f"{'met' if met else 'MISSED'}")
    texts = on["sentiment"]["items_per_s"]
    print(f"  /sentiment: {texts:,.0f} texts/s (>= {SENTIMENT_TARGET:,.0f}): "
          f"{'met' if texts >= SENTIMENT_TARGET else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke check, not a measurement)")
    args = parser.parse_args()
    phase_s, open_s = (3.0, 5.0) if args.quick else (6.0, 20.0)
    check_prerequisites()

    from serving.auth import KeyStore

    scratch = Path(tempfile.mkdtemp(prefix="lossguard-bench-"))
    database = f"sqlite:///{scratch / 'warnings.db'}"
    key = KeyStore(database).create("bench", "admin")
    size = USERS * int(open_s) + 1000
    workload = {"no reposts": build_events(size, 0.0), "with reposts": build_events(size, REPOST_SHARE, seed=8)}
    texts = build_texts(64)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the run "
          f"(client and server share them); workload: 70% posts, 30% complaints, "
          f"{REPOST_SHARE:.0%} of events with reposts in the second open-loop run and in the closed loop")
    results = {}
    try:
        for mode, flag in (("on", "1"), ("off", "0")):
            print(f"adaptive batching {mode}:")
            env = {**os.environ, "LOSSGUARD_BATCHING": flag, "LOSSGUARD_WARNINGS_DB": database,
                   "LOSSGUARD_ESCALATION_INTERVAL_S": "3600"}
            with Server(env, scratch / f"server-{mode}.log") as server:
                results[mode] = asyncio.run(measure(server.url, key, workload, texts, phase_s, open_s))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, list(workload))


if __name__ == "__main__":
    main()
