"""Scoring many texts with the three text models at once: the work they share is done once per batch.

Scored one model at a time, a batch was normalized three times, hashed into char n-grams five times (loss type
carries its own sentiment model and two heads) and counted with a global sort each time: ~3,700 texts/s on one
core here. The models share almost everything, so this scorer
- normalizes each text once when the models' normalizers are the same (same company names, same clipping);
- hashes the n-grams once per text view the heads read (the normalized text, or a `TextView` of it: cleaned,
  scopes marked), at the widest bit width in use for that view: a featurizer with fewer bits reads the same
  hash's top bits (`TextFeaturizer` takes the column as `h >> (64 - bits)`, so a 20-bit column is the 21-bit one
  >> 1);
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
from features.text_scope import TextView

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


class _Group:
    """The linear heads that hash at one bit width, scored together from the same counted pairs.

    For a head, logits = (Σ_pairs tf · idf · coef) / ‖tf · idf‖ + intercept, which is `TextFeaturizer.transform`
    followed by the matrix product, regrouped. With W = idf · coef of every head side by side (one row per hash
    bucket any head keeps, plus a zero row for the rest), one gather and two sparse products give all heads'
    numerators and norms at once, instead of a gather, a tf-idf and a product per head."""

    def __init__(self, bits: int, heads: list[LinearTextModel]):
        self.bits = bits
        self.heads = heads
        kept = np.zeros(1 << bits, dtype=bool)
        for head in heads:
            kept |= head.featurizer.index_ >= 0
        buckets = np.flatnonzero(kept)
        self.index = np.full(1 << bits, len(buckets), dtype=np.int32)
        self.index[buckets] = np.arange(len(buckets), dtype=np.int32)
        widths = [len(h.labels) for h in heads]
        self.slices = np.cumsum([0, *widths])
        self.weights = np.zeros((len(buckets) + 1, sum(widths)), dtype=np.float32)
        self.squared_idf = np.zeros((len(buckets) + 1, len(heads)), dtype=np.float32)
        for j, head in enumerate(heads):
            index = head.featurizer.index_[buckets]
            known = np.flatnonzero(index >= 0)
            idf = head.featurizer.idf_[index[known]]
            self.weights[known, self.slices[j]:self.slices[j + 1]] = idf[:, None] * head.coef[index[known]]
            self.squared_idf[known, j] = idf * idf

    def probabilities(self, n: int, cols: np.ndarray, tf: np.ndarray, indptr: np.ndarray) -> dict[int, np.ndarray]:
        """id(head) -> softmax(logits / T) for the n texts."""
        index = self.index[cols]
        width = len(self.weights)
        numerators = sparse.csr_matrix((tf, index, indptr), shape=(n, width)) @ self.weights
        norms = np.sqrt(sparse.csr_matrix((tf * tf, index, indptr), shape=(n, width)) @ self.squared_idf)
        norms[norms == 0] = 1
        out = {}
        for j, head in enumerate(self.heads):
            logits = numerators[:, self.slices[j]:self.slices[j + 1]] / norms[:, j:j + 1] + head.intercept
            out[id(head)] = softmax(logits.astype(np.float64) / head.temperature)
        return out


def _same_linear(a: LinearTextModel, b: LinearTextModel) -> bool:
    return (a is b) or (a.labels == b.labels and a.temperature == b.temperature and a.coef.shape == b.coef.shape
                        and np.array_equal(a.coef, b.coef) and np.array_equal(a.intercept, b.intercept)
                        and np.array_equal(a.featurizer.index_, b.featurizer.index_) and a.view == b.view)


class TextBatchScorer:
    """label, p_neg, p_neu, p_pos (sentiment), loss_type and function for a list of texts."""

    def __init__(self, sentiment: TextClassifier, loss_type: TextClassifier, function: TextClassifier):
        self.sentiment, self.loss_type, self.function = sentiment, loss_type, function
        linear = [sentiment, function, getattr(loss_type, "given_negative", None)]
        self.fast = (isinstance(loss_type, LossTypeModel) and all(isinstance(m, LinearTextModel) for m in linear)
                     and isinstance(loss_type.sentiment, LinearTextModel))
        if not self.fast:
            return
        heads = [sentiment, loss_type.given_negative, function]
        self.shared_sentiment = _same_linear(sentiment, loss_type.sentiment)
        if not self.shared_sentiment:
            heads.append(loss_type.sentiment)
        if loss_type.neutral_event is not None:
            heads.append(loss_type.neutral_event)
        normalizers = {(tuple(m.normalizer.company_names), m.normalizer.max_chars) for m in heads}
        self.fast = len(normalizers) == 1 and len({m.featurizer.ngram_range for m in heads}) == 1
        if self.fast:  # per view the heads read: the widest bit width, and the heads grouped by bit width
            by_view: dict[TextView | None, dict[int, list[LinearTextModel]]] = {}
            for head in heads:
                by_view.setdefault(head.view, {}).setdefault(head.featurizer.bits, []).append(head)
            self.views = [(view, max(by_bits), [_Group(bits, members) for bits, members in
                                                sorted(by_bits.items(), reverse=True)])
                          for view, by_bits in by_view.items()]

    def _all_probabilities(self, kept: list[str]) -> dict[int, np.ndarray]:
        n = len(kept)
        out = {}
        for view, bits, groups in self.views:
            pairs = _count_pairs(view(kept) if view is not None else kept, self.sentiment.featurizer.ngram_range, bits)
            for group in groups:
                rows, cols, counts = _narrow(pairs, bits - group.bits)
                indptr = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
                tf = np.log(counts.astype(np.float32)) + np.float32(1)  # sublinear tf, as in the featurizer
                out.update(group.probabilities(n, cols, tf, indptr))
        return out

    def probabilities(self, texts: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sentiment, loss type, function) probabilities, one row per text, columns in each model's `labels`
        order; empty texts get their model's empty label. The serving engine asks here, so a small /assess batch
        shares the work as a file does; models this path does not know are asked one by one."""
        if not self.fast:
            return tuple(np.asarray(m.predict_proba(texts), dtype=float)
                         for m in (self.sentiment, self.loss_type, self.function))
        normalized = self.sentiment.normalizer.batch(texts)
        present = np.array([bool(t) for t in normalized], dtype=bool)
        kept = [t for t, p in zip(normalized, present, strict=True) if p]
        p = self._all_probabilities(kept)
        sentiment, loss = self.sentiment, self.loss_type
        p_sentiment = p[id(sentiment)]
        inner = p_sentiment if self.shared_sentiment else p[id(loss.sentiment)]
        p_loss = inner[:, loss.sentiment.labels.index("neg")]
        if loss.neutral_event is not None:
            p_event = p[id(loss.neutral_event)][:, loss.neutral_event.labels.index("loss")]
            p_loss = p_loss + inner[:, loss.sentiment.labels.index("neu")] * p_event
        p_type = np.column_stack([p[id(loss.given_negative)] * p_loss[:, None], 1 - p_loss])

        def full(model: TextClassifier, scored: np.ndarray) -> np.ndarray:
            out = np.zeros((len(texts), len(model.labels)))
            out[~present, model.labels.index(model.empty_label)] = 1.0
            out[present] = scored
            return out

        return full(sentiment, p_sentiment), full(loss, p_type), full(self.function, p[id(self.function)])

    def _fast(self, texts: list[Any]) -> pd.DataFrame:
        sentiment, loss = self.sentiment, self.loss_type
        p_sentiment, p_type, p_function = self.probabilities(texts)
        out = pd.DataFrame(p_sentiment, columns=sentiment.proba_columns)
        out.insert(0, "label", np.asarray(sentiment.labels, dtype=object)[p_sentiment.argmax(axis=1)])
        out["loss_type"] = np.asarray(loss.labels, dtype=object)[p_type.argmax(axis=1)]
        out["function"] = np.asarray(self.function.labels, dtype=object)[p_function.argmax(axis=1)]
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
