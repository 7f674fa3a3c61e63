"""Spike detection on planted feeds: recall, false spikes and delay as rates over many generated series, the
volume floors (1 -> 3 posts is no spike), and what must not alarm (a weekly peak, a company-wide shift)."""
from __future__ import annotations

import numpy as np
import pytest

from serving.monitoring.spikes import SpikeConfig, bucket_of_week, scan, spikes
from synthetic.monitoring import WARMUP_WEEKS, plant_series

CONFIG = SpikeConfig()
WEEKS = 10


@pytest.fixture(scope="module")
def planted():
    return [plant_series(np.random.default_rng(seed), 22, WEEKS, "2025-03-03", effects=False) for seed in (11, 12, 13)]


def _score(feed):
    """(hits, planted, delays in minutes, false spikes, series-days) over the weeks after the warm-up."""
    hits, total, delays, false, exposure = 0, 0, [], 0, 0
    since = WARMUP_WEEKS * 7 * 24 * CONFIG.buckets_per_hour
    for s in range(feed.negative.shape[0]):
        result = scan(feed.negative[s], CONFIG)
        found = spikes(result, CONFIG, since=since)
        matched = set()
        for spike in (p for p in feed.spikes if p["series"] == s):
            total += 1
            lo, hi = spike["start_bucket"], spike["end_bucket"] + CONFIG.merge_gap
            overlapping = [k for k, f in enumerate(found) if f.first <= hi and f.last >= lo]
            if overlapping:
                hits += 1
                matched.update(overlapping)
                first = lo + int(np.flatnonzero(result.alarm[lo:hi + 1])[0])
                delays.append((first + 1) * CONFIG.bucket_minutes - spike["start_minute"])
        false += len(found) - len(matched)
        exposure += (WEEKS - WARMUP_WEEKS) * 7
    return hits, total, delays, false, exposure


def test_planted_spikes_are_found_early_with_few_false_ones(planted):
    hits = total = false = exposure = 0
    delays: list[float] = []
    for feed in planted:
        h, t, d, f, e = _score(feed)
        hits, total, false, exposure = hits + h, total + t, false + f, exposure + e
        delays += d
    assert total >= 90, "the generator should plant enough spikes to measure a rate"
    assert hits / total >= 0.9
    assert false / (exposure / 30) <= 1.0  # per series per 30 days
    assert np.median(delays) <= 20


def test_one_to_three_posts_is_never_a_spike():
    """A steady trickle (one post per bucket, or one per hour) where a bucket now and then holds three: rare
    under the baseline, but the floors (count, excess, ratio) keep it silent."""
    rng = np.random.default_rng(5)
    per_hour = CONFIG.buckets_per_hour
    n = 6 * 7 * 24 * per_hour
    alarms = 0
    for every in (1, per_hour):
        for _ in range(20):
            counts = np.zeros(n, dtype=int)
            counts[::every] = 1
            bumps = np.arange(int(rng.integers(0, 2 * per_hour)), n, 2 * per_hour)
            counts[bumps - bumps % every] = 3
            alarms += int(scan(counts, CONFIG).alarm.sum())
    assert alarms == 0


def test_every_alarm_clears_the_floors():
    rng = np.random.default_rng(6)
    for _ in range(20):
        counts = rng.poisson(rng.uniform(0.1, 3.0), 3 * 7 * 24 * CONFIG.buckets_per_hour)
        counts[rng.integers(0, len(counts), 5)] += rng.integers(3, 30, 5)
        result = scan(counts, CONFIG)
        at = result.alarm
        assert np.all(result.observed[at] >= CONFIG.min_count)
        assert np.all(result.observed[at] - result.expected[at] >= CONFIG.min_excess)
        assert np.all(result.observed[at] >= CONFIG.min_ratio * result.expected[at])


def test_a_weekly_peak_is_the_baseline_not_a_spike():
    """Every Monday 9-11 brings five times the usual volume: after the first weeks it is expected."""
    rng = np.random.default_rng(8)
    per_hour, weeks = CONFIG.buckets_per_hour, 8
    n = weeks * 7 * 24 * per_hour
    hour_of_week = (np.arange(n) // per_hour) % 168
    rate = np.where((hour_of_week >= 9) & (hour_of_week < 11), 5.0, 1.0)
    series_alarms = []
    for _ in range(20):
        result = scan(rng.poisson(rate), CONFIG, start_bucket_of_week=0)
        series_alarms.append(int(result.alarm[WARMUP_WEEKS * 7 * 24 * per_hour:].sum()))
    assert np.mean(series_alarms) < 0.5


def test_a_company_wide_shift_is_absorbed_by_the_recent_level():
    """Volume up 30% for weeks (a busy season), a little at a time: no alarm once the level has caught up."""
    rng = np.random.default_rng(9)
    per_hour = CONFIG.buckets_per_hour
    n = 8 * 7 * 24 * per_hour
    day = np.arange(n) // (24 * per_hour)
    rate = 2.0 * np.where(day >= 35, 1.3, 1.0)
    alarms = [int(scan(rng.poisson(rate), CONFIG).alarm[36 * 24 * per_hour:].sum()) for _ in range(20)]
    assert np.mean(alarms) < 0.5


def test_without_a_full_week_the_recent_level_is_the_baseline():
    """Cold start: two days of history, then volume jumps tenfold; still found (flat baseline), still floored."""
    per_hour = CONFIG.buckets_per_hour
    rng = np.random.default_rng(2)
    found = 0
    for _ in range(20):
        counts = np.concatenate([rng.poisson(1.0, 2 * 24 * per_hour), rng.poisson(10.0, 6)])
        result = scan(counts, CONFIG)
        found += bool(result.alarm[-6:].any())
        assert result.weeks_used[-1] == 0
    assert found >= 18


def test_bucket_of_week_counts_from_monday():
    from datetime import datetime

    assert bucket_of_week(datetime(2026, 11, 23, 0, 0), 10) == 0  # a Monday
    assert bucket_of_week(datetime(2026, 11, 24, 1, 15), 10) == 24 * 6 + 7
