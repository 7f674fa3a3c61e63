"""Early-window features of repost cascades, the SEISMIC and naive-growth baselines, and the fitted forecaster.

One vectorized function (`early_features`) serves training, the batch CLI and the API: the service calls it with
one post and whatever reposts have arrived so far, so a forecast simply updates as more events come in. Inference
code lives here (not in training/) so that serving can unpickle `SpreadModel` without importing training.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contracts import LOSS_TYPES, POST_CHANNELS, ContractError, RowError

HIGH_FOLLOWER = 10_000  # a reposter with this many followers is an amplifier
SUB_WINDOWS = 6
MAX_REPORTED_ERRORS = 20


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

FEATURE_COLUMNS = [
    "window_min", "log_n_window", *[f"count_w{i}" for i in range(SUB_WINDOWS)], "acceleration", "last_share",
    "gap_mean_log", "gap_min_log", "since_last_log", "followers_sum_log", "followers_max_log",
    "high_follower_share", "regions_window", "author_followers_log", "hour", "channel_code", "internal",
    "exposure_log", "remaining_log", "infectiousness_log", "seismic_log", "p_neg", "loss_code",
]
CATEGORICAL_COLUMNS = ["channel_code", "loss_code"]


# ------------------------------------------------------------------------------------------------- events
def cascade_events(posts: pd.DataFrame, reposts: pd.DataFrame) -> pd.DataFrame:
    """Reposts as (post position, delay s, followers, region), sorted by post and delay.

    Unordered input is sorted here, so feature values never depend on row order. Reposts of posts not in `posts`
    are left out (a repost stream covers many posts); one with no parseable time or earlier than its post is the
    caller's data error: ContractError names the row (position in `reposts`) and the field.
    """
    created = pd.Series(pd.to_datetime(posts["created_at"]).to_numpy(), index=posts["post_id"].to_numpy())
    if not created.index.is_unique:
        duplicated = created.index[created.index.duplicated()][0]
        raise ContractError("Post", [RowError(int(np.flatnonzero(posts["post_id"].to_numpy() == duplicated)[1]),
                                              "post_id", f"重复的帖子 ID {duplicated!r}")])
    if reposts is None or len(reposts) == 0:
        return pd.DataFrame({"post": np.zeros(0, np.int64), "delay": np.zeros(0), "followers": np.zeros(0),
                             "region": pd.Series([], dtype=object)})
    post = created.index.get_indexer(reposts["post_id"].to_numpy(dtype=object))
    known = np.flatnonzero(post >= 0)
    post = post[known].astype(np.int64)
    stamps = pd.to_datetime(reposts["timestamp"].iloc[known], errors="coerce").to_numpy()
    delay = (stamps - created.to_numpy()[post]) / np.timedelta64(1, "s")
    errors = [RowError(int(row), "timestamp", f"无法解析的时间 {reposts['timestamp'].iloc[row]!r}")
              for row in known[np.isnan(delay)][:MAX_REPORTED_ERRORS]]
    errors += [RowError(int(row), "timestamp", f"转发时间 {reposts['timestamp'].iloc[row]} 早于原帖发布")
               for row in known[delay < 0][:MAX_REPORTED_ERRORS]]
    if errors:
        raise ContractError("Repost", errors)
    region = reposts["region"].to_numpy(dtype=object)[known] if "region" in reposts else np.full(len(known), None)
    order = np.lexsort((delay, post))  # stable: equal times keep their input order
    return pd.DataFrame({"post": post[order], "delay": delay[order],
                         "followers": reposts["user_followers"].to_numpy(dtype=float)[known][order],
                         "region": region[order]})


def _group_starts(post: np.ndarray, n_posts: int) -> np.ndarray:
    """Index of each post's first event in a post-sorted event array (len n_posts + 1, CSR style)."""
    return np.searchsorted(post, np.arange(n_posts + 1))


# ----------------------------------------------------------------------------------------------- features
def early_features(
    posts: pd.DataFrame,
    reposts: pd.DataFrame,
    window_minutes: float | np.ndarray,
    *,
    text_scores: pd.DataFrame | None = None,
    n_star: float | None = None,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row of features per post (in `posts` order) from the reposts seen in [created_at, created_at + window].

    window_minutes: one window for every post, or one per post (the service forecasts a batch of posts, each
    observed for as long as it has existed).

    posts: post_id, created_at, channel, author_followers, internal (+ optional p_neg, loss_type).
    reposts: post_id, timestamp, user_followers, region. Later events are ignored; a post with no reposts gets a
    defined empty window (zero counts, gaps equal to the window). text_scores: optional p_neg / loss_type per
    post_id from the text model, overriding the posts' own columns. n_star: SEISMIC's mean reposter followers;
    without it the SEISMIC columns are left NaN. events: `cascade_events(posts, reposts)`, to reuse across windows.
    """
    posts = posts.reset_index(drop=True)
    n = len(posts)
    window_min = post_windows(window_minutes, n)
    window_s = window_min * 60.0
    events = cascade_events(posts, reposts) if events is None else events
    events = events[events["delay"].to_numpy() <= window_s[events["post"].to_numpy()]]
    idx, delay = events["post"].to_numpy(), events["delay"].to_numpy()
    followers = events["followers"].to_numpy()
    event_window_s = window_s[idx]
    starts = _group_starts(idx, n)
    count = np.diff(starts).astype(float)
    has = count > 0
    safe = np.maximum(count, 1.0)

    sub = np.minimum((delay / event_window_s * SUB_WINDOWS).astype(np.int64), SUB_WINDOWS - 1)
    sub_counts = np.bincount(idx * SUB_WINDOWS + sub, minlength=n * SUB_WINDOWS).reshape(n, SUB_WINDOWS)
    half = SUB_WINDOWS // 2
    previous = np.concatenate([[0.0], delay[:-1]])
    previous[starts[:-1][has]] = 0.0  # the first gap of a cascade is measured from the post itself
    gaps = delay - previous
    gap_min = window_s.copy()
    np.minimum.at(gap_min, idx, gaps)
    last = np.where(has, delay[np.maximum(starts[1:] - 1, 0)] if len(delay) else 0.0, 0.0)
    follower_max = np.zeros(n)
    np.maximum.at(follower_max, idx, followers)
    regions = _regions_reached(idx, events["region"].to_numpy(dtype=object), n)

    author = posts["author_followers"].to_numpy(dtype=float)
    created = pd.to_datetime(posts["created_at"])
    # SEISMIC's sufficient statistics: N_t, every mark so far (the author's included), and N_t^e, each mark
    # weighted by the share of its memory kernel already elapsed.
    exposure = author * KERNEL.cdf(window_s) + np.bincount(idx, followers * KERNEL.cdf(event_window_s - delay),
                                                           minlength=n)
    marks = author + np.bincount(idx, followers, minlength=n)
    infectiousness = np.divide(count, exposure, out=np.zeros(n), where=exposure > 0)

    features = pd.DataFrame({
        "post_id": posts["post_id"].to_numpy(),
        "window_min": window_min,
        "n_window": count,
        "log_n_window": np.log1p(count),
        **{f"count_w{i}": sub_counts[:, i].astype(float) for i in range(SUB_WINDOWS)},
        "acceleration": (sub_counts[:, half:].sum(1) - sub_counts[:, :half].sum(1)).astype(float),
        "last_share": sub_counts[:, -1] / safe,
        "gap_mean_log": np.log1p(np.where(has, np.bincount(idx, gaps, minlength=n) / safe, window_s)),
        "gap_min_log": np.log1p(gap_min),
        "since_last_log": np.log1p(window_s - last),
        "followers_sum_log": np.log1p(marks - author),
        "followers_max_log": np.log1p(follower_max),
        "high_follower_share": np.bincount(idx, followers >= HIGH_FOLLOWER, minlength=n) / safe,
        "regions_window": regions,
        "author_followers": author,
        "author_followers_log": np.log1p(author),
        "hour": created.dt.hour.to_numpy(dtype=float),
        "channel_code": _codes(posts["channel"], CHANNEL_CODES),
        "internal": posts["internal"].astype(bool).to_numpy(dtype=float) if "internal" in posts else 0.0,
        "marks": marks,
        "exposure": exposure,
        "exposure_log": np.log1p(exposure),
        "remaining_log": np.log1p(np.maximum(marks - exposure, 0.0)),
        "infectiousness_log": np.log(infectiousness + 1e-9),
        "p_neg": posts["p_neg"].to_numpy(dtype=float) if "p_neg" in posts else np.nan,
        "loss_code": _loss_codes(posts["loss_type"]) if "loss_type" in posts else -1.0,
    })
    if text_scores is not None and n:
        # first score of each post_id, looked up by position (a pandas map costs ms per call: /assess runs this
        # once per batch)
        ids = text_scores["post_id"].to_numpy(dtype=object)
        first = ~pd.Index(ids).duplicated()
        where = pd.Index(ids[first]).get_indexer(features["post_id"].to_numpy(dtype=object))
        found = where >= 0
        if "p_neg" in text_scores:
            p_neg = text_scores["p_neg"].to_numpy(dtype=float)[first]
            features["p_neg"] = np.where(found, p_neg[np.maximum(where, 0)] if len(p_neg) else np.nan, np.nan)
        if "loss_type" in text_scores:
            loss = text_scores["loss_type"].to_numpy(dtype=object)[first]
            features["loss_code"] = np.where(found, _loss_codes(loss)[np.maximum(where, 0)] if len(loss) else -1.0,
                                             -1.0)
    features["seismic_log"] = np.log1p(seismic_forecast(features, n_star)) if n_star else np.nan
    return features


def post_windows(window_minutes: float | np.ndarray, n_posts: int) -> np.ndarray:
    """The observation window of each post, in minutes: one value for all, or one per post; positive, finite."""
    windows = np.asarray(window_minutes, dtype=float)
    if windows.ndim == 0:
        windows = np.full(n_posts, float(windows))
    elif windows.shape != (n_posts,):
        raise ValueError(f"window_minutes 应为一个数或每个帖子一个数 ({n_posts} 个), 实为 {windows.shape[0]} 个")
    if not np.isfinite(windows).all() or (windows <= 0).any():
        bad = windows[~(np.isfinite(windows) & (windows > 0))][0]
        raise ValueError(f"window_minutes 应为正数, 实为 {bad!r}")
    return windows


CHANNEL_CODES = {c: float(i) for i, c in enumerate(POST_CHANNELS)}
LOSS_CODES = {t: float(i) for i, t in enumerate(LOSS_TYPES)}


def _codes(values, codes: dict[str, float]) -> np.ndarray:
    """Category → code, -1 for anything unknown or missing (a dict lookup: pandas' map costs ms per call)."""
    return np.fromiter((codes.get(v, -1.0) if isinstance(v, str) else -1.0
                        for v in np.asarray(values, dtype=object)), dtype=float, count=len(values))


def _loss_codes(values) -> np.ndarray:
    return _codes(values, LOSS_CODES)


def _regions_reached(post: np.ndarray, region: np.ndarray, n_posts: int) -> np.ndarray:
    """Distinct non-missing regions among each post's events."""
    known = pd.notna(region)
    if not known.any():
        return np.zeros(n_posts)
    codes, uniques = pd.factorize(region[known])
    pairs = np.unique(post[known].astype(np.int64) * len(uniques) + codes)
    return np.bincount(pairs // len(uniques), minlength=n_posts).astype(float)


# ---------------------------------------------------------------------------------------------- baselines
def seismic_forecast(features: pd.DataFrame, n_star: float, alpha: float = 1.0, gamma: float = 1.0,
                     max_branching: float = 0.95) -> np.ndarray:
    """SEISMIC's final-size prediction (Zhao et al., KDD 2015), from `early_features` columns.

    p̂_t = R_t / N_t^e is the maximum-likelihood infectiousness for a constant p, N_t^e = Σ_i n_i ∫_0^{t−t_i} φ
    over the post and the reposts so far (the paper's time-varying estimate reduces to it with a flat weighting
    kernel; the generator's p is constant per cascade, so this is the efficient choice), and
    R̂_∞ = R_t + α p̂_t (N_t − N_t^e) / (1 − γ p̂_t n*): the reposts the existing marks will still trigger,
    each followed by a geometric series of descendants of mean degree n*. α = γ = 1 is the untrained formula; the
    paper fits α_t, γ_t per observation time. For γ p̂_t n* ≥ 1 (super-critical) the paper's answer is ∞: we cap
    the branching factor at `max_branching` so the forecast stays finite.
    """
    count = features["n_window"].to_numpy(dtype=float)
    exposure = features["exposure"].to_numpy(dtype=float)
    remaining = np.maximum(features["marks"].to_numpy(dtype=float) - exposure, 0.0)
    p_hat = np.divide(count, exposure, out=np.zeros(len(count)), where=exposure > 0)
    branching = np.minimum(gamma * p_hat * float(n_star), max_branching)
    return count + alpha * p_hat * remaining / (1.0 - branching)


def naive_forecast(features: pd.DataFrame, growth_ratios: dict[float, float]) -> np.ndarray:
    """Naive growth scaling (Szabo & Huberman 2010): final = count at T × the log-mean final/count(T) ratio
    measured on training cascades at the same T (interpolated in log T between the measured windows)."""
    windows = np.array(sorted(growth_ratios))
    log_ratio = np.log([growth_ratios[w] for w in windows])
    ratio = np.exp(np.interp(np.log(features["window_min"].to_numpy(dtype=float)), np.log(windows), log_ratio))
    return features["n_window"].to_numpy(dtype=float) * ratio


# ------------------------------------------------------------------------------------------------ outcome
def cascade_outcomes(posts: pd.DataFrame, reposts: pd.DataFrame, horizon_hours: float, threshold: int,
                     events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Truth per post at the horizon: final count, reach (author + reposters' followers), provinces reached,
    and the minute the count passed `threshold` (NaN if it did not)."""
    posts = posts.reset_index(drop=True)
    n = len(posts)
    events = cascade_events(posts, reposts) if events is None else events
    events = events[events["delay"].to_numpy() <= horizon_hours * 3600.0]
    idx = events["post"].to_numpy()
    count = np.bincount(idx, minlength=n)
    regions = events.dropna(subset=["region"]).drop_duplicates(["post", "region"])["post"].to_numpy()
    return pd.DataFrame({
        "post_id": posts["post_id"].to_numpy(),
        "final": count.astype(float),
        "reach": posts["author_followers"].to_numpy(dtype=float)
        + np.bincount(idx, events["followers"].to_numpy(), minlength=n),
        "regions": np.bincount(regions, minlength=n).astype(float),
        "time_to_threshold_min": threshold_crossing(events, n, threshold, horizon_hours * 60.0),
    })


def threshold_crossing(events: pd.DataFrame, n_posts: int, threshold: int,
                       within_minutes: float | np.ndarray) -> np.ndarray:
    """Minute each post's count passed `threshold` within the first `within_minutes` (one value, or one per post),
    NaN where it did not."""
    delay = events["delay"].to_numpy()
    starts = _group_starts(events["post"].to_numpy(), n_posts)
    nth = starts[:-1] + threshold - 1
    reached = nth < starts[1:]
    minutes = np.full(n_posts, np.nan)
    minutes[reached] = delay[nth[reached]] / 60.0
    return np.where(minutes <= within_minutes, minutes, np.nan)


# -------------------------------------------------------------------------------------------------- model
def _predict(booster, X: np.ndarray) -> np.ndarray:
    """One thread: LightGBM's default thread pool costs ~15 ms per call, 40x the prediction of one post."""
    return booster.predict(X, num_threads=1)


@dataclass
class SpreadModel:
    """Fitted forecaster: quantile boosters for log1p(final) with conformal widening, a point booster for MSLE,
    reach and provinces models, and a typical growth curve for the time to pass the threshold. Any elapsed time
    works: the boosters were trained on several early windows with the window length as a feature."""

    horizon_hours: float
    threshold: int
    n_star: float  # mean reposter followers in training cascades (SEISMIC's n*, also a feature)
    quantiles: dict  # {0.1: booster, 0.5: booster, 0.9: booster} on log1p(final) − log1p(observed); lgb.Booster
    point_model: object  # E[log1p(final) − log1p(observed)]: the point forecast that minimises MSLE
    reach_model: object  # log1p(final reach) − log1p(reach so far)
    regions_model: object  # provinces reached by the horizon
    growth_curve: np.ndarray  # median share of the final count reached by each minute since the post
    window_minutes: float = 60.0  # default elapsed time when the caller gives none
    # conformal widening (log1p units) of [P10, P90], per (window, has reposts yet); see training.spread.calibrate
    widen: dict = field(default_factory=dict)

    def raw_interval(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P10, P50, P90) of log1p(final) before conformal widening, never below the count already seen."""
        return self._interval(features[FEATURE_COLUMNS].to_numpy(dtype=float), np.log1p(features["n_window"]))

    def _interval(self, X: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q10, q50, q90 = (np.maximum(_predict(self.quantiles[q], X), 0.0) for q in (0.1, 0.5, 0.9))
        return base + np.minimum(q10, q50), base + q50, base + np.maximum(q90, q50)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        X = np.column_stack([features[c].to_numpy(dtype=float) for c in FEATURE_COLUMNS])  # cheaper than a frame
        observed = features["n_window"].to_numpy(dtype=float)
        window = features["window_min"].to_numpy(dtype=float)
        base = np.log1p(observed)
        q10, q50, q90 = self._interval(X, base)
        widen = self.widening(window, observed > 0)
        q10, q90 = np.minimum(np.maximum(q10 - widen, base), q50), np.maximum(q90 + widen, q50)
        point = np.clip(base + np.maximum(_predict(self.point_model, X), 0.0), q10, q90)
        done = window >= self.horizon_hours * 60.0  # at the horizon the count is a fact, not a forecast
        q10, q50, q90, point = (np.where(done, base, q) for q in (q10, q50, q90, point))
        reach_now = features["marks"].to_numpy(dtype=float)
        reach_growth = np.maximum(_predict(self.reach_model, X), 0.0)
        reach = np.where(done, reach_now, np.exp(np.log1p(reach_now) + reach_growth) - 1.0)
        regions = np.where(done, features["regions_window"],
                           np.maximum(_predict(self.regions_model, X), features["regions_window"].to_numpy()))
        p50 = np.expm1(q50)
        return pd.DataFrame({
            "post_id": features["post_id"].to_numpy(),
            "window_minutes": window,
            "observed": observed,
            "forecast": np.expm1(point),
            "p10": np.expm1(q10), "p50": p50, "p90": np.expm1(q90),
            "time_to_threshold_min": self.time_to_threshold(observed, p50, window),
            "reach": reach,
            "regions": np.round(regions, 1),
        })

    def widening(self, window: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Conformal widening for each row, interpolated in log window between the calibrated windows."""
        out = np.zeros(len(window))
        for flag in (False, True):
            grid = sorted(w for w, a in self.widen if a == flag)
            rows = active == flag
            if grid:
                out[rows] = np.interp(np.log(window[rows]), np.log(grid), [self.widen[(w, flag)] for w in grid])
        return out

    def time_to_threshold(self, observed: np.ndarray, final: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
        """Minute the count is expected to pass the threshold: the remaining growth (final − observed) is spread
        over the minutes after `elapsed` like the typical cascade's; NaN if the P50 stays below it."""
        curve = self.growth_curve
        start = np.clip(elapsed.astype(np.int64), 0, len(curve) - 1)
        need = (self.threshold - observed) / np.maximum(final - observed, 1e-9)
        target = curve[start] + need * (1.0 - curve[start])
        minute = np.searchsorted(curve, target, side="left").astype(float)
        minute = np.clip(np.maximum(minute, elapsed), 0, len(curve) - 1)
        return np.where((final >= self.threshold) & (observed < self.threshold), minute, np.nan)

    def features(self, posts: pd.DataFrame, reposts: pd.DataFrame, window_minutes: float | np.ndarray,
                 text_scores: pd.DataFrame | None = None, events: pd.DataFrame | None = None) -> pd.DataFrame:
        return early_features(posts, reposts, window_minutes, text_scores=text_scores, n_star=self.n_star,
                              events=events)

    def forecast(self, posts: pd.DataFrame, reposts: pd.DataFrame, text_scores: pd.DataFrame | None = None,
                 window_minutes: float | np.ndarray | None = None) -> pd.DataFrame:
        """Forecast from the reposts seen in the first `window_minutes` (default: the training window; one value, or
        one per post); call again with more events and a longer window to update. A threshold already passed is
        reported as observed."""
        posts = posts.reset_index(drop=True)
        window = post_windows(self.window_minutes if window_minutes is None else window_minutes, len(posts))
        events = cascade_events(posts, reposts)
        result = self.predict_frame(self.features(posts, reposts, window, text_scores, events))
        seen = threshold_crossing(events, len(posts), self.threshold, window)
        result["time_to_threshold_min"] = np.where(np.isnan(seen), result["time_to_threshold_min"], seen)
        return result
