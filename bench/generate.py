"""Synthetic data generation against its budget: 5000 employees x 365 days must take at most 60 s.

Run: .venv/bin/python bench/generate.py [--employees 5000] [--days 365]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from synthetic import generate

BUDGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lossguard-bench-") as folder:
        started = time.perf_counter()
        paths = generate(employees=args.employees, days=args.days, seed=args.seed, out_dir=Path(folder))
        seconds = time.perf_counter() - started
        truth = json.loads(paths["truth"].read_text(encoding="utf-8"))
        rows = {name: len(pd.read_parquet(path)) for name, path in paths.items() if path.suffix == ".parquet"}
    verdict = "OK" if seconds <= BUDGET_SECONDS else "OVER BUDGET"
    print(f"generate {args.employees} employees x {args.days} days: {seconds:6.1f} s   budget {BUDGET_SECONDS:.0f} s   "
          f"{verdict}")
    for name, count in rows.items():
        print(f"  {name:12s} {count:>9,d} rows")
    attrition = truth["attrition"]
    print(f"  yearly attrition {attrition['realized_yearly_rate']:.1%} (planted band 10-20%, "
          f"h0 = {attrition['h0_monthly']:.4f}/month), largest cascade {truth['realized']['max_cascade']:,d} reposts")


if __name__ == "__main__":
    main()
