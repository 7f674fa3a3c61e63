"""The behavioural suite's generator and scoring (training/behaviour.py), checked with scorers whose answers are
known; the models' rates are checked in tests/model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.loaders import load_workplace_corpus
from training import behaviour
from training.sentiment_data import WORKPLACE_TEST_PERCENT, bucket


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    texts = load_workplace_corpus()["text"]
    return behaviour.cases(behaviour.base_texts(texts[texts.map(bucket) < WORKPLACE_TEST_PERCENT]))


def test_hundreds_of_cases_per_capability_and_the_same_suite_every_time(cases):
    counts = cases.groupby("capability").size()
    assert set(counts.index) >= {"negation", "double_negation", "contrast", "intensity", "neutral_sensitive",
                                 "invariance:company", "invariance:person", "invariance:department",
                                 "invariance:traditional", "invariance:typo", "invariance:emoji",
                                 "invariance:punctuation"}
    assert (counts >= 200).all(), counts[counts < 200]
    texts = load_workplace_corpus()["text"]
    again = behaviour.cases(behaviour.base_texts(texts[texts.map(bucket) < WORKPLACE_TEST_PERCENT]))
    pd.testing.assert_frame_equal(cases, again)


def test_every_perturbation_changes_its_base_and_name_swaps_only_swap_names(cases):
    paired = cases[cases["kind"] != "mft"]
    assert (paired["text"] != paired["base"]).all()
    swaps = cases[cases["capability"] == "invariance:person"]
    for name in behaviour.PEOPLE[1:]:
        assert swaps["text"].str.contains(name).sum() == len(behaviour.NAME_TEMPLATES["person"])


def _oracle(cases: pd.DataFrame):
    """Answers every MFT/DIR case with its first accepted label (and the right direction), every base text with
    a fixed label: the suite must find no failure."""
    wanted = dict(zip(cases["text"], cases["ok"].map(lambda ok: ok[0] if isinstance(ok, tuple) else "neu"),
                      strict=True))
    sign = dict(zip(cases["text"], cases["sign"].fillna(0), strict=True))

    def score(texts):
        labels = np.array([wanted.get(t, "neu") for t in texts], dtype=object)
        return labels, np.array([sign.get(t, 0.0) for t in texts], dtype=float)

    return score


def test_an_oracle_passes_and_a_constant_neutral_model_fails_exactly_the_non_neutral_expectations(cases):
    rates = behaviour.rates(behaviour.run(_oracle(cases), cases))["rate"]
    assert (rates == 0).all(), rates[rates > 0]

    def neutral(texts):
        return np.full(len(texts), "neu", dtype=object), np.zeros(len(texts))

    result = behaviour.run(neutral, cases)
    expected = cases["ok"].map(lambda ok: isinstance(ok, tuple) and "neu" not in ok)
    assert (result["fail"] == expected).all()  # invariance holds trivially, intensity never moves
    assert behaviour.metrics(result)["behaviour_negation_fail_rate"] == pytest.approx(
        expected[cases["capability"] == "negation"].mean())


def test_an_intensifier_that_weakens_the_score_fails_even_with_the_right_label(cases):
    intensity = cases[cases["capability"] == "intensity"]
    intensity = pd.concat([intensity[intensity["sign"] > 0].head(20), intensity[intensity["sign"] < 0].head(20)])
    sign = dict(zip(intensity["text"], intensity["sign"], strict=True)) | dict(
        zip(intensity["base"], intensity["sign"], strict=True))
    strong = set(intensity["text"])

    def weaker(texts):  # right label and direction, but the strong text is 0.2 less polar than its base
        labels = np.array(["pos" if sign[t] > 0 else "neg" for t in texts], dtype=object)
        return labels, np.array([sign[t] * (0.3 if t in strong else 0.5) for t in texts])

    assert behaviour.run(weaker, intensity)["fail"].all()

    def stronger(texts):
        labels = np.array(["pos" if sign[t] > 0 else "neg" for t in texts], dtype=object)
        return labels, np.array([sign[t] * (0.45 if t in strong else 0.5) for t in texts])  # within tolerance

    assert not behaviour.run(stronger, intensity)["fail"].any()
