"""Inference side of the transformer sentiment backend: a fine-tuned Hugging Face classifier behind the same
interface as the linear model (predict_proba / predict / predict_frame, same normalization).

The weights are not pickled: training saves them with save_pretrained into the MLflow model's artifacts, and
`TransformerPyfunc.load_context` reattaches them from there, offline (HF_HUB_OFFLINE is set by settings).
torch and transformers are imported only when a transformer model is actually used.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from features.modelio import LossguardPyfunc
from features.text import TextClassifier, TextNormalizer, softmax

ARTIFACT_KEY = "hf_model"


class TransformerTextModel(TextClassifier):
    def __init__(self, task: str, labels: Sequence[str], normalizer: TextNormalizer, model: Any, tokenizer: Any, *,
                 empty_label: str, max_length: int = 128, batch_size: int = 64, temperature: float = 1.0):
        self.task = task
        self.labels = tuple(labels)
        self.normalizer = normalizer
        self.model = model
        self.tokenizer = tokenizer
        self.empty_label = empty_label
        self.max_length = max_length
        self.batch_size = batch_size
        self.temperature = float(temperature)

    def logits(self, normalized: list[str]) -> np.ndarray:
        import torch

        if self.model is None:
            raise RuntimeError("Transformer 权重未加载: 请通过 features.modelio.load_model 加载 (MLflow 会挂载权重)")
        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(normalized), self.batch_size):
                encoded = self.tokenizer(normalized[start:start + self.batch_size], truncation=True, padding=True,
                                         max_length=self.max_length, return_tensors="pt")
                out.append(self.model(**encoded).logits.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)))

    def _scores(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts).astype(np.float64) / self.temperature)

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return folder

    def attach(self, folder: Path | str) -> TransformerTextModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True)
        self.model.eval()
        return self

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("model", "tokenizer")}

    def __setstate__(self, state):
        self.__dict__.update(state, model=None, tokenizer=None)


class TransformerPyfunc(LossguardPyfunc):
    """LossguardPyfunc whose estimator gets its weights back from the model's artifacts when MLflow loads it."""

    def load_context(self, context):
        self.estimator.attach(context.artifacts[ARTIFACT_KEY])
