"""`lossguard train`: run the training modules in dependency order and report what was registered.

Sentiment runs first because attrition and spread use text predictions as features when they exist.
"""
from __future__ import annotations

import importlib
import sys
import time
from typing import Iterator

from tqdm import tqdm

ORDER = ("sentiment", "attrition", "spread")
MODULE_OF = {"sentiment": "sentiment", "loss_type": "sentiment", "function": "sentiment",
             "attrition": "attrition", "spread": "spread"}


def train_models(which: str = "all", **options) -> Iterator[str]:
    modules = ORDER if which == "all" else (MODULE_OF[which],)
    progress = tqdm(modules, desc="train", unit="module", file=sys.stderr, disable=len(modules) < 2)
    for module_name in progress:
        progress.set_postfix_str(module_name)
        started = time.perf_counter()
        module = importlib.import_module(f"training.{module_name}")
        results = module.train(**{k: v for k, v in options.items() if k in module.TRAIN_OPTIONS})
        for result in results:
            yield (f"{result['name']:10s} v{result['version']}  {result.get('summary', '')}"
                   f"  champion={'yes' if result.get('promoted') else 'no'}")
        yield f"[{module_name}] {time.perf_counter() - started:.1f}s"
