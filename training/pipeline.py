"""`lossguard train`: run the trainers the model registry names, in registry order, and report what was registered.

Sentiment runs first because attrition and spread use text predictions as features when they exist.
"""
from __future__ import annotations

import sys
import time
from typing import Iterator

from tqdm import tqdm

from features.model_specs import SPECS, trainers


def train_models(which: str = "all", **options) -> Iterator[str]:
    """Run each trainer once (one trainer may register several models) with the options it accepts."""
    plan = trainers(which)
    progress = tqdm(plan, desc="train", unit="trainer", file=sys.stderr, disable=len(plan) < 2)
    for trainer, models in progress:
        progress.set_postfix_str(",".join(models))
        started = time.perf_counter()
        spec = SPECS[models[0]]
        train = spec.resolve("trainer")
        for result in train(**{k: v for k, v in options.items() if k in spec.train_options}):
            yield (f"{result['name']:10s} v{result['version']}  {result.get('summary', '')}"
                   f"  champion={'yes' if result.get('promoted') else 'no'}")
        yield f"[{','.join(models)}] {time.perf_counter() - started:.1f}s"
