"""Spike detection on count series: is the latest window far above what this hour of the week usually brings?

Social-listening products alert on a volume spike (Meltwater's spike alerts, Brandwatch Signals); one post more
or less is noise, a department whose negative posts triple by the afternoon is not. The test, per bucket t:

1. Seasonal baseline: the counts of the same hour of the week over the past `weeks` weeks, trimmed (the largest
   week dropped when three or more are there, so last week's incident does not become this week's normal).
2. Recent level: observed / seasonal expectation over the last `level_hours`, ending `guard` buckets before t so
   a spike that has just begun does not raise its own baseline; shrunk towards 1 and clipped.
3. Expected count of each scanned window (the last 1, 2, 3, 6 buckets) = level x seasonal mean.
4. Tail probability under a negative binomial whose extra variance has two parts: the series' own overdispersion
   (estimated from its history, method of moments) and the uncertainty of a baseline built from few counts
   (the Poisson-gamma predictive: a baseline of S posts is worth about S observations).
5. An alarm needs p below alpha (Bonferroni over the windows) and the minimum-volume floors: at least
   `min_count` posts, `min_excess` above expected and `min_ratio` times expected, so 1 -> 3 posts is no spike.

Alarms within `merge_gap` buckets of each other are one spike. With no full week of history yet the baseline is
the recent level alone (flat), still under the floors. Pure numpy/scipy: the bench runs it over whole planted
series at once; the service runs the same function on each series' recent history.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import nbinom

WEEK_HOURS = 168


@dataclass(frozen=True)
class SpikeConfig:
    bucket_minutes: int = 10
    weeks: int = 4                    # seasonal lookback (same hour of the week)
    windows: tuple[int, ...] = (1, 2, 3, 6)  # scanned window lengths, in buckets
    level_hours: int = 24             # recent level measured over this span ...
    guard_buckets: int = 6            # ... ending this many buckets before the window
    level_shrink: float = 10.0        # pseudo-count pulling the level factor towards 1
    level_clip: tuple[float, float] = (0.4, 3.0)
    alpha: float = 1e-4               # per bucket, shared by the windows (Bonferroni)
    min_count: int = 6
    min_excess: float = 4.0
    min_ratio: float = 2.0
    dispersion_clip: tuple[float, float] = (3.0, 500.0)  # NB size per bucket
    prior_counts: float = 1.0         # added to a baseline's count when sizing its uncertainty
    prior_buckets: float = 6.0        # an hour's rate is shrunk towards the past week's mean by this many buckets
    merge_gap: int = 6                # alarms this close (buckets) belong to one spike
    min_history_buckets: int = 36     # no test before six hours of history: no baseline, no alarm

    @property
    def buckets_per_hour(self) -> int:
        if 60 % self.bucket_minutes:
            raise ValueError("bucket_minutes 应能整除 60")
        return 60 // self.bucket_minutes

    @property
    def history_buckets(self) -> int:
        """How much history a scan of the latest bucket needs."""
        return self.weeks * WEEK_HOURS * self.buckets_per_hour + self.buckets_per_hour


@dataclass(frozen=True)
class Scan:
    """Per bucket: the best window's observed and expected counts, its tail probability, and the alarm flag."""

    observed: np.ndarray
    expected: np.ndarray
    p_value: np.ndarray
    window: np.ndarray     # buckets in the window that gave the smallest p
    baseline: np.ndarray   # seasonal mean per bucket before the level factor (for reasons)
    level: np.ndarray      # recent-level factor per bucket
    weeks_used: np.ndarray
    alarm: np.ndarray


@dataclass(frozen=True)
class Spike:
    """One merged run of alarms: where it starts, its peak bucket and what was seen there."""

    first: int
    last: int
    peak: int
    observed: float
    expected: float
    p_value: float
    window: int
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.observed / max(self.expected, 1e-9)


def _rolling_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of x[t-w+1 .. t] (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(x, dtype=float)])
    ends = np.arange(1, len(x) + 1)
    return c[ends] - c[np.maximum(ends - w, 0)]


def _shift(x: np.ndarray, k: int, fill: float = np.nan) -> np.ndarray:
    """x delayed by k (out[t] = x[t-k])."""
    out = np.full(len(x), fill, dtype=float)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def seasonal_baseline(counts: np.ndarray, start_bucket_of_week: int, config: SpikeConfig
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket: the trimmed mean rate of the same hour of the week in past weeks, the counts behind it, and
    how many weeks were found. `start_bucket_of_week` is bucket 0's position in its week (aligns hours).

    An hour that was empty in every past week is not certain to stay empty: its rate is shrunk towards the past
    week's mean rate (`prior_buckets` buckets' worth), so a quiet night does not make two posts a spike."""
    per_hour = config.buckets_per_hour
    n = len(counts)
    offset = start_bucket_of_week % per_hour
    hour_of = (np.arange(n) + offset) // per_hour
    n_hours = int(hour_of[-1]) + 1 if n else 0
    hour_sum = np.bincount(hour_of, weights=counts, minlength=n_hours)
    hour_len = np.bincount(hour_of, minlength=n_hours).astype(float)
    past_sum = np.stack([_shift(hour_sum, k * WEEK_HOURS) for k in range(1, config.weeks + 1)])
    past_len = np.stack([_shift(hour_len, k * WEEK_HOURS, 0.0) for k in range(1, config.weeks + 1)])
    past_len[past_len < per_hour] = 0.0  # a partial hour at the start of the data is not a week's worth
    past_sum[past_len == 0] = np.nan
    weeks = np.sum(~np.isnan(past_sum), axis=0)
    total, length = np.nansum(past_sum, axis=0), past_len.sum(axis=0)
    trim = weeks >= 3
    if trim.any():  # drop each hour's largest week: a past incident does not set today's normal
        largest = np.nanargmax(np.where(np.isnan(past_sum), -np.inf, past_sum), axis=0)
        cols = np.arange(past_sum.shape[1])
        total = np.where(trim, total - np.nan_to_num(past_sum[largest, cols]), total)
        length = np.where(trim, length - past_len[largest, cols], length)
    week_n = WEEK_HOURS * per_hour
    week_mean = _shift(_rolling_sum(counts, week_n) / np.minimum(np.arange(1, n + 1), week_n), per_hour)
    prior = config.prior_buckets * np.nan_to_num(week_mean)
    total, length, weeks = total[hour_of], length[hour_of], weeks[hour_of]
    rate = np.where(length > 0, (total + prior) / (length + config.prior_buckets), np.nan)
    return rate, total + prior, weeks


def scan(counts: np.ndarray, config: SpikeConfig = SpikeConfig(), start_bucket_of_week: int = 0) -> Scan:
    """Score every bucket of one series (`counts[t]` = posts in bucket t, consecutive buckets)."""
    x = np.asarray(counts, dtype=float)
    n = len(x)
    per_hour = config.buckets_per_hour
    rate, base_counts, weeks = seasonal_baseline(x, start_bucket_of_week, config)

    level_n = config.level_hours * per_hour
    seen = np.isfinite(rate)
    # recent level: observed vs seasonal over [t-guard-level_n, t-guard)
    obs_recent = _shift(_rolling_sum(x, level_n), config.guard_buckets + 1, 0.0)
    exp_recent = _shift(_rolling_sum(np.where(seen, rate, 0.0), level_n), config.guard_buckets + 1, 0.0)
    both_recent = _shift(_rolling_sum(np.where(seen, x, 0.0), level_n), config.guard_buckets + 1, 0.0)
    len_recent = _shift(_rolling_sum(np.ones(n), level_n), config.guard_buckets + 1, 0.0)
    k = config.level_shrink
    level = np.clip((both_recent + k) / (exp_recent + k), *config.level_clip)
    # no seasonal slot yet: the recent level alone (a flat baseline), as uncertain as the counts behind it
    flat = np.where(len_recent > 0, obs_recent / np.maximum(len_recent, 1), np.nan)
    mean = np.where(seen, rate * level, flat)
    behind = np.where(seen, base_counts, obs_recent)

    dispersion = _dispersion(x, mean, config)
    best_p = np.ones(n)
    best = {"observed": np.zeros(n), "expected": np.zeros(n), "window": np.zeros(n, dtype=int)}
    alarm = np.zeros(n, dtype=bool)
    alpha = config.alpha / len(config.windows)
    for w in config.windows:
        observed = _rolling_sum(x, w)
        expected = _rolling_sum(np.nan_to_num(mean), w)
        valid = (_rolling_sum(np.isfinite(mean).astype(float), w) >= w) & (np.arange(n) >= config.min_history_buckets)
        # variance = mu + mu^2/(r w) (own overdispersion) + mu^2/(S + prior) (a baseline of S counts)
        inv_size = 1.0 / (dispersion * w) + 1.0 / (np.maximum(behind, 0) + config.prior_counts)
        size = 1.0 / inv_size
        mu = np.maximum(expected, 1e-6)
        p = np.ones(n)
        test = valid & (observed >= config.min_count)
        p[test] = nbinom.sf(observed[test] - 1, size[test], size[test] / (size[test] + mu[test]))
        fires = (test & (p < alpha) & (observed - expected >= config.min_excess)
                 & (observed >= config.min_ratio * expected))
        better = p < best_p
        best_p = np.where(better, p, best_p)
        for name, value in (("observed", observed), ("expected", expected), ("window", np.full(n, w))):
            best[name] = np.where(better, value, best[name])
        alarm |= fires
    return Scan(best["observed"], best["expected"], best_p, best["window"], np.where(seen, rate, flat), level,
                weeks, alarm)


def _dispersion(x: np.ndarray, mean: np.ndarray, config: SpikeConfig) -> float:
    """NB size per bucket by the method of moments: 1/r = sum((x-mu)^2 - mu) / sum(mu^2), clipped. The baseline's
    own noise inflates the residuals a little, which errs towards fewer alarms."""
    ok = np.isfinite(mean) & (mean > 0)
    if ok.sum() < 144:
        return config.dispersion_clip[1]
    mu, obs = mean[ok], x[ok]
    phi = np.sum((obs - mu) ** 2 - obs) / max(np.sum(mu ** 2), 1e-9)
    return float(np.clip(1.0 / phi if phi > 0 else np.inf, *config.dispersion_clip))


def spikes(result: Scan, config: SpikeConfig = SpikeConfig(), since: int = 0) -> list[Spike]:
    """Merge alarms (from bucket `since` on) into spikes; each reports its peak (smallest p) bucket."""
    hits = np.flatnonzero(result.alarm[since:]) + since
    out: list[Spike] = []
    run: list[int] = []
    for t in hits:
        if run and t - run[-1] > config.merge_gap:
            out.append(_spike(result, run))
            run = []
        run.append(int(t))
    if run:
        out.append(_spike(result, run))
    return out


def _spike(result: Scan, run: list[int]) -> Spike:
    peak = min(run, key=lambda t: result.p_value[t])
    return Spike(first=run[0], last=run[-1], peak=peak, observed=float(result.observed[peak]),
                 expected=float(result.expected[peak]), p_value=float(result.p_value[peak]),
                 window=int(result.window[peak]))


def bucket_of_week(moment, bucket_minutes: int) -> int:
    """Index of the bucket holding `moment` within its week (Monday 00:00 = 0), for aligning scans."""
    minutes = (moment.weekday() * 24 + moment.hour) * 60 + moment.minute
    return minutes // bucket_minutes
