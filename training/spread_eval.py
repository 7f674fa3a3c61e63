"""Spread forecast evaluation: the baselines fitted on training cascades, held-out figures for ours and theirs on the
same cascades, and the fan chart.

Figures are MSLE in log2 units, mean (log2(1 + forecast) − log2(1 + truth))², at T = 30, 60 and 120 minutes, on
two populations: the cascades with at least one repost by T (`msle_*_T60`, the gate's; a post nobody has reposted
is not a cascade yet and SEISMIC and naive scaling both say 0 for it) and every test post (`msle_*_all_T60`).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.spread_baselines import fit_log_linear, log_linear_forecast, naive_forecast, seismic_forecast
from features.spread_features import Events, SpreadModel, cascade_outcomes

EVAL_WINDOWS = (30, 60, 120)
SEISMIC_ALPHAS = np.exp(np.linspace(np.log(0.01), np.log(3.0), 41))
SEISMIC_GAMMAS = np.linspace(0.0, 1.0, 21)
SEISMIC_CAPS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def msle_log2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((np.log2(1.0 + np.maximum(pred, 0.0)) - np.log2(1.0 + truth)) ** 2)) if len(truth) \
        else float("nan")


@dataclass
class Baselines:
    """What the baselines take from training cascades, per window: SEISMIC's correction factors α_t, γ_t and cap
    (with follower counts as marks when training had them, else every mark 1), the naive growth ratio, and the
    log-linear (Szabo–Huberman) coefficients fitted on all training posts and on the active ones."""

    n_star: float | None
    seismic: dict  # window -> (alpha, gamma, cap)
    growth_ratios: dict  # window -> ratio
    log_linear: dict = field(default_factory=dict)  # window -> (a, b), all training posts
    log_linear_active: dict = field(default_factory=dict)  # window -> (a, b), training posts with ≥ 1 repost by T

    @property
    def constant_marks(self) -> bool:
        return not self.n_star

    def seismic_params(self, window: float) -> tuple[float, float, float]:
        return self.seismic[min(self.seismic, key=lambda w: abs(w - window))]

    def to_json(self) -> dict:
        return {"n_star": self.n_star,
                "seismic_alpha_gamma_cap": {str(w): list(p) for w, p in self.seismic.items()},
                "naive_growth_ratios": {str(w): r for w, r in self.growth_ratios.items()},
                "log_linear": {str(w): list(p) for w, p in self.log_linear.items()},
                "log_linear_active": {str(w): list(p) for w, p in self.log_linear_active.items()}}

    @classmethod
    def from_json(cls, data: dict, n_star: float | None) -> Baselines:
        """From a run's calibration.json (versions before #18 logged only SEISMIC and naive: the rest is empty)."""
        def windows(key):
            return {float(w): tuple(p) if isinstance(p, list) else p for w, p in data.get(key, {}).items()}
        return cls(n_star=data.get("n_star", n_star), seismic=windows("seismic_alpha_gamma_cap"),
                   growth_ratios=windows("naive_growth_ratios"), log_linear=windows("log_linear"),
                   log_linear_active=windows("log_linear_active"))


def fit_baselines(table: pd.DataFrame, n_star: float | None) -> Baselines:
    """Fit every baseline on the training rows of each window.

    SEISMIC needs no training, but the paper scales its formula by α_t and γ_t learned per observation time, and
    its infinite answer for super-critical cascades needs a cap: a grid search of all three that minimises the
    training MSLE on cascades with ≥ 1 repost by T gives SEISMIC its best shot. The naive ratio is the log-mean of
    final/count(T) on those cascades; the log-linear fit is least squares of log(1+final) on log(1+count(T)).
    """
    constant = not n_star
    seismic, ratios, log_linear, log_linear_active = {}, {}, {}, {}
    for window, rows in table.groupby("window_min"):
        window = float(window)
        count, final = rows["n_window"].to_numpy(dtype=float), rows["final"].to_numpy(dtype=float)
        log_linear[window] = fit_log_linear(count, final)
        active = rows[count > 0]
        if not len(active):
            continue
        count, final = active["n_window"].to_numpy(dtype=float), active["final"].to_numpy(dtype=float)
        log_linear_active[window] = fit_log_linear(count, final)
        ratios[window] = float(np.exp(np.mean(np.log1p(final) - np.log1p(count))))
        truth = np.log2(1.0 + final)
        best = (np.inf, (1.0, 1.0, 0.95))
        for gamma, cap in itertools.product(SEISMIC_GAMMAS, SEISMIC_CAPS):
            growth = seismic_forecast(active, n_star, 1.0, gamma, cap, constant_marks=constant) - count
            errors = np.mean((np.log2(1.0 + count + np.outer(SEISMIC_ALPHAS, growth)) - truth) ** 2, axis=1)
            if errors.min() < best[0]:
                best = (float(errors.min()), (float(SEISMIC_ALPHAS[errors.argmin()]), float(gamma), float(cap)))
        seismic[window] = best[1]
    return Baselines(n_star=n_star, seismic=seismic, growth_ratios=ratios, log_linear=log_linear,
                     log_linear_active=log_linear_active)


def baseline_forecasts(features: pd.DataFrame, baselines: Baselines, window: float, active_fit: bool
                       ) -> dict[str, np.ndarray]:
    """Every baseline's forecast for the rows of one window; the log-linear fit of the population scored."""
    out = {}
    if baselines.growth_ratios:
        out["naive"] = naive_forecast(features, baselines.growth_ratios)
    coefficients = baselines.log_linear_active if active_fit else baselines.log_linear
    if coefficients:
        out["log_linear"] = log_linear_forecast(features, coefficients)
    if baselines.seismic:
        constant = baselines.constant_marks
        out["seismic_paper"] = seismic_forecast(features, baselines.n_star, constant_marks=constant)
        out["seismic"] = seismic_forecast(features, baselines.n_star, *baselines.seismic_params(window),
                                          constant_marks=constant)
    return out


def evaluate(model: SpreadModel, baselines: Baselines, posts: pd.DataFrame, events: Events,
             windows: Sequence[float] = EVAL_WINDOWS) -> dict[str, float]:
    """Held-out figures per window for `posts` (the test posts, with their `events`): ours beside every baseline
    on both populations, P10–P90 coverage, provinces and reach where the data has them, and the time to pass the
    threshold."""
    posts = posts.reset_index(drop=True)
    outcome = cascade_outcomes(posts, events, model.horizon_hours, model.threshold)
    truth = outcome["final"].to_numpy()
    metrics: dict[str, float] = {"n_test_posts": float(len(posts))}
    for window in windows:
        features = model.features(posts, None, window, events=events)
        ours = model.predict_frame(features)
        active = features["n_window"].to_numpy() > 0
        for suffix, rows in (("", active), ("_all", np.ones(len(posts), bool))):
            forecasts = {**baseline_forecasts(features, baselines, window, active_fit=not suffix),
                         "ours": ours["forecast"].to_numpy()}
            for name, forecast in forecasts.items():
                metrics[f"msle_{name}{suffix}_T{window}"] = msle_log2(forecast[rows], truth[rows])
        inside = (truth >= ours["p10"].to_numpy() - 1e-6) & (truth <= ours["p90"].to_numpy() + 1e-6)
        metrics[f"coverage_T{window}"] = float(inside[active].mean()) if active.any() else float("nan")
        metrics[f"coverage_all_T{window}"] = float(inside.mean())
        metrics[f"n_active_T{window}"] = float(active.sum())
        regions, reach = outcome["regions"].to_numpy(), outcome["reach"].to_numpy()
        known = active & np.isfinite(regions) & np.isfinite(ours["regions"].to_numpy())
        if known.any():
            metrics[f"regions_mae_T{window}"] = float(np.abs(ours["regions"].to_numpy() - regions)[known].mean())
        known = active & np.isfinite(reach) & np.isfinite(ours["reach"].to_numpy())
        if known.any():
            metrics[f"reach_msle_T{window}"] = msle_log2(ours["reach"].to_numpy()[known], reach[known])
        metrics.update(_threshold_figures(model, features, ours, outcome, baselines, window))
    return metrics


def _threshold_figures(model: SpreadModel, features: pd.DataFrame, ours: pd.DataFrame, outcome: pd.DataFrame,
                       baselines: Baselines, window: float) -> dict[str, float]:
    """Cascades that pass the threshold after T: did we see it coming (hit rate), how far off was the minute, and
    how often did we announce a crossing that never came (false alarms); the log-linear forecast through the same
    growth-curve rule beside ours."""
    out: dict[str, float] = {}
    crossing = outcome["time_to_threshold_min"].to_numpy()
    observed = features["n_window"].to_numpy(dtype=float)
    late = crossing > window
    never = (observed < model.threshold) & np.isnan(crossing)
    candidates = {"": ours["time_to_threshold_min"].to_numpy()}
    if baselines.log_linear:
        final = np.maximum(log_linear_forecast(features, baselines.log_linear), observed)
        candidates["_log_linear"] = model.time_to_threshold(observed, final, np.full(len(observed), float(window)))
    for suffix, predicted in candidates.items():
        if late.any():
            caught = late & np.isfinite(predicted)
            out[f"threshold_hit_rate{suffix}_T{window}"] = float(caught.sum() / late.sum())
            if caught.any():
                out[f"threshold_minutes_median_error{suffix}_T{window}"] = float(
                    np.median(np.abs(predicted[caught] - crossing[caught])))
        if never.any():
            out[f"threshold_false_alarm{suffix}_T{window}"] = float(np.isfinite(predicted[never]).mean())
    return out


def fan_chart(model: SpreadModel, posts: pd.DataFrame, reposts: pd.DataFrame, n: int = 6, title: str = ""):
    """Forecast fan for a few held-out cascades as more reposts arrive, beside the realised 24 h count."""
    import matplotlib.pyplot as plt  # the backend is left to the caller (inline in notebooks, Agg headless)

    from features.spread_features import cascade_events

    posts = posts.reset_index(drop=True)
    events = cascade_events(posts, reposts)
    truth = cascade_outcomes(posts, events, model.horizon_hours, model.threshold)["final"].to_numpy()
    order = np.flatnonzero(truth >= 5)
    order = order[np.argsort(truth[order], kind="stable")]
    chosen = order[np.linspace(0, len(order) - 1, min(n, len(order))).astype(int)] if len(order) else order
    windows = np.array([10, 20, 30, 45, 60, 90, 120, 180, 240, 360], dtype=float)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(4 * ((n + 1) // 2), 7), squeeze=False)
    for ax, row in zip(axes.ravel(), chosen, strict=False):  # fewer cascades than panels leaves some empty
        post = posts.iloc[[row] * len(windows)].assign(post_id=[f"{w}" for w in windows])
        mine = reposts[reposts["post_id"] == posts["post_id"].iat[row]]
        fan = model.forecast(post, pd.concat([mine.assign(post_id=f"{w}") for w in windows]), window_minutes=windows)
        ax.fill_between(windows, fan["p10"], fan["p90"], alpha=0.3, label="P10–P90")
        ax.plot(windows, fan["p50"], marker="o", label="P50")
        ax.plot(windows, fan["observed"], color="grey", label="observed")
        ax.axhline(truth[row], color="black", linestyle="--", label="24h actual")
        ax.set_yscale("symlog")
        ax.set_title(f"{str(posts['post_id'].iat[row])[:28]} ({posts['channel'].iat[row]})", fontsize=8)
        ax.set_xlabel("minutes observed")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
