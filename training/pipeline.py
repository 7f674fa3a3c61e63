"""`lossguard train`: run the trainers the model registry names, in registry order, and report what was registered.

Sentiment runs first because attrition and spread use text predictions as features when they exist.

With `data_dir` (`--data DIR`, a folder `lossguard data import` wrote) each trainer reads the company's own
entities from it. `train all --data DIR` trains what the folder can feed and says which models it skipped and
why (an HR export alone has no labelled texts for sentiment and no reposts for spread); naming one model whose
data is missing is an error.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from tqdm import tqdm

from features.errors import LossguardError
from features.model_specs import SPECS, trainers


def train_models(which: str = "all", **options) -> Iterator[str]:
    """Run each trainer once (one trainer may register several models) with the options it accepts."""
    plan = trainers(which)
    progress = tqdm(plan, desc="train", unit="trainer", file=sys.stderr, disable=len(plan) < 2)
    for _trainer, models in progress:
        progress.set_postfix_str(",".join(models))
        started = time.perf_counter()
        spec = SPECS[models[0]]
        train = spec.resolve("trainer")
        accepted = {k: v for k, v in options.items() if k in spec.train_options and v is not None}
        try:
            for result in train(**accepted):
                yield (f"{result['name']:10s} v{result['version']}  {result.get('summary', '')}"
                       f"  champion={'yes' if result.get('promoted') else 'no'}")
        except LossguardError as missing:  # Unavailable/InputError naming field "data": the folder lacks its tables
            if which != "all" or options.get("data_dir") is None or missing.field != "data":
                raise
            yield f"[{','.join(models)}] 跳过: {missing}"
            continue
        yield f"[{','.join(models)}] {time.perf_counter() - started:.1f}s"
