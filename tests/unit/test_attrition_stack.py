"""The attrition stack's blend: a part gets a weight only when it earns it on rows the weights were not fitted on,
and no part is ever weighted backwards."""
from __future__ import annotations

import numpy as np

from features.attrition_explain import FEATURE_ZH
from features.attrition_features import IBM_SPEC
from training.attrition import _stack


def _scores(n=1500, seed=0, tree_signal=0.0):
    rng = np.random.default_rng(seed)
    linear_truth, tree_truth = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.8 + 1.2 * linear_truth + tree_signal * tree_truth)))).astype(int)
    z_linear = 1.2 * linear_truth + rng.normal(scale=0.3, size=n)
    z_tree = 0.4 * linear_truth + tree_signal * tree_truth + rng.normal(scale=0.8, size=n)
    return np.column_stack([z_linear, z_tree]), y


def test_a_tree_that_only_echoes_the_linear_part_gets_no_weight():
    held_out, y = _scores(tree_signal=0.0)
    _, a, b = _stack(held_out, y, seed=1)
    assert a > 0 and b == 0.0


def test_a_tree_that_sees_what_the_linear_part_misses_keeps_its_weight():
    held_out, y = _scores(tree_signal=1.5)
    _, a, b = _stack(held_out, y, seed=1)
    assert a > 0 and b > 0


def test_weights_are_never_negative():
    held_out, y = _scores(tree_signal=0.0)
    flipped = held_out * np.array([1.0, -1.0])  # a tree part that ranks backwards
    for scores in (held_out, flipped):
        _, a, b = _stack(scores, y, seed=1)
        assert a >= 0 and b >= 0


def test_every_ibm_feature_has_a_chinese_label():
    assert not [c for c in IBM_SPEC.columns if c not in FEATURE_ZH]
