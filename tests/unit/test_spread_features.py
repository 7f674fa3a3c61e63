"""Spread features and baselines: the memory kernel, SEISMIC on a cascade with known parameters, and the defined
behaviour for empty, unordered and impossible cascades."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from features.contracts import ContractError
from features.spread_baselines import fit_log_linear, log_linear_forecast, naive_forecast
from features.spread_features import (
    FEATURE_GROUPS,
    KERNEL,
    Kernel,
    cascade_events,
    cascade_outcomes,
    early_features,
    seismic_forecast,
)

CREATED = pd.Timestamp("2025-03-01 09:00:00")


def post(post_id: str = "P1", followers: int = 2000, **extra) -> dict:
    return {"post_id": post_id, "created_at": CREATED, "channel": "weibo", "author_followers": followers,
            "internal": False, **extra}


def reposts(post_id: str, minutes, followers=None, regions=None) -> pd.DataFrame:
    minutes = np.asarray(minutes, dtype=float)
    return pd.DataFrame({
        "post_id": post_id,
        "timestamp": CREATED + pd.to_timedelta(minutes, unit="min"),
        "user_followers": np.full(len(minutes), 100) if followers is None else followers,
        "region": ["广东"] * len(minutes) if regions is None else regions,
    })


@pytest.mark.parametrize("kernel", [KERNEL, Kernel(s0_seconds=60.0, theta=0.8)])
def test_kernel_is_a_density_and_cdf_is_its_integral(kernel):
    s0 = kernel.s0_seconds
    total = integrate.quad(kernel.pdf, 0, s0)[0] + integrate.quad(kernel.pdf, s0, np.inf, limit=200)[0]
    assert total == pytest.approx(1.0, rel=1e-6)
    for s in (30.0, s0, 3600.0, 86400.0):
        assert kernel.cdf(s) == pytest.approx(integrate.quad(kernel.pdf, 0, s, points=[s0], limit=200)[0], rel=1e-6)
    assert kernel.cdf(1e15) == pytest.approx(1.0, abs=1e-3)
    shares = np.array([0.0, 0.05, kernel.c * s0, 0.5, 0.99])
    np.testing.assert_allclose(kernel.cdf(kernel.quantile(shares)), shares, atol=1e-12)


def _simulate(rng, p: float, author: float, marks: float, kernel: Kernel) -> np.ndarray:
    """Branching simulation of SEISMIC's own model: an event with n followers has Poisson(p·n) children, delayed
    by the kernel. Every reposter has `marks` followers, so the branching ratio is p·marks."""
    times, frontier = [], kernel.quantile(rng.random(rng.poisson(p * author)))
    while len(frontier):
        times.append(frontier)
        parents = np.repeat(frontier, rng.poisson(p * marks, len(frontier)))
        frontier = parents + kernel.quantile(rng.random(len(parents)))
    return np.sort(np.concatenate(times)) if times else np.zeros(0)


def test_seismic_recovers_infectiousness_and_final_size_of_a_simulated_cascade():
    rng = np.random.default_rng(7)
    branching, marks, author = 0.6, 200.0, 40_000.0
    p = branching / marks
    predictions, finals, p_hats = [], [], []
    for i in range(20):
        delays = _simulate(rng, p, author, marks, KERNEL)
        posts = pd.DataFrame([post(f"P{i}", int(author))])
        early = delays[delays <= 3600] / 60.0  # later delays can exceed what a timestamp can hold
        seen = reposts(f"P{i}", early, followers=np.full(len(early), int(marks)))
        features = early_features(posts, seen, 60, n_star=marks)
        p_hats.append(features["n_window"].iat[0] / features["exposure"].iat[0])
        predictions.append(seismic_forecast(features, n_star=marks, max_branching=0.99)[0])
        finals.append(len(delays))
    assert np.median(p_hats) == pytest.approx(p, rel=0.15)
    ratio = np.array(predictions) / np.array(finals)
    assert 0.8 < np.median(ratio) < 1.25  # the expected final size is exp(E log) within 20%
    assert np.all((ratio > 0.4) & (ratio < 2.5))  # and no single cascade is off by more than 2.5x


def test_seismic_caps_super_critical_cascades():
    posts = pd.DataFrame([post(followers=10)])
    features = early_features(posts, reposts("P1", np.linspace(1, 50, 40)), 60, n_star=600)
    assert features["n_window"].iat[0] / features["exposure"].iat[0] * 600 > 1  # super-critical estimate
    forecast = seismic_forecast(features, n_star=600, max_branching=0.9)[0]
    assert np.isfinite(forecast) and forecast > 40


def test_no_reposts_gives_defined_features():
    features = early_features(pd.DataFrame([post()]), reposts("P1", []), 60, n_star=600)
    row = features.iloc[0]
    assert row["n_window"] == 0 and row["regions_window"] == 0 and row["log_n_half"] == 0
    assert row["first_delay_log"] == pytest.approx(np.log1p(3600))
    assert seismic_forecast(features, 600)[0] == 0 and seismic_forecast(features, 1, constant_marks=True)[0] == 0
    groups = ("count", "dynamics", "kernel", "author", "time", "diurnal")
    defined = [c for g in groups for c in FEATURE_GROUPS[g] if c not in ("author_verified", "mean_rel_delay")]
    assert not features[defined].isna().any().any()
    assert np.isnan(row["author_verified"])  # the post does not say: unknown
    # shares over the reposts seen are undefined without reposts: NaN, not a zero that looks like data
    assert features[["followers_known", "tree_known", "regions_known", "mean_rel_delay"]].isna().all().all()
    empty = early_features(pd.DataFrame([post()]), pd.DataFrame(columns=["post_id", "timestamp"]), 60)
    pd.testing.assert_frame_equal(empty.drop(columns="seismic_log"), features.drop(columns="seismic_log"))


def test_unordered_timestamps_give_the_same_features_as_ordered():
    posts = pd.DataFrame([post("P1"), post("P2", 500)])
    events = pd.concat([reposts("P1", [3, 7, 7.5, 20, 44, 80], followers=[10, 20000, 5, 300, 70, 9],
                                regions=["广东", "上海", None, "广东", "北京", "四川"]),
                        reposts("P2", [1, 59])], ignore_index=True)
    ordered = early_features(posts, events, 60, n_star=600)
    shuffled = early_features(posts, events.sample(frac=1.0, random_state=3), 60, n_star=600)
    pd.testing.assert_frame_equal(ordered, shuffled)
    assert ordered["n_window"].tolist() == [5, 2]  # the 80-minute repost is outside the window
    assert ordered["regions_window"].tolist() == [3, 1]
    assert ordered["high_follower_share"].iat[0] == pytest.approx(1 / 5)


def test_repost_before_its_post_is_a_contract_error_naming_row_and_field():
    events = reposts("P1", [5, -2, 10])
    with pytest.raises(ContractError) as caught:
        early_features(pd.DataFrame([post()]), events, 60)
    assert [(e.row, e.field) for e in caught.value.errors] == [(1, "timestamp")]
    assert "早于原帖" in str(caught.value)


def test_reposts_of_other_posts_are_ignored_and_outcomes_count_to_the_horizon():
    posts = pd.DataFrame([post()])
    stream = pd.concat([reposts("P1", [1, 2, 30, 23 * 60, 25 * 60]), reposts("OTHER", [1])], ignore_index=True)
    outcome = cascade_outcomes(posts, cascade_events(posts, stream), horizon_hours=24, threshold=3).iloc[0]
    assert outcome["final"] == 4 and outcome["time_to_threshold_min"] == pytest.approx(30)
    assert early_features(posts, stream, 60)["n_window"].iat[0] == 3


def test_naive_and_log_linear_forecasts_use_the_coefficients_of_their_window():
    features = pd.DataFrame({"window_min": [30.0, 60.0, 45.0], "n_window": [10.0, 10.0, 10.0]})
    forecast = naive_forecast(features, {30.0: 4.0, 60.0: 2.0})
    assert forecast[:2].tolist() == [40.0, 20.0]
    assert 20.0 < forecast[2] < 40.0
    log_linear = log_linear_forecast(features, {30.0: (1.0, 1.0), 60.0: (0.5, 1.0)})
    np.testing.assert_allclose(np.log1p(log_linear[:2]), np.log1p(10.0) + np.array([1.0, 0.5]))
    rng = np.random.default_rng(0)
    count = rng.integers(0, 500, 400).astype(float)
    final = np.expm1(1.2 + 0.8 * np.log1p(count) + rng.normal(0, 0.02, 400))
    a, b = fit_log_linear(count, final)
    assert a == pytest.approx(1.2, abs=0.05) and b == pytest.approx(0.8, abs=0.02)


def test_a_window_per_post_gives_each_post_the_features_of_its_own_window():
    """The service forecasts a batch of posts each observed for a different time, in one call."""
    posts = pd.DataFrame([post("P1"), post("P2", followers=90_000), post("P3", followers=10)])
    events = pd.concat([reposts("P1", [1, 4, 9, 25, 50, 70], followers=[10, 5000, 30, 100, 100, 100]),
                        reposts("P2", np.linspace(0.5, 100, 40), regions=["广东", "上海"] * 20),
                        reposts("P3", [])])
    windows = np.array([30.0, 90.0, 15.0])
    together = early_features(posts, events, windows, n_star=400.0)
    for i, window in enumerate(windows):
        alone = early_features(posts, events, float(window), n_star=400.0).iloc[[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(together.iloc[[i]].reset_index(drop=True), alone)
    assert together["window_min"].tolist() == windows.tolist()
    assert together["n_window"].tolist() == [4.0, 36.0, 0.0]


@pytest.mark.parametrize("windows, message", [([30.0, 60.0], "每个帖子一个数"), ([30.0, 0.0, 60.0], "正数"),
                                              ([30.0, np.nan, 60.0], "正数")])
def test_bad_per_post_windows_are_refused(windows, message):
    posts = pd.DataFrame([post("P1"), post("P2"), post("P3")])
    with pytest.raises(ValueError, match=message):
        early_features(posts, reposts("P1", [1, 2]), np.array(windows))
