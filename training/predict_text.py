"""`lossguard predict sentiment`: score a CSV or Parquet file of any size with the three text models.

The file is streamed: CSV `chunk_rows` rows at a time (pandas' chunked parser), Parquet one record batch at a
time, and every scored chunk is appended to the output (CSV or Parquet, by its suffix) before the next is read, so
memory stays flat whether the file holds ten texts or ten million. Chunks are scored by `workers` processes
(default: one per CPU but one, see `workers_to_use`) with at most two chunks per worker in flight: reading,
scoring and writing overlap, and a slow writer holds the reader back instead of filling memory. Output rows keep
the input's order and columns, with label, p_neg, p_neu, p_pos, loss_type and function added (replacing any
columns of those names).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.errors import InputError
from features.model_specs import SPECS, BatchResult
from features.settings import settings
from features.tables import TableWriter, check_output, count_rows, iter_table
from features.text import TextClassifier, coerce_text
from features.text_batch import TextBatchScorer

OUTPUT_COLUMNS = SPECS["sentiment"].output_columns
CHUNK_ROWS = 20_000  # measured: larger chunks are slower per text (the n-gram arrays leave the CPU caches)


@dataclass
class TextScorer:
    """The three registered models scoring one DataFrame (shared by the CLI and notebooks)."""

    sentiment: TextClassifier
    loss_type: TextClassifier
    function: TextClassifier

    @classmethod
    def load(cls, model_uri: str | None = None) -> TextScorer:
        from features.modelio import load_champion, load_model

        sentiment = load_model(model_uri, "sentiment") if model_uri else load_champion("sentiment")
        return cls(sentiment.estimator, load_champion("loss_type").estimator, load_champion("function").estimator)

    def batch(self) -> TextBatchScorer:
        return TextBatchScorer(self.sentiment, self.loss_type, self.function)

    def score(self, texts: list) -> pd.DataFrame:
        return self.batch().score(texts)


_WORKER: TextBatchScorer | None = None


def _start_worker(scorer: TextBatchScorer) -> None:
    global _WORKER
    _WORKER = scorer


def _score_in_worker(texts: list) -> pd.DataFrame:
    return _WORKER.score(texts)


def workers_to_use(requested: int | None = None) -> int:
    """Scoring processes: `requested`, else settings.predict_workers, else one per CPU this process may use but
    one (the parent reads, joins and writes the chunks meanwhile), at least 1, at most 8. 0 scores in this
    process (no pool: for debugging, or a single-CPU box)."""
    wanted = requested if requested is not None else (settings.predict_workers or None)
    if wanted is not None:
        return max(0, int(wanted))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if available == 1 else min(8, available - 1)


def _scored_chunks(scorer: TextBatchScorer, chunks: Iterator[pd.DataFrame], text_column: str,
                   workers: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(chunk, its scores) in input order; with workers >= 1 at most 2 * workers chunks are in flight."""
    def texts(chunk: pd.DataFrame) -> list[str]:
        return [coerce_text(v) for v in chunk[text_column].tolist()]

    if workers == 0:
        for chunk in chunks:
            yield chunk, scorer.score(texts(chunk))
        return
    # spawn, not fork: the parent holds MLflow, pyarrow and tqdm threads whose locks a forked child could inherit
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(scorer,)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(_score_in_worker, (texts(chunk),))))
            if len(pending) >= 2 * workers:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


def predict_file(input: Path | str, output: Path | str, *, text_column: str = "text", model_uri: str | None = None,
                 chunk_rows: int = CHUNK_ROWS, workers: int | None = None) -> BatchResult:
    """Score a CSV or Parquet file into a CSV or Parquet file (by `output`'s suffix). Empty or non-text cells get
    the defined "no signal" result (neu / none / none). The output is written under a temporary name and moved
    into place at the end, so a failed run leaves no half-written file."""
    from tqdm import tqdm

    input, output = Path(input), check_output(output)
    chunks = iter_table(input, chunk_rows)
    first = next(chunks, None)
    columns = list(map(str, first.columns)) if first is not None else []
    if text_column not in columns:
        raise InputError(f"{input}: 没有文本列 {text_column!r}; 现有列: {columns}; 请用 --text-column 指定",
                         field=text_column)
    scorer = TextScorer.load(model_uri).batch()
    workers = workers_to_use(workers)

    def all_chunks() -> Iterator[pd.DataFrame]:
        yield first
        yield from chunks

    total = count_rows(input)
    with TableWriter(output) as writer, tqdm(total=total, unit="text", desc="scoring", file=sys.stderr,
                                             unit_scale=True, disable=None) as bar:
        for chunk, scores in _scored_chunks(scorer, all_chunks(), text_column, workers):
            kept = chunk.drop(columns=[c for c in OUTPUT_COLUMNS if c in chunk.columns]).reset_index(drop=True)
            writer.write(pd.concat([kept, scores.set_axis(kept.index)], axis=1))
            bar.update(len(chunk))
    return BatchResult(output, scored=writer.rows)
