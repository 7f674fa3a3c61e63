"""The baselines a spread forecast is judged against: SEISMIC's memory kernel and final-size formula, naive growth
scaling, and Szabo–Huberman's log-linear fit. Each reads the columns `early_features` computes, so the baselines
and our model see exactly the same early window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Kernel:
    """SEISMIC's memory kernel (Zhao et al., KDD 2015): φ(s) = c for 0 ≤ s ≤ s0, c·(s/s0)^-(1+θ) beyond.

    c is fixed by ∫φ = 1 (c·s0 + c·s0/θ = 1), so the infectiousness alone carries the scale. The defaults are the
    paper's values fitted on Twitter (s0 = 5 min, θ = 0.242), not the generator's, which SEISMIC does not know.
    """

    s0_seconds: float = 300.0
    theta: float = 0.242

    @property
    def c(self) -> float:
        return self.theta / (self.s0_seconds * (1.0 + self.theta))

    def pdf(self, seconds) -> np.ndarray:
        s = np.asarray(seconds, dtype=float)
        tail = self.c * (np.maximum(s, self.s0_seconds) / self.s0_seconds) ** -(1.0 + self.theta)
        return np.where(s < 0, 0.0, np.where(s <= self.s0_seconds, self.c, tail))

    def cdf(self, seconds) -> np.ndarray:
        """∫_0^s φ: the share of an event's eventual direct reposts that arrive within s seconds."""
        s = np.maximum(np.asarray(seconds, dtype=float), 0.0)
        flat = self.c * np.minimum(s, self.s0_seconds)
        beyond = (np.maximum(s, self.s0_seconds) / self.s0_seconds) ** -self.theta
        tail = self.c * self.s0_seconds / self.theta * (1.0 - beyond)
        return flat + tail

    def quantile(self, share) -> np.ndarray:
        """Inverse of `cdf`: the delay by which `share` (in [0, 1)) of an event's direct reposts have arrived."""
        u = np.asarray(share, dtype=float)
        flat = self.c * self.s0_seconds
        tail = self.s0_seconds * np.maximum(1.0 - (u - flat) * self.theta / flat, 1e-300) ** (-1.0 / self.theta)
        return np.where(u <= flat, u / self.c, tail)


KERNEL = Kernel()


def seismic_forecast(features: pd.DataFrame, n_star: float, alpha: float = 1.0, gamma: float = 1.0,
                     max_branching: float = 0.95, constant_marks: bool = False) -> np.ndarray:
    """SEISMIC's final-size prediction (Zhao et al., KDD 2015), from `early_features` columns.

    p̂_t = R_t / N_t^e is the maximum-likelihood infectiousness for a constant p, N_t^e = Σ_i n_i ∫_0^{t−t_i} φ
    over the post and the reposts so far, and R̂_∞ = R_t + α p̂_t (N_t − N_t^e) / (1 − γ p̂_t n*): the reposts the
    existing marks will still trigger, each followed by a geometric series of descendants of mean degree n*.
    α = γ = 1 is the untrained formula; the paper fits α_t, γ_t per observation time. For γ p̂_t n* ≥ 1
    (super-critical) the paper's answer is ∞: we cap the branching factor at `max_branching`.

    Without follower counts (a Weibo crawl has none) SEISMIC runs with `constant_marks`: every mark n_i = 1, the
    post's included, so p̂_t is a branching ratio per event and n* = 1 (the `exposure1`/`marks1` columns).
    """
    count = np.asarray(features["n_window"], dtype=float)
    suffix = "1" if constant_marks else ""
    exposure = np.asarray(features["exposure" + suffix], dtype=float)
    remaining = np.maximum(np.asarray(features["marks" + suffix], dtype=float) - exposure, 0.0)
    p_hat = np.divide(count, exposure, out=np.zeros(len(count)), where=exposure > 0)
    branching = np.minimum(gamma * p_hat * (1.0 if constant_marks else float(n_star)), max_branching)
    return count + alpha * p_hat * remaining / (1.0 - branching)


def naive_forecast(features: pd.DataFrame, growth_ratios: dict[float, float]) -> np.ndarray:
    """Naive growth scaling: final = count at T × the log-mean final/count(T) ratio measured on training cascades
    at the same T (interpolated in log T between the measured windows)."""
    return np.asarray(features["n_window"], dtype=float) * _by_window(features, growth_ratios, log=True)


def log_linear_forecast(features: pd.DataFrame, coefficients: dict[float, tuple[float, float]]) -> np.ndarray:
    """Szabo & Huberman (2010): log(1 + final) = a_T + b_T log(1 + count at T), (a_T, b_T) fitted by least squares
    on training cascades per T (interpolated linearly between the fitted windows)."""
    windows = np.array(sorted(coefficients))
    log_window = np.log(features["window_min"].to_numpy(dtype=float))
    a = np.interp(log_window, np.log(windows), [coefficients[w][0] for w in windows])
    b = np.interp(log_window, np.log(windows), [coefficients[w][1] for w in windows])
    return np.expm1(a + b * np.log1p(np.asarray(features["n_window"], dtype=float)))


def fit_log_linear(count: np.ndarray, final: np.ndarray) -> tuple[float, float]:
    """(a, b) of log(1 + final) = a + b log(1 + count) by ordinary least squares."""
    x, y = np.log1p(count), np.log1p(final)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(np.mean(y - x)) if len(x) else 0.0, 1.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def _by_window(features: pd.DataFrame, values: dict[float, float], log: bool) -> np.ndarray:
    windows = np.array(sorted(values))
    points = np.array([values[w] for w in windows], dtype=float)
    found = np.interp(np.log(features["window_min"].to_numpy(dtype=float)), np.log(windows),
                      np.log(points) if log else points)
    return np.exp(found) if log else found
