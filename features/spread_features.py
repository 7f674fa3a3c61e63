"""Early-window features of repost cascades and the fitted forecaster.

One vectorized function (`early_features`) serves training, the batch CLI and the API: the service calls it with
a batch of posts and whatever reposts have arrived so far, so a forecast simply updates as more events come in.
Inference code lives here (not in training/) so that serving can unpickle `SpreadModel` without importing training.

Every input beyond the post's time and its reposts' times is optional, because real feeds differ: a feature that
cannot be computed is NaN (LightGBM learns where NaN rows go) and its group has a `*_known` column saying how much
of the input was there, so the model is told what was missing instead of reading a zero that looks like data.
Every value is computed per post, never per batch, so a post gets the same forecast alone as in any batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contracts import LOSS_TYPES, POST_CHANNELS
from features.errors import Unavailable
from features.settings import settings
from features.spread_baselines import KERNEL, Kernel, log_linear_forecast, seismic_forecast  # noqa: F401
from features.spread_events import (  # noqa: F401 - re-exported: the feature code's one import point
    Events,
    cascade_events,
    cascade_outcomes,
    local_hours,
    regions_reached,
    threshold_crossing,
    utc_ns,
)

HIGH_FOLLOWER = 10_000  # a reposter with this many followers is an amplifier
RECENT_EVENTS = 10  # events in the "recent rate" estimate
DIURNAL_STEP_MIN = 5.0  # integration step of the activity profile

FEATURE_GROUPS = {
    "count": ["log_window", "log_n"],
    "dynamics": ["log_n_half", "log_n_quarter", "log_n_tenth", "log_last_tenth", "first_delay_log",
                 "since_last_log", "mean_rel_delay", "recent_rate_log", "accel_log"],
    # SEISMIC's statistics with every mark = 1: defined whatever the feed carries
    "kernel": ["exposure1_log", "remaining1_log", "branching1_log", "seismic1_log"],
    # reposters' follower counts (SEISMIC's marks): NaN where the feed has none (a Weibo crawl)
    "followers": ["followers_known", "followers_sum_log", "followers_max_log", "high_follower_share",
                  "exposure_log", "remaining_log", "infectiousness_log", "seismic_log"],
    "tree": ["tree_known", "share_direct", "max_depth", "max_children_log"],
    "reaction_text": ["reaction_text_known", "neg_share"],
    "post": ["p_neg", "loss_code", "post_len_log", "channel_code", "internal"],
    "author": ["author_followers_log", "author_followers_known", "author_verified"],
    "time": ["hour_local", "weekday_local"],
    "diurnal": ["act_obs", "act_next2h", "act_future_kernel", "log_n_per_act"],
    "regions": ["regions_known", "regions_window"],
}
FEATURE_COLUMNS = [column for columns in FEATURE_GROUPS.values() for column in columns]
CATEGORICAL_COLUMNS = ["channel_code", "loss_code"]
CHANNEL_CODES = {c: float(i) for i, c in enumerate(POST_CHANNELS)}
LOSS_CODES = {t: float(i) for i, t in enumerate(LOSS_TYPES)}
FLAT_PROFILE = np.ones(24)


# ----------------------------------------------------------------------------------------------- features
def early_features(
    posts: pd.DataFrame,
    reposts: pd.DataFrame | None,
    window_minutes: float | np.ndarray,
    *,
    text_scores: pd.DataFrame | None = None,
    n_star: float | None = None,
    events: Events | None = None,
    profile: np.ndarray | None = None,
    timezone: str | None = None,
) -> pd.DataFrame:
    """One row of features per post (in `posts` order) from the events seen in [created_at, created_at + window].

    window_minutes: one window for every post, or one per post (the service forecasts a batch of posts, each
    observed for as long as it has existed). posts: post_id, created_at; optional channel, author_followers,
    author_verified, internal, text, p_neg, loss_type. reposts: see `cascade_events` (or pass `events` to reuse
    them across windows). text_scores: p_neg / loss_type per post_id from the text models, overriding the posts'
    own columns. n_star: SEISMIC's mean reposter followers (the follower-based SEISMIC columns need it). profile:
    the platform's relative activity per local hour (training learns it); timezone: the audience's clock.
    """
    posts = posts.reset_index(drop=True)
    n = len(posts)
    window_min = post_windows(window_minutes, n)
    T = window_min * 60.0
    events = cascade_events(posts, reposts) if events is None else events
    seen = events.delay <= T[events.post]
    post, delay, T_event = events.post[seen], events.delay[seen], T[events.post[seen]]
    starts = np.searchsorted(post, np.arange(n + 1))
    count = np.diff(starts).astype(float)
    has = count > 0
    safe = np.maximum(count, 1.0)

    def per_post(values=None, where=None) -> np.ndarray:
        if where is None:
            return np.bincount(post, values, minlength=n)
        return np.bincount(post[where], None if values is None else values[where], minlength=n)

    def share(where) -> np.ndarray:
        return np.where(has, per_post(None, where) / safe, np.nan)

    first = np.where(has, delay[np.minimum(starts[:-1], max(len(delay) - 1, 0))] if len(delay) else 0.0, T)
    last = np.where(has, delay[np.maximum(starts[1:] - 1, 0)] if len(delay) else 0.0, 0.0)
    k = np.minimum(count, RECENT_EVENTS).astype(np.int64)
    kth = np.where(has, delay[np.maximum(starts[1:] - np.maximum(k, 1), 0)] if len(delay) else 0.0, 0.0)
    n_half = per_post(None, delay <= 0.5 * T_event)
    f: dict[str, np.ndarray] = {
        "post_id": posts["post_id"].to_numpy(),
        "window_min": window_min,
        "n_window": count,
        "log_window": np.log(window_min),
        "log_n": np.log1p(count),
        "log_n_half": np.log1p(n_half),
        "log_n_quarter": np.log1p(per_post(None, delay <= 0.25 * T_event)),
        "log_n_tenth": np.log1p(per_post(None, delay <= 0.1 * T_event)),
        "log_last_tenth": np.log1p(count - per_post(None, delay <= 0.9 * T_event)),
        "first_delay_log": np.log1p(first),
        "since_last_log": np.log1p(T - last),
        "mean_rel_delay": np.where(has, per_post(delay / T_event) / safe, np.nan),
        "recent_rate_log": np.log1p(k / ((T - kth) + 60.0) * 3600.0),  # per hour over the last k events' span
        "accel_log": np.log1p(count - n_half) - np.log1p(n_half),
    }
    # SEISMIC's sufficient statistics, N_t^e = Σ marks × the share of their kernel already elapsed: with every mark
    # 1 (always defined), and with the author's and reposters' follower counts where all of them are known.
    elapsed = KERNEL.cdf(T_event - delay)
    f["exposure1"] = KERNEL.cdf(T) + per_post(elapsed)
    f["marks1"] = 1.0 + count
    branching1 = count / f["exposure1"]
    f.update({
        "exposure1_log": np.log(f["exposure1"]),
        "remaining1_log": np.log1p(np.maximum(f["marks1"] - f["exposure1"], 0.0)),
        "branching1_log": np.log(branching1 + 1e-3),
        "seismic1_log": np.log1p(count + branching1 * np.maximum(f["marks1"] - f["exposure1"], 0.0)
                                 / (1.0 - np.minimum(branching1, 0.95))),
    })
    author = _numbers(posts, "author_followers")
    followers = events.followers[seen]
    known = np.isfinite(followers)
    n_known = per_post(None, known)
    complete = (n_known == count) & np.isfinite(author)
    with np.errstate(invalid="ignore", divide="ignore"):
        exposure = np.where(complete, author * KERNEL.cdf(T) + per_post(np.where(known, followers, 0.0) * elapsed),
                            np.nan)
        marks = np.where(complete, author + per_post(np.where(known, followers, 0.0)), np.nan)
        follower_max = np.zeros(n)
        np.maximum.at(follower_max, post[known], followers[known])
        f.update({
            "exposure": exposure, "marks": marks,
            "followers_known": share(known),
            "followers_sum_log": np.where(n_known > 0, np.log1p(per_post(np.where(known, followers, 0.0))), np.nan),
            "followers_max_log": np.where(n_known > 0, np.log1p(follower_max), np.nan),
            "high_follower_share": np.where(n_known > 0, per_post(None, known & (followers >= HIGH_FOLLOWER))
                                            / np.maximum(n_known, 1), np.nan),
            "exposure_log": np.log1p(exposure),
            "remaining_log": np.log1p(np.maximum(marks - exposure, 0.0)),
            "infectiousness_log": np.where(np.isnan(exposure), np.nan, np.log(
                np.divide(count, exposure, out=np.zeros(n), where=exposure > 0) + 1e-9)),
        })
    f.update(_tree(events, seen, post, n))
    scored = np.isfinite(events.p_neg[seen])
    n_scored = per_post(None, scored)
    f["reaction_text_known"] = share(scored)
    f["neg_share"] = np.where(n_scored > 0, per_post(np.where(scored, events.p_neg[seen], 0.0))
                              / np.maximum(n_scored, 1), np.nan)
    f.update(_post_columns(posts, text_scores))
    f["author_followers"] = author
    f["author_followers_known"] = np.isfinite(author).astype(float)
    f["author_followers_log"] = np.log1p(np.maximum(author, 0.0))
    created = events.created if events.created is not None else utc_ns(posts["created_at"])
    hours = local_hours(created, timezone or settings.audience_timezone)
    f["hour_local"] = np.floor(hours % 24.0)
    f["weekday_local"] = np.floor(hours / 24.0 + 3.0) % 7.0  # 1970-01-01 was a Thursday; 0 = Monday
    f.update(diurnal_features(hours % 24.0, window_min, FLAT_PROFILE if profile is None else profile))
    f["log_n_per_act"] = f["log_n"] - np.log(f["act_obs"])
    regions = events.region[seen]
    with_region = pd.notna(regions) if len(regions) else np.zeros(0, bool)
    f["regions_known"] = share(with_region)
    f["regions_window"] = np.where(~has | (per_post(None, with_region) > 0),
                                   regions_reached(post, regions, n), np.nan)
    if n_star:
        f["seismic_log"] = np.log1p(seismic_forecast(f, n_star))
    else:
        f["seismic_log"] = np.full(n, np.nan)
    ids = f.pop("post_id")
    # one float block (a dict of 70 arrays costs ms to consolidate; /assess builds this once per batch)
    features = pd.DataFrame(np.column_stack(list(f.values())) if n else np.zeros((0, len(f))), columns=list(f))
    features.insert(0, "post_id", ids)
    return features


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _tree(events: Events, seen: np.ndarray, post: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Depth and breadth from parent ids: the share of direct reactions among the events whose depth is known,
    the deepest chain and the largest hub (most reactions to one repost); NaN where no depth is known."""
    depth = events.depth[seen]
    known = np.isfinite(depth)
    n_known = np.bincount(post[known], minlength=n)
    deepest = np.zeros(n)
    np.maximum.at(deepest, post[known], depth[known])
    parent = events.parent[seen]
    children = np.bincount(parent[parent >= 0], minlength=len(events))  # per event of the whole batch
    hub = np.zeros(n)
    np.maximum.at(hub, events.post, children)
    count = np.bincount(post, minlength=n)
    tree = n_known > 0
    return {"tree_known": np.where(count > 0, n_known / np.maximum(count, 1), np.nan),
            "share_direct": np.where(tree, np.bincount(post[known], depth[known] == 1, minlength=n)
                                     / np.maximum(n_known, 1), np.nan),
            "max_depth": np.where(tree, deepest, np.nan),
            "max_children_log": np.where(tree, np.log1p(hub), np.nan)}


def _post_columns(posts: pd.DataFrame, text_scores: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """What the post itself says: its text's negativity, loss type and length, channel, internal, verified."""
    n = len(posts)
    p_neg = _numbers(posts, "p_neg")
    loss = _codes(posts["loss_type"], LOSS_CODES) if "loss_type" in posts else np.full(n, -1.0)
    if text_scores is not None and n:
        # first score of each post_id, looked up by position (a pandas map costs ms per call: /assess runs this
        # once per batch)
        ids = text_scores["post_id"].to_numpy(dtype=object)
        first = ~pd.Index(ids).duplicated()
        where = pd.Index(ids[first]).get_indexer(posts["post_id"].to_numpy(dtype=object))
        found = where >= 0
        if "p_neg" in text_scores:
            scores = text_scores["p_neg"].to_numpy(dtype=float)[first]
            p_neg = np.where(found, scores[np.maximum(where, 0)] if len(scores) else np.nan, np.nan)
        if "loss_type" in text_scores:
            labels = _codes(text_scores["loss_type"].to_numpy(dtype=object)[first], LOSS_CODES)
            loss = np.where(found, labels[np.maximum(where, 0)] if len(labels) else -1.0, -1.0)
    text = posts["text"].to_numpy(dtype=object) if "text" in posts else np.full(n, None, dtype=object)
    return {
        "p_neg": p_neg, "loss_code": loss,
        "post_len_log": np.fromiter((np.log1p(len(t)) if isinstance(t, str) else np.nan for t in text), float, n),
        "channel_code": _codes(posts["channel"], CHANNEL_CODES) if "channel" in posts else np.full(n, -1.0),
        "internal": _flags(posts, "internal"),
        "author_verified": _flags(posts, "author_verified"),
    }


def _flags(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A yes/no column as 1/0, NaN where missing."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    return np.fromiter((float(v) if isinstance(v, (bool, np.bool_)) else np.nan
                        for v in frame[column].to_numpy(dtype=object)), float, len(frame))


def _codes(values, codes: dict[str, float]) -> np.ndarray:
    """Category → code, -1 for anything unknown or missing (a dict lookup: pandas' map costs ms per call)."""
    return np.fromiter((codes.get(v, -1.0) if isinstance(v, str) else -1.0
                        for v in np.asarray(values, dtype=object)), dtype=float, count=len(values))


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


# ------------------------------------------------------------------------------------------ daily rhythm
def activity_profile(events: Events, created_hours: np.ndarray, posts: np.ndarray | None = None) -> np.ndarray:
    """The platform's relative activity per local hour (mean 1), from events 12 h … 7 d after their post (earlier
    ones follow their post's own hour rather than the audience's day). Flat when fewer than 24·20 such events."""
    late = (events.delay >= 12 * 3600.0) & (events.delay <= 7 * 86400.0)
    if posts is not None:
        late &= np.isin(events.post, posts)
    hour = np.floor((created_hours[events.post[late]] + events.delay[late] / 3600.0) % 24.0).astype(int)
    if len(hour) < 24 * 20:
        return FLAT_PROFILE.copy()
    counts = np.bincount(hour, minlength=24).astype(float) + 1.0
    return counts / counts.mean()


def diurnal_features(hour_of_day: np.ndarray, window_min: np.ndarray, profile: np.ndarray) -> dict[str, np.ndarray]:
    """How much of the audience's day the window covered and what lies ahead: the activity mass of the observed
    window, of the next 2 h, and kernel-weighted over the rest of the horizon (each per minute, mean 1)."""
    grid = np.arange(0.0, 24 * 60 + DIURNAL_STEP_MIN, DIURNAL_STEP_MIN)  # minutes since the post
    activity = np.asarray(profile)[np.floor((hour_of_day[:, None] + grid[None, :] / 60.0) % 24.0).astype(int)]
    mass = np.concatenate([np.zeros((len(window_min), 1)), np.cumsum(activity[:, :-1], axis=1) * DIURNAL_STEP_MIN],
                          axis=1)
    rows = np.arange(len(window_min))

    def at(minutes: np.ndarray) -> np.ndarray:
        x = np.minimum(minutes, grid[-1])
        j = np.clip((x // DIURNAL_STEP_MIN).astype(int), 0, len(grid) - 2)
        frac = (x - grid[j]) / DIURNAL_STEP_MIN
        return mass[rows, j] * (1 - frac) + mass[rows, j + 1] * frac

    ahead = np.maximum(np.minimum(window_min + 120.0, grid[-1]) - np.minimum(window_min, grid[-1]), 1e-9)
    weight = np.where(grid[None, :] >= window_min[:, None], KERNEL.pdf(grid * 60.0)[None, :], 0.0)
    return {"act_obs": at(window_min) / window_min,
            "act_next2h": (at(window_min + 120.0) - at(window_min)) / ahead,
            "act_future_kernel": np.sum(weight * activity, axis=1) / np.maximum(np.sum(weight, axis=1), 1e-300)}


# -------------------------------------------------------------------------------------------------- model
def _predict(booster, X: np.ndarray) -> np.ndarray:
    """One thread: LightGBM's default thread pool costs ~15 ms per call, 40x the prediction of one post."""
    return booster.predict(X, num_threads=1)


@dataclass
class SpreadModel:
    """Fitted forecaster: quantile boosters for the log growth with conformal widening, a point booster for MSLE
    (optionally blended with the log-linear baseline), reach and provinces models where the training data had
    follower counts and regions, and a typical growth curve for the time to pass the threshold. Any elapsed time
    works: the boosters were trained on several early windows with the window length as a feature."""

    horizon_hours: float
    threshold: int
    n_star: float | None  # mean reposter followers in training cascades (SEISMIC's n*); None without followers
    quantiles: dict  # {0.1: booster, 0.5: booster, 0.9: booster} on log1p(final) − log1p(observed); lgb.Booster
    point_model: object  # E[log1p(final) − log1p(observed)]: the point forecast that minimises MSLE
    reach_model: object  # log1p(final reach) − log1p(reach so far); None when training had no follower counts
    regions_model: object  # provinces reached by the horizon; None when training had no regions
    growth_curve: np.ndarray  # median share of the final count reached by each minute since the post
    window_minutes: float = 60.0  # default elapsed time when the caller gives none
    # conformal widening (log1p units) of [P10, P90], per (window, has reposts yet); see training.spread.calibrate
    widen: dict = field(default_factory=dict)
    columns: tuple = ()  # the feature columns the boosters read, in order (empty: a version from before #18)
    profile: np.ndarray | None = None  # the audience's activity per local hour (diurnal features)
    timezone: str = "Asia/Shanghai"
    # point forecast = w · ours + (1 − w) · log-linear, in log space; w chosen by forward-chaining CV in training
    blend_weight: float = 1.0
    log_linear: dict = field(default_factory=dict)  # window -> (a, b) of the log-linear baseline

    def design(self, features: pd.DataFrame) -> np.ndarray:
        if not self.columns:
            raise Unavailable("该 spread 版本早于特征记录 (issue #18 之前训练), 无法用当前特征打分; 请重新训练")
        return features.loc[:, list(self.columns)].to_numpy(dtype=float)  # one take from the float block

    def raw_interval(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P10, P50, P90) of log1p(final) before conformal widening, never below the count already seen."""
        return self._interval(self.design(features), np.log1p(features["n_window"].to_numpy(dtype=float)))

    def _interval(self, X: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q10, q50, q90 = (np.maximum(_predict(self.quantiles[q], X), 0.0) for q in (0.1, 0.5, 0.9))
        return base + np.minimum(q10, q50), base + q50, base + np.maximum(q90, q50)

    def point_log(self, features: pd.DataFrame, X: np.ndarray | None = None) -> np.ndarray:
        """log1p of the point forecast (before it is kept inside the interval)."""
        base = np.log1p(features["n_window"].to_numpy(dtype=float))
        ours = base + np.maximum(_predict(self.point_model, self.design(features) if X is None else X), 0.0)
        if self.blend_weight >= 1.0 or not self.log_linear:
            return ours
        other = np.maximum(np.log1p(log_linear_forecast(features, self.log_linear)), base)
        return self.blend_weight * ours + (1.0 - self.blend_weight) * other

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        X = self.design(features)
        observed = features["n_window"].to_numpy(dtype=float)
        window = features["window_min"].to_numpy(dtype=float)
        base = np.log1p(observed)
        q10, q50, q90 = self._interval(X, base)
        widen = self.widening(window, observed > 0)
        q10, q90 = np.minimum(np.maximum(q10 - widen, base), q50), np.maximum(q90 + widen, q50)
        point = np.clip(self.point_log(features, X), q10, q90)
        done = window >= self.horizon_hours * 60.0  # at the horizon the count is a fact, not a forecast
        q10, q50, q90, point = (np.where(done, base, q) for q in (q10, q50, q90, point))
        reach_now = features["marks"].to_numpy(dtype=float)  # NaN where a follower count is missing
        reach, regions = np.full(len(X), np.nan), features["regions_window"].to_numpy(dtype=float)
        if self.reach_model is not None:
            growth = np.maximum(_predict(self.reach_model, X), 0.0)
            reach = np.where(done, reach_now, np.exp(np.log1p(reach_now) + growth) - 1.0)
        if self.regions_model is not None:
            regions = np.where(done | np.isnan(regions), regions, np.maximum(_predict(self.regions_model, X), regions))
        else:
            regions = np.where(done, regions, np.nan)
        # never below the count already seen (expm1(log1p(n)) can miss n by a rounding error)
        p10, p50, p90, point = (np.maximum(np.expm1(q), observed) for q in (q10, q50, q90, point))
        return pd.DataFrame({
            "post_id": features["post_id"].to_numpy(),
            "window_minutes": window,
            "observed": observed,
            "forecast": point,
            "p10": p10, "p50": p50, "p90": p90,
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

    def features(self, posts: pd.DataFrame, reposts: pd.DataFrame | None, window_minutes: float | np.ndarray,
                 text_scores: pd.DataFrame | None = None, events: Events | None = None) -> pd.DataFrame:
        return early_features(posts, reposts, window_minutes, text_scores=text_scores, n_star=self.n_star,
                              events=events, profile=self.profile, timezone=self.timezone)

    def forecast(self, posts: pd.DataFrame, reposts: pd.DataFrame | None, text_scores: pd.DataFrame | None = None,
                 window_minutes: float | np.ndarray | None = None) -> pd.DataFrame:
        """Forecast from the reposts seen in the first `window_minutes` (default: the training window; one value, or
        one per post); call again with more events and a longer window to update. A threshold already passed is
        reported as observed."""
        posts = posts.reset_index(drop=True)
        window = post_windows(self.window_minutes if window_minutes is None else window_minutes, len(posts))
        reads = set(self.columns)
        events = cascade_events(posts, reposts, tree=bool(reads & set(FEATURE_GROUPS["tree"])),
                                text=bool(reads & set(FEATURE_GROUPS["reaction_text"])))
        result = self.predict_frame(self.features(posts, None, window, text_scores, events))
        seen = threshold_crossing(events, self.threshold, window)
        result["time_to_threshold_min"] = np.where(np.isnan(seen), result["time_to_threshold_min"], seen)
        return result
