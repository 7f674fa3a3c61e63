"""What linear heads read after normalization: Weibo clean-up and negation/concession scope marking."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from features.text import LinearTextModel, TextFeaturizer, TextNormalizer
from features.text_scope import SCOPES, TextView, WeiboCleaner, mark_scopes

NEG_OFFSET, CONCESSION_OFFSET = SCOPES["neg"][1], SCOPES["concession"][1]


def marked(text: str, offset: int) -> str:
    return "".join(chr(ord(c) + offset) for c in text)


def test_negation_scope_runs_to_the_clause_end():
    assert mark_scopes(["服务并不是很好，价格也贵"]) == ["服务并不是" + marked("很好", NEG_OFFSET) + "，价格也贵"]
    assert mark_scopes(["菜不好吃"]) == ["菜不" + marked("好吃", NEG_OFFSET)]


@pytest.mark.parametrize("text", ["味道不错", "不过还行", "无论如何都要去", "非常满意", "未来可期", "别人都说好",
                                  "特别好吃", "除非你来"])
def test_lexicalized_words_are_not_negators(text):
    assert mark_scopes([text]) == [text]


def test_concession_clause_is_marked_and_the_main_clause_is_not():
    out = mark_scopes(["虽然有点贵，但是好吃"])[0]
    assert out == "虽然" + marked("有点贵", CONCESSION_OFFSET) + "，但是好吃"


texts = st.lists(st.text(alphabet="不没无非别未虽然尽管好差很是有，。! abc😀", max_size=30), max_size=8)


@hsettings(max_examples=150, deadline=None)
@given(texts)
def test_marking_keeps_lengths_never_crosses_texts_and_is_undone_by_unshifting(batch):
    out = mark_scopes(batch)
    assert out == [mark_scopes([t])[0] for t in batch]
    assert [len(t) for t in out] == [len(t) for t in batch]
    undone = ["".join(chr(ord(c) % 0x20000) if ord(c) >= NEG_OFFSET else c for c in t) for t in out]
    assert undone == batch


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="@//:ab c。.http://t.cn/x好", max_size=40), max_size=6))
def test_cleaner_batch_equals_one_by_one(batch):
    assert WeiboCleaner()(batch) == [WeiboCleaner()([t])[0] for t in batch]


def test_cleaner_removes_names_links_and_the_final_period():
    cleaned = WeiboCleaner()(["//@路人甲:转发 @小王 看看 http://t.cn/a6abc12 太差了。", "好。"])
    assert cleaned == ["// 转发 @ 看看 太差了", "好"]


def test_view_pickles_compares_and_rejects_unknown_scopes():
    view = TextView()
    assert pickle.loads(pickle.dumps(view)) == view and view.describe() == "weibo-clean+mark:neg+mark:concession"
    assert TextView(clean=False, scopes=())(["原样。"]) == ["原样。"]
    with pytest.raises(ValueError, match="contrast"):
        TextView(scopes=("contrast",))


def test_company_names_are_masked_before_the_view_reads_the_text():
    normalizer, view = TextNormalizer(["禾木集团"]), TextView()
    names = ["星启科技", "禾木集团", "北辰银行", "深圳市远山科技有限公司"]
    seen = {view(normalizer.batch([f"{name}的客服不专业，虽然产品还行，我对{name}没有意见"]))[0] for name in names}
    assert len(seen) == 1


def test_models_pickled_before_views_read_the_normalized_text():
    normalized = ["客服不专业", "很好"]
    featurizer = TextFeaturizer(bits=12, min_df=1).fit(normalized)
    coef = np.random.default_rng(0).normal(size=(3, featurizer.n_features))
    model = LinearTextModel("sentiment", ("neg", "neu", "pos"), TextNormalizer(), featurizer, coef, np.zeros(3),
                            empty_label="neu", view=TextView())
    old = pickle.loads(pickle.dumps(model))
    del old.__dict__["view"]  # as unpickled from a version without the attribute
    assert old.view is None
    np.testing.assert_allclose(old.logits(normalized), featurizer.transform(normalized) @ old.coef, atol=1e-6)
    assert not np.allclose(model.logits(normalized), old.logits(normalized))  # the view changed what is read
