"""Text normalization and features: the one copy training and serving share."""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from features.text import (
    MASK,
    TextFeaturizer,
    TextNormalizer,
    fold,
    fold_and_normalize,
    hashed_ngrams,
    trie_pattern,
)


@pytest.fixture(scope="module")
def normalizer() -> TextNormalizer:
    return TextNormalizer(["星启科技", "XQ科技", "禾木"], max_chars=50)


def test_traditional_becomes_simplified(normalizer):
    assert normalizer("這傢伙的頭髮亂了，後來開會") == "这家伙的头发乱了,后来开会"


def test_full_width_becomes_half_width_and_lower_case(normalizer):
    assert normalizer("ＡＢＣ１２３！？（好）") == "abc123!?(好)"


def test_emoji_are_kept(normalizer):
    assert normalizer("又双叒叕加班😅👍🏻") == "又双叒叕加班😅👍🏻"


@pytest.mark.parametrize("text, expected", [
    ("星启科技又裁员", f"{MASK}又裁员"),          # keyword library name
    ("ＸＱ科技的客服", f"{MASK}的客服"),          # alias, full width and upper case
    ("離開禾木以後", f"离开{MASK}以后"),          # alias in traditional script
    ("在北辰银行上班", f"在{MASK}上班"),          # generic "<name><industry>"
    ("深圳市云帆网络科技有限公司发布公告", f"{MASK}发布公告"),  # registered name
    ("我的快递丢了", "我的快递丢了"),             # a pronoun is no name
    ("运的快递到了", "运的快递到了"),             # nor a particle in second place
    ("感谢公司的培养", "感谢公司的培养"),         # 公司 alone is an ordinary word
])
def test_company_names_are_masked(normalizer, text, expected):
    assert normalizer(text) == expected


def test_double_negation_cancels(normalizer):
    assert normalizer("服务不是不好") == "服务好"
    assert normalizer("没有不满意的地方") == "都满意的地方"
    assert normalizer("不得不说") == "不得不说"  # modal, not a double negation


@pytest.mark.parametrize("value, expected", [(None, ""), (float("nan"), ""), (12, "12"), ("  \n\t ", ""),
                                             ("a \u3000\n b", "a b"), ("x\0y", "x y")])
def test_odd_cells_give_defined_text(normalizer, value, expected):
    assert normalizer(value) == expected


def test_long_text_is_clipped(normalizer):
    assert len(normalizer("好" * 100_000)) == 50
    assert len(normalizer("…" * 100)) == 50  # NFKC expands "…" to "..." and the clip still holds


def test_batch_equals_one_by_one(normalizer):
    texts = ["這個ＡＰＰ很好用", "", None, "星启科技…不是不好", "e\u0301", "㈱禾木", "普通的一句话"]
    assert normalizer.batch(texts) == [normalizer(t) for t in texts]


def test_normalizer_survives_pickle(normalizer):
    clone = pickle.loads(pickle.dumps(normalizer))
    assert clone("星启科技的ＡＢ") == normalizer("星启科技的ＡＢ")


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_fold_keeps_length_and_normalize_is_idempotent(text):
    assert len(fold(text)) == len(text)
    once = fold_and_normalize(text)
    assert fold_and_normalize(once) == once


def test_fold_matches_normalize_on_common_text():
    text = "數據安全ＸＱ科技，客服"
    assert fold(text) == fold_and_normalize(text) == "数据安全xq科技,客服"


def test_trie_pattern_prefers_longest_and_escapes():
    pattern = re.compile(trie_pattern(["数据", "数据安全", "a.b", "c+"]))
    assert [m.group() for m in pattern.finditer("数据安全 数据 a.b axb c+")] == ["数据安全", "数据", "a.b", "c+"]


def test_hashed_ngrams_counts_every_ngram():
    rows, cols = hashed_ngrams(["abcd", "", "xy"], (1, 3), 20)
    assert np.bincount(rows, minlength=3).tolist() == [4 + 3 + 2, 0, 2 + 1]
    assert cols.min() >= 0 and cols.max() < 2 ** 20


def test_same_ngram_same_column_in_any_batch():
    _, alone = hashed_ngrams(["好"], (1, 1), 20)
    _, mixed = hashed_ngrams(["差", "很好"], (1, 1), 20)
    assert alone[0] == mixed[-1]


def test_featurizer_rows_are_unit_length_and_unseen_ngrams_ignored():
    featurizer = TextFeaturizer(min_df=1).fit(["服务很好", "服务很差", "下周开会"])
    x = featurizer.transform(["服务很好", "完全陌生的字", ""])
    norms = np.sqrt(x.multiply(x).sum(axis=1)).A.ravel()
    assert norms[0] == pytest.approx(1.0, abs=1e-6)
    assert norms[1] == 0 and norms[2] == 0
    assert x.shape == (3, featurizer.n_features)


def test_featurizer_min_df_drops_rare_buckets():
    assert TextFeaturizer(min_df=2).fit(["ab", "ac"]).n_features == 1  # only "a" is in two texts
