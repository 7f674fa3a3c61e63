"""The shared-work batch scorer gives each model's own figures, whatever views and bit widths the heads use."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.text import LinearTextModel, LossTypeModel, TextFeaturizer, TextNormalizer
from features.text_batch import TextBatchScorer
from features.text_scope import TextView

TEXTS = ["客服态度太差了，投诉三次都没人管", "虽然有点贵，但是很好吃", "并不是很专业",
         "//@小王:转发 http://t.cn/abc 不错。", "下周一全员大会", "公司福利很好", "没有不满意的地方",
         "星启科技又开始996了", "", "   ", "领导天天画大饼，不靠谱"]


def head(task: str, labels, normalizer, view, bits: int, seed: int) -> LinearTextModel:
    viewed = view(normalizer.batch(TEXTS)) if view is not None else normalizer.batch(TEXTS)
    featurizer = TextFeaturizer(bits=bits, min_df=1).fit(viewed)
    rng = np.random.default_rng(seed)
    return LinearTextModel(task, labels, normalizer, featurizer, rng.normal(size=(len(labels), featurizer.n_features)),
                           rng.normal(size=len(labels)), empty_label=labels[-1] if task != "sentiment" else "neu",
                           temperature=0.8, view=view)


@pytest.mark.parametrize("shared", [True, False])
def test_batch_scores_equal_each_models_own_with_mixed_views_and_bit_widths(shared):
    normalizer = TextNormalizer(["星启科技"])
    sentiment = head("sentiment", SENTIMENTS, normalizer, TextView(), 14, 0)
    inner = sentiment if shared else head("sentiment", SENTIMENTS, normalizer, TextView(), 13, 1)
    negative = tuple(t for t in LOSS_TYPES if t != "none")
    loss = LossTypeModel(inner, head("loss_type", negative, normalizer, TextView(), 12, 2),
                         head("event", ("none", "loss"), normalizer, TextView(scopes=()), 12, 3))
    function = head("function", TEXT_FUNCTIONS, normalizer, None, 12, 4)
    scorer = TextBatchScorer(sentiment, loss, function)
    assert scorer.fast and len(scorer.views) == 3  # marked, cleaned only, plain: each hashed once
    out = scorer.score(TEXTS)
    frame = pd.DataFrame({"text": TEXTS})
    expected = sentiment.predict_frame(frame)
    np.testing.assert_allclose(out[["p_neg", "p_neu", "p_pos"]], expected[["p_neg", "p_neu", "p_pos"]], atol=1e-5)
    assert out["label"].tolist() == expected["label"].tolist()
    assert out["loss_type"].tolist() == loss.predict_frame(frame)["loss_type"].tolist()
    assert out["function"].tolist() == function.predict_frame(frame)["function"].tolist()


def _models():
    normalizer = TextNormalizer(["星启科技"])
    sentiment = head("sentiment", SENTIMENTS, normalizer, TextView(), 14, 0)
    negative = tuple(t for t in LOSS_TYPES if t != "none")
    loss = LossTypeModel(sentiment, head("loss_type", negative, normalizer, TextView(), 12, 2),
                         head("event", ("none", "loss"), normalizer, TextView(scopes=()), 12, 3))
    return {"sentiment": sentiment, "loss_type": loss, "function": head("function", TEXT_FUNCTIONS, normalizer, None,
                                                                        12, 4)}


def test_probabilities_equal_each_models_predict_proba():
    models = _models()
    scorer = TextBatchScorer(models["sentiment"], models["loss_type"], models["function"])
    for name, proba in zip(("sentiment", "loss_type", "function"), scorer.probabilities(TEXTS), strict=True):
        np.testing.assert_allclose(proba, models[name].predict_proba(TEXTS), atol=1e-5, err_msg=name)


def test_models_the_shared_path_does_not_know_are_asked_one_by_one():
    class Fixed:
        """Not a linear text model (a transformer, say): only predict_proba."""
        def __init__(self, row):
            self.row = row

        def predict_proba(self, texts):
            return np.tile(self.row, (len(texts), 1))

    members = (Fixed([0.2, 0.3, 0.5]), Fixed([0.1, 0.9]), Fixed([1.0]))
    scorer = TextBatchScorer(*members)
    assert not scorer.fast
    for model, proba in zip(members, scorer.probabilities(["甲", "乙"]), strict=True):
        np.testing.assert_array_equal(proba, model.predict_proba(["甲", "乙"]))


def test_the_engine_answers_each_models_own_figures():
    """/assess and /sentiment batches share the work (features.text_batch) and still answer each model's own."""
    from types import SimpleNamespace

    from features.keywords import KeywordLibrary
    from features.modelio import LoadedModel
    from serving.engine import Engine

    models = _models()
    engine = Engine(models={name: LoadedModel(name, "1", f"models:/{name}@champion", model)
                            for name, model in models.items()},
                    keywords=KeywordLibrary.load(), policy=SimpleNamespace(), chart=None, store=None,
                    roster=pd.DataFrame())
    texts = [t for t in TEXTS if t.strip()] * 3
    scored = engine.score_texts(texts)
    own = {name: model.predict_proba(texts) for name, model in models.items()}
    for i, row in enumerate(scored):
        for name, answer in (("sentiment", row["label"]), ("loss_type", row["loss_type"]),
                             ("function", row["function"])):
            assert answer == models[name].labels[own[name][i].argmax()], (name, texts[i])
        expected = dict(zip(models["sentiment"].labels, own["sentiment"][i], strict=True))
        assert row["scores"] == pytest.approx(expected, abs=2e-4)
        assert row["function_confidence"] == pytest.approx(own["function"][i].max(), abs=2e-4)
