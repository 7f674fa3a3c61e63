"""Data contract of the hand-written workplace corpus (data/workplace_corpus): size, labels, labeling rules,
duplicates and the class balance its README documents. Loaded through the project's one loader."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from difflib import SequenceMatcher
from itertools import combinations
from pathlib import Path

import pandas as pd
import pytest

from features.contracts import CORPUS_CHANNELS, LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.loaders import load_workplace_corpus

CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "workplace_corpus"
README = CORPUS_DIR / "README.md"

# near-duplicate thresholds (the README states the same numbers)
JACCARD_3GRAM = 0.5
DIFFLIB_RATIO = 0.8
MAX_SHARE_DRIFT = 0.03  # 3 percentage points from the README's share column


def normalize(text: str) -> str:
    """Lower-case, full-width folded, without punctuation, spaces, emoji and other symbols."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def shingles(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


def near_duplicates(texts: list[str], max_df: int = 40) -> list[tuple[int, int, float, float]]:
    """Pairs (i, j, jaccard, ratio) that are identical after normalization or similar beyond the thresholds.

    Candidates come from an inverted index of character 3-grams, skipping grams shared by more than `max_df`
    texts (near-duplicates share many grams, so at least one rare one); only candidates are scored, with the
    3-gram Jaccard and, when its cheap upper bound allows, difflib's ratio.
    """
    norm = [normalize(t) for t in texts]
    grams = [shingles(t, 3) for t in norm]
    found: dict[tuple[int, int], tuple[float, float]] = {}
    by_text: dict[str, int] = {}
    for i, t in enumerate(norm):
        if t in by_text:
            found[(by_text[t], i)] = (1.0, 1.0)
        else:
            by_text[t] = i
    index: dict[str, list[int]] = defaultdict(list)
    for i, gs in enumerate(grams):
        for g in gs:
            index[g].append(i)
    chars = [Counter(t) for t in norm]
    candidates = {pair for ids in index.values() if len(ids) <= max_df for pair in combinations(ids, 2)}
    for i, j in candidates:
        if (i, j) in found:
            continue
        shared = len(grams[i] & grams[j])
        jaccard = shared / (len(grams[i]) + len(grams[j]) - shared)
        a, b = norm[i], norm[j]
        bound = DIFFLIB_RATIO * (len(a) + len(b)) / 2
        ratio = 0.0
        # difflib's ratio is bounded by the length ratio and by the shared character multiset: check those first
        if min(len(a), len(b)) >= bound and \
                sum(min(chars[i][c], chars[j][c]) for c in chars[i].keys() & chars[j].keys()) >= bound:
            ratio = SequenceMatcher(None, a, b, autojunk=False).ratio()
        if jaccard >= JACCARD_3GRAM or ratio >= DIFFLIB_RATIO:
            found[(i, j)] = (jaccard, ratio)
    return sorted((i, j, jac, rat) for (i, j), (jac, rat) in found.items())


def documented_balance() -> dict[str, dict[str, float]]:
    """The `share` column of each `#### <column>` table in the README's class-balance section."""
    tables: dict[str, dict[str, float]] = {}
    current = None
    for line in README.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"####\s+(\w+)\s*$", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        row = re.match(r"\|\s*([\w]+)\s*\|(?:\s*\d+\s*\|){2,}\s*([\d.]+)\s*%\s*\|\s*$", line)
        if current is not None and row:
            current[row.group(1)] = float(row.group(2)) / 100
    return tables


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return load_workplace_corpus(CORPUS_DIR)


def test_size_and_files(corpus):
    assert len(corpus) >= 3000
    assert set(corpus["source"].str[0]) == set("abcdefg"), "one slice per writer's brief (README)"


def test_no_exact_duplicates(corpus):
    assert corpus.attrs["duplicates_dropped"] == 0, "the loader dropped repeated texts; remove them from the CSVs"
    assert not corpus["text"].duplicated().any()


def test_near_duplicate_detector_flags_variants(corpus):
    long_texts = corpus.loc[corpus["text"].str.len() >= 30]
    originals = long_texts.groupby(long_texts["source"].str[0])["text"].first().tolist()[:4]  # from 4 slices
    variants = [originals[0] + "😅😅", originals[1].replace("，", " ", 1) + "！", originals[2][:-2] + "了吧",
                "转发：" + originals[3]]
    pairs = {(i, j) for i, j, *_ in near_duplicates(originals + variants)}
    assert {(0, 4), (1, 5), (2, 6), (3, 7)} <= pairs
    assert all(j - i == 4 for i, j in pairs), pairs


def test_no_near_duplicates(corpus):
    texts = corpus["text"].tolist()
    pairs = near_duplicates(texts)
    report = [f"{corpus['source'][i]} ~ {corpus['source'][j]}: jaccard {jac:.2f} ratio {rat:.2f}\n"
              f"  {texts[i]}\n  {texts[j]}" for i, j, jac, rat in pairs]
    assert not pairs, "near-duplicate texts:\n" + "\n".join(report)


@pytest.mark.parametrize("column, allowed", [
    ("sentiment", SENTIMENTS), ("loss_type", LOSS_TYPES), ("function", TEXT_FUNCTIONS), ("channel", CORPUS_CHANNELS),
])
def test_labels_valid(corpus, column, allowed):
    bad = corpus.loc[~corpus[column].isin(allowed), ["source", column]]
    assert bad.empty, bad.to_string()


def test_sarcasm_is_binary_and_only_negative(corpus):
    assert set(corpus["sarcasm"]) <= {0, 1}
    bad = corpus.loc[(corpus["sarcasm"] == 1) & (corpus["sentiment"] != "neg"), ["source", "sentiment", "text"]]
    assert bad.empty, "sarcasm is only ever negative:\n" + bad.to_string()


def test_text_lengths(corpus):
    lengths = corpus["text"].str.len()
    bad = corpus.loc[(lengths < 8) | (lengths > 200), ["source", "text"]]
    assert bad.empty, bad.to_string()


def test_labeling_rules(corpus):
    negative_none = corpus[(corpus["sentiment"] == "neg") & (corpus["loss_type"] == "none")]
    assert negative_none.empty, "negative rows need a loss type:\n" + negative_none.to_string()
    positive_loss = corpus[(corpus["sentiment"] == "pos") & (corpus["loss_type"] != "none")]
    assert positive_loss.empty, "positive rows carry no loss:\n" + positive_loss.to_string()


def test_class_floors(corpus):
    sentiment = corpus["sentiment"].value_counts(normalize=True)
    assert all(sentiment.get(s, 0) >= 0.20 for s in SENTIMENTS), sentiment.to_dict()
    loss = corpus["loss_type"].value_counts(normalize=True)
    assert all(loss.get(t, 0) >= 0.05 for t in LOSS_TYPES), loss.to_dict()
    negatives = corpus[corpus["sentiment"] == "neg"]
    assert negatives["sarcasm"].mean() >= 0.05
    assert corpus["channel"].nunique() >= 8


def test_balance_matches_readme(corpus):
    documented = documented_balance()
    assert {"sentiment", "loss_type", "function", "channel"} <= set(documented), "README lost its balance tables"
    for column, shares in documented.items():
        if column not in ("sentiment", "loss_type", "function", "channel"):
            continue
        actual = corpus[column].value_counts(normalize=True)
        assert set(actual.index) <= set(shares), f"{column}: labels missing from the README table"
        drift = {label: round(float(actual.get(label, 0.0)) - share, 3) for label, share in shares.items()
                 if abs(actual.get(label, 0.0) - share) > MAX_SHARE_DRIFT}
        assert not drift, f"{column}: shares moved from README (update its tables): {drift}"
