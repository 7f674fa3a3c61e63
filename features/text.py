"""Text normalization, features and the linear text classifiers that training fits and serving unpickles.

One copy of each step lives here so a text is treated the same in training, batch scoring and the service:
traditional → simplified, full-width → half-width (NFKC), company names masked (so no model learns that one
employer is "bad"), emoji kept (they carry sentiment), length clipped to `settings.max_text_chars`. A linear head
may then read a `TextView` of the normalized text (features/text_scope.py: Weibo noise cleaned, negation and
concession scopes marked).

Features are hashed char 1–3-grams computed with numpy over a whole batch at once: cheap enough for the fast
backend. The alternatives measured beside them (jieba word n-grams, NB-SVM scaling, binary tf, 4-grams, additive
cue blocks) bought nothing worth their cost; what each measured is listed on the model card (CardInfo.design in
features/model_specs.py).
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import minimize_scalar

from features.settings import settings
from features.text_scope import TextView

MASK = "某公司"
# Industry words that end most Chinese company names ("星启科技", "北辰银行"). 公司 / 文化 / 信息 are left out:
# "感谢公司", "企业文化" are ordinary words far more often than names.
COMPANY_SUFFIXES = (
    "科技", "集团", "银行", "航空", "电器", "汽车", "快递", "外卖", "保险", "酒店", "物流", "教育", "传媒", "网络",
    "软件", "智能", "新能源", "能源", "地产", "置业", "证券", "基金", "资本", "控股", "餐饮", "食品", "乳业", "家居",
    "医疗", "医药", "药业", "生物", "商城", "出行", "数码", "超市", "电子", "通信", "游戏", "影业",
)
# A 2-char name never starts with a pronoun, particle, verb or number word ("我的快递", "这家外卖", "绑定银行").
_NOT_NAME_START = (
    "我你您他她它咱们这那哪谁的地得了着过是在给到用对把被让向跟和与及或很都也还就又再才个一二两三四五六七八九十"
    "百千万几多少各每某本该此其有没无不别请从自前后今明昨上下大小新老好问诉谢感恭根建完放绑实说合近退补冷长手心"
    "买卖去来回找送点叫订坐吃住看做当成为将要会能可想等之以而但如若因所于由至网国企团私公外内总分子母全"
)
# ...nor has a particle second ("运的快递", "见的外卖").
_NOT_NAME_SECOND = "的地得了着过在和与及跟被把给到等向对个是"
_SPACES = re.compile(r"\s+")


# ------------------------------------------------------------------------------------------- character folds
_TABLE_SIZE = 0x30000  # BMP + SMP + CJK extension B: every character NFKC or OpenCC's tables change lives here


@cache
def _ts_characters() -> dict[str, str]:
    """OpenCC's traditional → simplified character table (its default, first candidate; single chars only).

    Applied per character rather than through OpenCC's phrase pass: it keeps positions (keyword hits), runs in
    numpy (the phrase pass alone managed ~16k texts/s), and the phrase rules only choose between candidates for
    a few characters (乾/干, 著/着), which does not matter to n-gram features.
    """
    import opencc

    table = {}
    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        source, _, targets = line.partition("\t")
        target = targets.split(" ")[0] if targets else ""
        if len(source) == 1 and len(target) == 1 and source != target:
            table[source] = target
    return table


@cache
def _char_maps() -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Per-character NFKC → traditional→simplified → lower case, as (code→code lookup table, mask of characters
    whose result is longer than one char, their str.translate map). Built once per process (~0.2 s)."""
    ts = _ts_characters()
    lut = np.arange(_TABLE_SIZE, dtype=np.uint32)
    expands = np.zeros(_TABLE_SIZE, dtype=bool)
    multi: dict[int, str] = {}
    for code in range(_TABLE_SIZE):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        out = "".join(ts.get(c, c) for c in unicodedata.normalize("NFKC", char)).lower()
        if out == char:
            continue
        if len(out) == 1:
            lut[code] = ord(out)
        else:
            expands[code] = True
            multi[code] = out
    return lut, expands, multi


def _to_codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _from_codes(codes: np.ndarray) -> str:
    return codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _map_codes(codes: np.ndarray, lut: np.ndarray) -> np.ndarray:
    inside = codes < _TABLE_SIZE
    return np.where(inside, lut[np.where(inside, codes, 0)], codes)


@cache
def _fold_table() -> dict[int, int]:
    lut, expands, _ = _char_maps()
    changed = np.flatnonzero((lut != np.arange(_TABLE_SIZE)) & ~expands)
    return dict(zip(changed.tolist(), lut[changed].tolist(), strict=True))


def fold(text: str) -> str:
    """Length-preserving fold: full-width → half-width, traditional → simplified, lower case, per character.

    Used where positions must map back to the original text (keyword hits); characters whose NFKC form is
    longer than one char are left as they are. str.translate: one short text is too small for numpy to pay.
    """
    return text.translate(_fold_table())


def fold_and_normalize(text: str) -> str:
    """The full character-level normalization (NFKC, traditional → simplified, lower case) of one string."""
    lut, expands, multi = _char_maps()
    codes = _to_codes(text)
    inside = codes < _TABLE_SIZE
    expanding = np.flatnonzero(inside & expands[np.where(inside, codes, 0)])
    if len(expanding):  # "…" → "...", "㈱" → "(株)": splice the few expansions in, map the rest in numpy
        pieces, start = [], 0
        for at in expanding:
            pieces += [_from_codes(_map_codes(codes[start:at], lut)), multi[int(codes[at])]]
            start = at + 1
        text = "".join(pieces) + _from_codes(_map_codes(codes[start:], lut))
    else:
        text = _from_codes(_map_codes(codes, lut))
    if not unicodedata.is_normalized("NFKC", text):  # combining sequences: rare, let NFKC compose them
        text = _from_codes(_map_codes(_to_codes(unicodedata.normalize("NFKC", text)), lut))
    return text


def coerce_text(value: Any) -> str:
    """Any cell → str: None/NaN → '', numbers → their text; never raises."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, str):
        return value
    try:
        return "" if pd.isna(value) else str(value)
    except (TypeError, ValueError):
        return str(value)


def trie_pattern(words: Iterable[str]) -> str:
    """One regex for many literals, factored as a trie so matching costs O(word length), not O(word count).

    Longer words win over their prefixes at the same start ("数据安全" before "数据").
    """
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [re.escape(char) + emit(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            body = f"(?:{body})?" if len(branches) == 1 else body + "?"
        return body

    return emit(trie)


# --------------------------------------------------------------------------------------------- normalization
# Scanning for the (rare) industry word and checking the characters before it in Python is several times faster
# than a regex that must try a name at every position.
_COMPANY_SUFFIX = re.compile(trie_pattern(COMPANY_SUFFIXES))
_REGISTERED_SUFFIX = re.compile(trie_pattern(("有限公司", "有限责任公司", "股份有限公司", "股份有限责任公司")))
_NAME_BOUNDARY = "的地得了着过在和与及跟被把给到等向对个是从去来进入我你他她它们这那"  # where a long name cannot extend


def _is_name_char(char: str, excluded: str) -> bool:
    return "\u4e00" <= char <= "\u9fff" and char not in excluded


def _splice(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Replace non-overlapping (start, end) spans, in order, with MASK."""
    pieces, done = [], 0
    for start, end in spans:
        if start >= done:
            pieces += [text[done:start], MASK]
            done = end
    return "".join(pieces) + text[done:] if pieces else text


def _registered_names(text: str) -> Iterable[tuple[int, int]]:
    """Registered names such as 深圳市星启网络科技有限公司: up to 16 name characters before the legal suffix."""
    for match in _REGISTERED_SUFFIX.finditer(text):
        start = match.start()
        while start > 0 and match.start() - start < 16 and _is_name_char(text[start - 1], _NAME_BOUNDARY):
            start -= 1
        if match.start() - start >= 2:
            yield start, match.end()


def _industry_names(text: str) -> Iterable[tuple[int, int]]:
    """Names such as 星启科技: two name characters (no pronoun/verb first, no particle second) + an industry word."""
    for match in _COMPANY_SUFFIX.finditer(text):
        start = match.start() - 2
        if start >= 0 and _is_name_char(text[start], _NOT_NAME_START) and _is_name_char(
                text[start + 1], _NOT_NAME_SECOND):
            yield start, match.end()


# Double negations cancel ("不是不好" ≈ "好", "没有不满意" ≈ "都满意"). Bag-of-n-gram models cannot learn that
# from a few thousand posts: "不好" inside "不是不好" reads as plain negative. Modal ones ("不得不") are left alone.
DOUBLE_NEGATIONS = {"不是不": "", "并不是不": "", "并非不": "", "不是没有": "有", "不是没": "有", "没有不": "都",
                    "无不": "都", "不会不": "会"}
_DOUBLE_NEGATION = re.compile(trie_pattern(DOUBLE_NEGATIONS))


class TextNormalizer:
    """The one normalization used before every model. Picklable: the company list is frozen at training time.

    Steps: NFKC, traditional → simplified, lower case, double negations cancelled, company names masked (keyword
    library names of all tenants, "XX有限公司", a generic "<2-char name><industry>" pattern), whitespace collapsed,
    clipped to max_chars. Emoji pass through untouched.
    """

    def __init__(self, company_names: Iterable[str] = (), max_chars: int | None = None):
        self.max_chars = int(max_chars or settings.max_text_chars)
        names = sorted({fold_and_normalize(n.strip()) for n in company_names if n and n.strip()},
                       key=len, reverse=True)
        self.company_names = tuple(names)
        self._known = re.compile(trie_pattern(names)) if names else None

    def mask_companies(self, text: str) -> str:
        """Known names (keyword library), registered names and "<2-char name><industry>" → MASK."""
        if self._known is not None:
            text = self._known.sub(MASK, text)
        if "有限" in text:
            text = _splice(text, _registered_names(text))
        return _splice(text, _industry_names(text))

    def __call__(self, value: Any) -> str:
        return self.batch([value])[0]

    def batch(self, values: Iterable[Any]) -> list[str]:
        """Normalize many texts in a few numpy/regex passes over one joined string (per-text Python overhead,
        not the work, dominates for short posts). NUL separates texts: no fold or pattern below crosses it."""
        clipped = [coerce_text(v)[: self.max_chars * 2].replace("\0", " ") for v in values]  # NFKC may grow text
        if not clipped:
            return []
        joined = fold_and_normalize("\0".join(clipped))
        joined = _DOUBLE_NEGATION.sub(lambda m: DOUBLE_NEGATIONS[m.group()], joined)
        joined = _SPACES.sub(" ", self.mask_companies(joined))
        return [t.strip()[: self.max_chars] for t in joined.split("\0")]

    def __getstate__(self):
        return {"company_names": self.company_names, "max_chars": self.max_chars}

    def __setstate__(self, state):
        self.__init__(state["company_names"], state["max_chars"])


# ------------------------------------------------------------------------------------------------- features
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)


def _codes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    joined = "".join(texts).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(joined, dtype="<u4").astype(np.uint64), lengths


def hashed_ngrams(texts: Sequence[str], ngram_range: tuple[int, int], bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every char n-gram of every text, vectorized over the batch (no Python loop per text)."""
    codes, lengths = _codes(texts)
    row_of = np.repeat(np.arange(len(texts)), lengths)
    room = np.arange(len(codes)) - np.repeat(np.cumsum(lengths), lengths)  # -(chars left from here to the end)
    rows, cols = [], []
    shift = np.uint64(64 - bits)
    for n in range(ngram_range[0], ngram_range[1] + 1):
        starts = np.flatnonzero(room <= -n)
        h = codes[starts]
        for k in range(1, n):
            h = h * _M1 + codes[starts + k]
        h = (h ^ (h >> np.uint64(31))) * _M2
        rows.append(row_of[starts])
        cols.append((h >> shift).astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)


class TextFeaturizer:
    """Hashed char n-grams → sublinear tf-idf, L2-normalized rows; ~100k short texts/s on one core.

    `fit` keeps only hash buckets seen in at least `min_df` training texts and renumbers them densely, so the
    pickled featurizer and the model weights stay small.
    """

    def __init__(self, ngram_range: tuple[int, int] = (1, 3), bits: int = 20, min_df: int = 2):
        self.ngram_range = tuple(ngram_range)
        self.bits = bits
        self.min_df = min_df

    @staticmethod
    def _count(rows: np.ndarray, cols: np.ndarray, width: int):
        keys, counts = np.unique((rows << width) | cols, return_counts=True)
        return keys >> width, keys & ((1 << width) - 1), counts

    def fit(self, texts: Sequence[str]) -> TextFeaturizer:
        _, cols, _ = self._count(*hashed_ngrams(texts, self.ngram_range, self.bits), self.bits)
        df = np.bincount(cols, minlength=1 << self.bits)
        kept = np.flatnonzero(df >= self.min_df)
        self.index_ = np.full(1 << self.bits, -1, dtype=np.int32)
        self.index_[kept] = np.arange(len(kept))
        self.idf_ = (np.log((1 + len(texts)) / (1 + df[kept])) + 1).astype(np.float32)
        return self

    @property
    def n_features(self) -> int:
        return len(self.idf_)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        rows, cols = hashed_ngrams(texts, self.ngram_range, self.bits)
        cols = self.index_[cols]
        known = cols >= 0
        rows, cols, counts = self._count(rows[known], cols[known], self.bits)
        data = np.log(counts.astype(np.float32)) + np.float32(1)
        data *= self.idf_[cols]
        norms = np.sqrt(np.bincount(rows, data * data, minlength=len(texts))).astype(np.float32)
        data /= norms[rows]
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=indptr[1:])
        return sparse.csr_matrix((data, cols, indptr), shape=(len(texts), self.n_features))


# ------------------------------------------------------------------------------------------------ estimators
def text_column_values(frame: pd.DataFrame, column: str = "text") -> list[Any]:
    """The text column of a frame, or a clear error naming the missing column and those present."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError("输入应为表格 (DataFrame), 且含文本列")
    if column not in frame.columns:
        raise ValueError(f"缺少文本列 {column!r}; 现有列: {list(map(str, frame.columns))}")
    return frame[column].tolist()


class TextClassifier:
    """Shared interface of every text model (linear or transformer): probabilities over `labels`.

    Subclasses implement `_scores(normalized_texts) -> (n, k) probabilities` for non-empty texts. A text that
    is empty after normalization gets the defined "no signal" result: `empty_label` with probability 1.
    """

    task: str
    labels: tuple[str, ...]
    normalizer: TextNormalizer
    empty_label: str
    text_column = "text"

    @property
    def output_column(self) -> str:
        return "label" if self.task == "sentiment" else self.task

    @property
    def proba_columns(self) -> list[str]:
        prefix = "p_" if self.task == "sentiment" else f"p_{self.task}_"
        return [prefix + label for label in self.labels]

    def _scores(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: Iterable[Any]) -> np.ndarray:
        normalized = self.normalizer.batch(texts)
        out = np.zeros((len(normalized), len(self.labels)), dtype=np.float64)
        present = np.array([bool(t) for t in normalized], dtype=bool)
        out[~present, self.labels.index(self.empty_label)] = 1.0
        if present.any():
            out[present] = self._scores([t for t, p in zip(normalized, present, strict=True) if p])
        return out

    def predict(self, texts: Iterable[Any]) -> list[str]:
        proba = self.predict_proba(texts)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`label` (or the task name) plus one probability column per class, index kept from the input."""
        proba = self.predict_proba(text_column_values(frame, self.text_column))
        out = pd.DataFrame(proba, columns=self.proba_columns, index=frame.index)
        out.insert(0, self.output_column, [self.labels[i] for i in proba.argmax(axis=1)])
        return out


class LinearTextModel(TextClassifier):
    """Multinomial logistic regression over `TextFeaturizer` features with a fitted softmax temperature.

    The fast CPU backend: inference is one sparse matrix product per batch. `view` (a `TextView`) is what the
    featurizer reads instead of the bare normalized text; None (and every pickle from before views existed)
    reads the normalized text itself.
    """

    view: TextView | None = None  # class default: models pickled before views existed

    def __init__(self, task: str, labels: Sequence[str], normalizer: TextNormalizer, featurizer: TextFeaturizer,
                 coef: np.ndarray, intercept: np.ndarray, *, empty_label: str, temperature: float = 1.0,
                 view: TextView | None = None):
        self.task = task
        self.labels = tuple(labels)
        self.normalizer = normalizer
        self.featurizer = featurizer
        self.coef = np.asarray(coef, dtype=np.float32).T.copy()  # (n_features, k) for X @ coef
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.empty_label = empty_label
        self.temperature = float(temperature)
        self.view = view

    def viewed(self, normalized: list[str]) -> list[str]:
        return self.view(normalized) if self.view is not None else normalized

    def logits(self, normalized: list[str]) -> np.ndarray:
        return self.featurizer.transform(self.viewed(normalized)) @ self.coef + self.intercept

    def _scores(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts).astype(np.float64) / self.temperature)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Softmax temperature minimizing (weighted) log loss on rows the model did not see (Guo et al. 2017)."""
    weight = np.ones(len(y)) if weight is None else weight

    def loss(log_t: float) -> float:
        proba = softmax(logits / np.exp(log_t))
        return float(-(weight * np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))).sum() / weight.sum())

    return float(np.exp(minimize_scalar(loss, bounds=(-3, 3), method="bounded").x))


class LossTypeModel(TextClassifier):
    """P(type) = P(loss) · P(type | neg) and P(none) = 1 − P(loss), P(loss) = P(neg) + P(neu) · P(event | neu).

    A loss exists when a text is negative, or neutral but factually reporting a loss event (a fine, a recall, a
    lost contract). Factoring through the sentiment model (trained on far more text) beats a flat 4-class model
    and can never call a positive post a culture loss; the optional `neutral_event` head (loss vs none among
    neutral rows) adds the reported events (both measured by CV: figures on the model card). Models pickled
    without it score as before.
    """

    task = "loss_type"
    empty_label = "none"
    neutral_event: LinearTextModel | None = None  # class default: pickles from before the head existed

    def __init__(self, sentiment: LinearTextModel, given_negative: LinearTextModel,
                 neutral_event: LinearTextModel | None = None):
        self.sentiment = sentiment
        self.given_negative = given_negative
        self.neutral_event = neutral_event
        self.labels = tuple(given_negative.labels) + ("none",)
        self.normalizer = sentiment.normalizer

    def _scores(self, texts: list[str]) -> np.ndarray:
        p_sentiment = self.sentiment._scores(texts)
        p_loss = p_sentiment[:, self.sentiment.labels.index("neg")]
        if self.neutral_event is not None:
            p_event = self.neutral_event._scores(texts)[:, self.neutral_event.labels.index("loss")]
            p_loss = p_loss + p_sentiment[:, self.sentiment.labels.index("neu")] * p_event
        return np.column_stack([self.given_negative._scores(texts) * p_loss[:, None], 1.0 - p_loss])
