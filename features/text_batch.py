"""Scoring many texts with the three text models at once: the work they share is done once per batch.

Scored one model at a time, a batch was normalized three times, hashed into char n-grams five times (loss type
carries its own sentiment model and two heads) and counted with a global sort each time: ~3,700 texts/s on one
core here. The models share almost everything, so this scorer
- normalizes each text once when the models' normalizers are the same (same company names, same clipping);
- hashes the n-grams once, at the widest bit width in use: a featurizer with fewer bits reads the same hash's top
  bits (`TextFeaturizer` takes the column as `h >> (64 - bits)`, so a 20-bit column is the 21-bit one >> 1);
- counts (text, n-gram) pairs once with scipy's per-row sort instead of a global `np.unique`, then derives each
  featurizer's tf-idf rows from those counts with array lookups;
- reuses the sentiment probabilities inside the loss-type model when its embedded sentiment model is the
  registered one (same weights), instead of recomputing them.
The figures are the models' own (tests/unit/test_text_batch.py checks them against `predict_frame`); models this
path does not know (a transformer backend) are scored one by one as before.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from features.text import LinearTextModel, LossTypeModel, TextClassifier, hashed_ngrams, softmax

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, hashed columns, counts; sorted by (row, column)


def _count_pairs(texts: Sequence[str], ngram_range: tuple[int, int], bits: int) -> Pairs:
    rows, cols = hashed_ngrams(texts, ngram_range, bits)
    counted = sparse.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                shape=(len(texts), 1 << bits)).tocsr()  # duplicates summed
    counted.sort_indices()
    row_of = np.repeat(np.arange(len(texts)), np.diff(counted.indptr))
    return row_of, counted.indices.astype(np.int64), counted.data


def _narrow(pairs: Pairs, shift: int) -> Pairs:
    """The same counts at `shift` fewer bits: columns >> shift keeps the (row, column) order, so equal neighbours
    are merged in one pass."""
    rows, cols, counts = pairs
    if shift == 0:
        return pairs
    cols = cols >> shift
    new = np.ones(len(cols), dtype=bool)
    new[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    starts = np.flatnonzero(new)
    return rows[starts], cols[starts], np.add.reduceat(counts, starts) if len(starts) else counts[:0]


class _Head:
    """One featurizer + linear model prepared for pair input: unknown n-grams point at an extra all-zero column
    (idf 0, coefficients 0), so no per-pair mask is needed."""

    def __init__(self, model: LinearTextModel):
        featurizer = model.featurizer
        width = featurizer.n_features
        self.bits = featurizer.bits
        self.index = np.where(featurizer.index_ >= 0, featurizer.index_, width).astype(np.int32)
        self.idf = np.append(featurizer.idf_, np.float32(0)).astype(np.float32)
        self.coef = np.vstack([model.coef, np.zeros((1, model.coef.shape[1]), dtype=model.coef.dtype)])
        self.intercept = model.intercept
        self.temperature = model.temperature
        self.width = width + 1

    def probabilities(self, n: int, rows: np.ndarray, cols: np.ndarray, tf: np.ndarray,
                      indptr: np.ndarray) -> np.ndarray:
        """softmax(tf-idf rows @ coef / T), the tf-idf exactly as `TextFeaturizer.transform` computes it."""
        index = self.index[cols]
        data = tf * self.idf[index]
        norms = np.sqrt(np.bincount(rows, data * data, minlength=n)).astype(np.float32)
        norms[norms == 0] = 1
        data /= norms[rows]
        logits = sparse.csr_matrix((data, index, indptr), shape=(n, self.width)) @ self.coef + self.intercept
        return softmax(logits.astype(np.float64) / self.temperature)


def _same_linear(a: LinearTextModel, b: LinearTextModel) -> bool:
    return (a is b) or (a.labels == b.labels and a.temperature == b.temperature and a.coef.shape == b.coef.shape
                        and np.array_equal(a.coef, b.coef) and np.array_equal(a.intercept, b.intercept)
                        and np.array_equal(a.featurizer.index_, b.featurizer.index_))


class TextBatchScorer:
    """label, p_neg, p_neu, p_pos (sentiment), loss_type and function for a list of texts."""

    def __init__(self, sentiment: TextClassifier, loss_type: TextClassifier, function: TextClassifier):
        self.sentiment, self.loss_type, self.function = sentiment, loss_type, function
        linear = [sentiment, function, getattr(loss_type, "given_negative", None)]
        self.fast = (isinstance(loss_type, LossTypeModel) and all(isinstance(m, LinearTextModel) for m in linear)
                     and isinstance(loss_type.sentiment, LinearTextModel))
        if self.fast:
            heads = [sentiment, loss_type.sentiment, loss_type.given_negative, function]
            if loss_type.neutral_event is not None:
                heads.append(loss_type.neutral_event)
            normalizers = {(tuple(m.normalizer.company_names), m.normalizer.max_chars) for m in heads}
            ranges = {m.featurizer.ngram_range for m in heads}
            self.fast = len(normalizers) == 1 and len(ranges) == 1
        if self.fast:
            self.bits = max(m.featurizer.bits for m in heads)
            self.shared_sentiment = _same_linear(sentiment, loss_type.sentiment)
            self.heads: dict[int, _Head] = {}

    def _probabilities(self, model: LinearTextModel, counts: dict[int, tuple], n: int) -> np.ndarray:
        head = self.heads.setdefault(id(model), _Head(model))
        if head.bits not in counts:
            rows, cols, count = _narrow(counts[self.bits][:3], self.bits - head.bits)
            counts[head.bits] = (rows, cols, count)
        if len(counts[head.bits]) == 3:  # sublinear tf and row pointers: once per bit width, shared by its heads
            rows, cols, count = counts[head.bits]
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
            counts[head.bits] = (rows, cols, count, np.log(count.astype(np.float32)) + np.float32(1), indptr)
        rows, cols, _, tf, indptr = counts[head.bits]
        return head.probabilities(n, rows, cols, tf, indptr)

    def _fast(self, texts: list[Any]) -> pd.DataFrame:
        normalized = self.sentiment.normalizer.batch(texts)
        present = np.array([bool(t) for t in normalized], dtype=bool)
        kept = [t for t, p in zip(normalized, present, strict=True) if p]
        n = len(kept)
        counts = {self.bits: _count_pairs(kept, self.sentiment.featurizer.ngram_range, self.bits)}
        sentiment = self.sentiment
        p_sentiment = self._probabilities(sentiment, counts, n)
        loss = self.loss_type
        inner = p_sentiment if self.shared_sentiment else self._probabilities(loss.sentiment, counts, n)
        p_loss = inner[:, loss.sentiment.labels.index("neg")]
        if loss.neutral_event is not None:
            p_event = self._probabilities(loss.neutral_event, counts, n)[:, loss.neutral_event.labels.index("loss")]
            p_loss = p_loss + inner[:, loss.sentiment.labels.index("neu")] * p_event
        p_type = np.column_stack([self._probabilities(loss.given_negative, counts, n) * p_loss[:, None], 1 - p_loss])
        p_function = self._probabilities(self.function, counts, n)

        def full(model: TextClassifier, scored: np.ndarray) -> np.ndarray:
            out = np.zeros((len(texts), len(model.labels)))
            out[~present, model.labels.index(model.empty_label)] = 1.0
            out[present] = scored
            return out

        p_sentiment = full(sentiment, p_sentiment)
        out = pd.DataFrame(p_sentiment, columns=sentiment.proba_columns)
        out.insert(0, "label", np.asarray(sentiment.labels, dtype=object)[p_sentiment.argmax(axis=1)])
        out["loss_type"] = np.asarray(loss.labels, dtype=object)[full(loss, p_type).argmax(axis=1)]
        out["function"] = np.asarray(self.function.labels, dtype=object)[full(self.function, p_function).argmax(axis=1)]
        return out

    def score(self, texts: list[Any]) -> pd.DataFrame:
        """One row per text, in order: label, p_neg, p_neu, p_pos, loss_type, function."""
        texts = list(texts)
        if self.fast:
            return self._fast(texts)
        frame = pd.DataFrame({"text": texts})
        out = self.sentiment.predict_frame(frame)[["label", "p_neg", "p_neu", "p_pos"]].reset_index(drop=True)
        out["loss_type"] = self.loss_type.predict_frame(frame)["loss_type"].to_numpy()
        out["function"] = self.function.predict_frame(frame)["function"].to_numpy()
        return out
