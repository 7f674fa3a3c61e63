"""Effect evaluation on planted fixes: sign and interval coverage as rates over many generated effects, against
what a before/after comparison alone would claim; the share and rare-event contrasts on known cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from serving.monitoring.effects import did_rare, did_ratio, did_share, evaluate_counts, match_controls
from synthetic.monitoring import plant_series

DAY, WINDOW = 144, 14


def _window(values: np.ndarray, anchor: int, before: bool) -> np.ndarray:
    """Daily sums of the `WINDOW` whole days before `anchor` or from it (bucket index), oldest first."""
    edges = [(anchor - (i + 1) * DAY, anchor - i * DAY) for i in reversed(range(WINDOW))] if before else \
        [(anchor + i * DAY, anchor + (i + 1) * DAY) for i in range(WINDOW)]
    return np.stack([values[..., a:b].sum(axis=-1) for a, b in edges], axis=-1)


def planted_estimates(seeds) -> list[tuple[dict, dict]]:
    out = []
    for seed in seeds:
        feed = plant_series(np.random.default_rng(seed), 22, 12, "2025-01-06")
        for effect in feed.effects:
            s, created, resolved = effect["series"], effect["created_bucket"], effect["resolved_bucket"]
            busy = {e["series"] for e in feed.effects
                    if created - WINDOW * DAY <= e["resolved_bucket"] <= resolved + WINDOW * DAY}
            controls = [j for j in range(feed.negative.shape[0]) if j not in busy]
            arrays = {"total": feed.total, "negative": feed.negative, "reach": feed.reach}

            def both(values, created=created, resolved=resolved):
                return np.concatenate([_window(values, created, True), _window(values, resolved, False)], axis=-1)

            treated = {name: both(values[s]) for name, values in arrays.items()}
            pool = {name: both(values[controls]) for name, values in arrays.items()}
            result = evaluate_counts(treated, pool, slice(0, WINDOW), slice(WINDOW, 2 * WINDOW))
            out.append((effect, result))
    return out


@pytest.fixture(scope="module")
def estimates():
    return planted_estimates(range(2000, 2012))


def test_planted_effects_are_recovered_with_honest_intervals(estimates):
    assert len(estimates) >= 60
    real = [(e, r["negative"]) for e, r in estimates if e["size"] != 0]
    sign = np.mean([math.copysign(1, est.estimate) == math.copysign(1, e["size"]) for e, est in real])
    covered = np.mean([est.low <= e["size"] <= est.high for e, est in
                       ((e, r["negative"]) for e, r in estimates)])
    null = [r["negative"] for e, r in estimates if e["size"] == 0]
    assert sign >= 0.9
    assert covered >= 0.85
    assert np.mean([est.low <= 0 <= est.high for est in null]) >= 0.8  # fixes that did nothing are not credited


def test_the_share_and_reach_contrasts_point_the_same_way_as_volume(estimates):
    """A fix that cut negative posts by a quarter or more also cuts the negative share and reach, mostly."""
    strong = [r for e, r in estimates if e["size"] <= -0.25]
    assert np.mean([r["negative_share"].estimate < 0 for r in strong]) >= 0.8
    assert np.mean([r["reach"].estimate < 0 for r in strong]) >= 0.8


def test_controls_remove_a_shift_the_whole_company_went_through():
    """Everyone's negative volume rises 60% after the fix, the treated one's by 60% x 0.7: before/after alone says
    the fix made things worse; against the controls the estimate is the planted -30%."""
    rng = np.random.default_rng(1)
    days = 2 * WINDOW
    level = np.r_[np.ones(WINDOW), np.full(WINDOW, 1.6)]
    shocks = np.exp(rng.normal(0, 0.05, days))
    errors = []
    for _ in range(50):
        treated = rng.poisson(200 * level * shocks * np.r_[np.ones(WINDOW), np.full(WINDOW, 0.7)])
        controls = rng.poisson(150 * level * shocks, (6, days))
        effect = did_ratio("negative", treated[:WINDOW], treated[WINDOW:], controls.sum(0)[:WINDOW],
                           controls.sum(0)[WINDOW:])
        assert effect.naive > 0  # what a before/after comparison would report
        errors.append(effect.estimate - (-0.3))
    assert abs(np.mean(errors)) < 0.03


def test_share_and_rare_events_contrasts():
    rng = np.random.default_rng(3)
    total = np.full(2 * WINDOW, 400)
    neg = rng.binomial(total, np.r_[np.full(WINDOW, 0.3), np.full(WINDOW, 0.2)])
    control = rng.binomial(total, 0.3)
    share = did_share("negative_share", (neg[:WINDOW], total[:WINDOW]), (neg[WINDOW:], total[WINDOW:]),
                      (control[:WINDOW], total[:WINDOW]), (control[WINDOW:], total[WINDOW:]))
    assert share.low < -0.1 < share.high and share.scale == "difference"
    leavers = did_rare("leavers", (30, 10), (300, 300), (3000.0, 3000.0, 30000.0, 30000.0))
    assert leavers.high < 0 and -0.8 < leavers.estimate < -0.5


def test_too_few_days_gives_no_estimate_and_matching_prefers_comovement():
    assert did_ratio("negative", [1, 2], [1, 2], [1, 2], [1, 2]) is None
    base = np.sin(np.arange(14))
    candidates = np.vstack([np.exp(2 + base), np.exp(2 - base), np.full(14, 7.0)])
    assert match_controls(np.exp(3 + base), candidates, 1).tolist() == [0]
