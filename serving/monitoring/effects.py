"""Effect evaluation (效果评估): did the fix that closed a warning change what followed, against comparable teams?

A plain before/after comparison credits the fix with whatever else changed meanwhile (a company-wide wave of
complaints, a quiet holiday week). Difference-in-differences compares the treated series' change with the change
of matched control series over the same days: other departments without a warning resolved in the window,
chosen by how closely their daily pre-period counts moved with the treated one (correlation of log counts).

Windows: `pre` is the `window_days` before the warning opened (the incident itself is left out, or its spike would
make any fix look good), `post` the `window_days` after it was resolved. Counts are daily. For volumes the
estimand is the relative change of the treated series against its controls,
    d_t = log(T_t + 0.5) - log(C_t + 0.5),   DiD = mean(d | post) - mean(d | pre),   effect = exp(DiD) - 1,
with a t interval on the day-level d from a regression with weekday terms and Newey-West errors (days vary
more than Poisson and neighbouring days move together: shocks, drift). Shares (negative
share of all posts) use the same contrast on the difference of daily shares. Leavers (culture warnings) are rare
counts: a log rate ratio of ratios with the Poisson variance 1/a + 1/b + 1/c + 1/d.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

MIN_DAYS = 5          # fewer days on either side: no estimate ("数据不足")
MIN_CONTROLS = 2
HAC_LAGS = 3


@dataclass(frozen=True)
class Effect:
    metric: str
    scale: str            # "ratio": relative change (-0.3 = 30% fewer); "difference": change in a share
    estimate: float
    low: float
    high: float
    level: float
    did: float            # on the working scale (log for ratios)
    se: float
    pre_days: int
    post_days: int
    n_controls: int
    treated_before: float  # daily means, for people reading the numbers
    treated_after: float
    control_before: float
    control_after: float
    naive: float          # what a before/after comparison of the treated series alone would claim

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        """Plain JSON types (numpy scalars become Python numbers), rounded for reading."""
        return {**{k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else
                       int(v) if isinstance(v, np.integer) else v) for k, v in asdict(self).items()},
                "significant": bool(self.significant)}


def _contrast(pre: np.ndarray, post: np.ndarray, level: float, lags: int = HAC_LAGS
              ) -> tuple[float, float, float, float]:
    """post - pre on day-level values: OLS with a weekday term (both windows hold whole weeks, so weekdays are
    noise, not signal) and a Newey-West standard error, because days next to each other share drift and
    shocks (an iid interval covered the planted effect in ~79% of cases at 90%, see bench/monitoring.py)."""
    y = np.concatenate([pre, post])
    n = len(y)
    weekday = np.arange(n) % 7  # both windows count whole days from their anchor
    columns = [np.ones(n), np.r_[np.zeros(len(pre)), np.ones(len(post))]]
    columns += [(weekday == d).astype(float) for d in range(1, 7)] if n >= 21 else []
    x = np.column_stack(columns)
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    score = x * resid[:, None]
    meat = score.T @ score
    for lag in range(1, min(lags, n - 1) + 1):
        weight = 1 - lag / (lags + 1)
        gamma = score[lag:].T @ score[:-lag]
        meat += weight * (gamma + gamma.T)
    dof = max(n - x.shape[1], 1)
    cov = xtx_inv @ meat @ xtx_inv * n / dof
    se = math.sqrt(max(cov[1, 1], 1e-12))
    t = stats.t.ppf(0.5 + level / 2, dof)
    diff = float(beta[1])
    return diff, se, float(diff - t * se), float(diff + t * se)


def did_ratio(metric: str, treated_pre, treated_post, control_pre, control_post, *, level: float = 0.9,
              n_controls: int = 1) -> Effect | None:
    """Relative change of daily counts (controls summed per day). None with too few days."""
    tp, tq, cp, cq = (np.asarray(a, dtype=float) for a in (treated_pre, treated_post, control_pre, control_post))
    if min(len(tp), len(tq)) < MIN_DAYS:
        return None
    pre, post = np.log(tp + 0.5) - np.log(cp + 0.5), np.log(tq + 0.5) - np.log(cq + 0.5)
    did, se, low, high = _contrast(pre, post, level)
    naive = float(np.log(tq.mean() + 0.5) - np.log(tp.mean() + 0.5))
    return Effect(metric, "ratio", math.expm1(did), math.expm1(low), math.expm1(high), level, did, se, len(tp),
                  len(tq), n_controls, float(tp.mean()), float(tq.mean()), float(cp.mean()), float(cq.mean()),
                  math.expm1(naive))


def did_share(metric: str, treated_pre: tuple, treated_post: tuple, control_pre: tuple, control_post: tuple, *,
              level: float = 0.9, n_controls: int = 1) -> Effect | None:
    """Change of a daily share (numerator, denominator pairs); days without posts on either side are skipped."""
    def share(pair):
        part, whole = (np.asarray(a, dtype=float) for a in pair)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(whole > 0, part / whole, np.nan)

    t0, t1, c0, c1 = share(treated_pre), share(treated_post), share(control_pre), share(control_post)
    pre, post = t0 - c0, t1 - c1
    pre, post = pre[np.isfinite(pre)], post[np.isfinite(post)]
    if min(len(pre), len(post)) < MIN_DAYS:
        return None
    did, se, low, high = _contrast(pre, post, level)
    return Effect(metric, "difference", did, low, high, level, did, se, len(pre), len(post), n_controls,
                  float(np.nanmean(t0)), float(np.nanmean(t1)), float(np.nanmean(c0)), float(np.nanmean(c1)),
                  float(np.nanmean(t1) - np.nanmean(t0)))


def did_rare(metric: str, treated: tuple[float, float], control: tuple[float, float],
             exposure: tuple[float, float, float, float], *, level: float = 0.9, n_controls: int = 1) -> Effect | None:
    """Rare events (leavers): counts (before, after) for treated and controls with their exposures (person-days
    before/after, treated then control); the ratio of rate ratios with Poisson variance, +0.5 per cell."""
    a, b = (x + 0.5 for x in treated)
    c, d = (x + 0.5 for x in control)
    e_tb, e_ta, e_cb, e_ca = exposure
    if min(exposure) <= 0:
        return None
    did = math.log((b / e_ta) / (a / e_tb)) - math.log((d / e_ca) / (c / e_cb))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = stats.norm.ppf(0.5 + level / 2)
    per = 30 * 100  # leavers per 100 people per 30 days, for reading
    return Effect(metric, "ratio", math.expm1(did), math.expm1(did - z * se), math.expm1(did + z * se), level, did,
                  se, 0, 0, n_controls, (a - 0.5) / e_tb * per, (b - 0.5) / e_ta * per, (c - 0.5) / e_cb * per,
                  (d - 0.5) / e_ca * per, math.expm1(math.log((b / e_ta) / (a / e_tb))))


def match_controls(treated_pre: np.ndarray, candidates: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the `k` candidate series whose daily pre-period counts moved most like the treated one
    (Pearson correlation of log counts); flat candidates rank last."""
    if len(candidates) == 0:
        return np.zeros(0, dtype=int)
    t = np.log(np.asarray(treated_pre, dtype=float) + 0.5)
    c = np.log(np.asarray(candidates, dtype=float) + 0.5)
    tc, cc = t - t.mean(), c - c.mean(axis=1, keepdims=True)
    denom = np.sqrt((tc**2).sum() * (cc**2).sum(axis=1))
    score = np.where(denom > 0, (cc @ tc) / np.maximum(denom, 1e-12), -2.0)
    return np.argsort(-score, kind="stable")[:k]


def evaluate_counts(treated: dict[str, np.ndarray], controls: dict[str, np.ndarray], pre: slice, post: slice, *,
                    k: int = 5, level: float = 0.9, placebos: int = 20) -> dict[str, Effect | None]:
    """Negative volume, negative share and negative reach for one treated series against matched controls.

    `treated[name]` is a daily array and `controls[name]` a (series, days) array for name in total, negative,
    reach; `pre` and `post` index the days. Controls are matched on the pre-period negative counts.

    The interval is calibrated on placebos (in the spirit of Conley & Taber 2011, one treated unit): each
    control, in turn, is evaluated as if treated against the others; their estimates' spread over their own
    standard errors says how much the day-level error understates the real uncertainty (drift between the
    windows, shared shocks), and the treated interval is widened by that factor (never narrowed)."""
    candidates = {name: np.asarray(values, dtype=float) for name, values in controls.items()}
    if candidates["negative"].ndim != 2 or len(candidates["negative"]) < MIN_CONTROLS:
        return {"negative": None, "negative_share": None, "reach": None}
    out = _estimate(treated, candidates, pre, post, k, level)
    inflation = _placebo_inflation(candidates, pre, post, k, level, placebos)
    return {name: _widen(effect, inflation.get(name)) for name, effect in out.items()}


def _estimate(treated: dict, candidates: dict, pre: slice, post: slice, k: int, level: float) -> dict:
    chosen = match_controls(treated["negative"][pre], candidates["negative"][:, pre], k)
    picked = {name: values[chosen].sum(axis=0) for name, values in candidates.items()}
    n = len(chosen)
    return {
        "negative": did_ratio("negative", treated["negative"][pre], treated["negative"][post],
                              picked["negative"][pre], picked["negative"][post], level=level, n_controls=n),
        "negative_share": did_share(
            "negative_share", (treated["negative"][pre], treated["total"][pre]),
            (treated["negative"][post], treated["total"][post]), (picked["negative"][pre], picked["total"][pre]),
            (picked["negative"][post], picked["total"][post]), level=level, n_controls=n),
        "reach": did_ratio("reach", treated["reach"][pre], treated["reach"][post], picked["reach"][pre],
                           picked["reach"][post], level=level, n_controls=n),
    }


def _placebo_inflation(candidates: dict, pre: slice, post: slice, k: int, level: float, limit: int
                       ) -> dict[str, float]:
    """Per metric: the spread of placebo estimates over their standard errors (1.0 when too few placebos)."""
    count = len(candidates["negative"])
    if count < MIN_CONTROLS + 3:
        return {}
    z: dict[str, list[float]] = {}
    for j in range(min(count, limit)):
        rest = np.arange(count) != j
        fake = _estimate({n: v[j] for n, v in candidates.items()}, {n: v[rest] for n, v in candidates.items()},
                         pre, post, k, level)
        for name, effect in fake.items():
            if effect is not None and effect.se > 0:
                z.setdefault(name, []).append(effect.did / effect.se)
    return {name: float(np.sqrt(np.mean(np.square(values)))) for name, values in z.items() if len(values) >= 5}


def _widen(effect: Effect | None, factor: float | None) -> Effect | None:
    if effect is None or factor is None or factor <= 1.0:
        return effect
    se = effect.se * factor
    half = (effect.did - (math.log1p(effect.low) if effect.scale == "ratio" else effect.low)) * factor
    low, high = effect.did - half, effect.did + half
    if effect.scale == "ratio":
        low, high = math.expm1(low), math.expm1(high)
    return replace(effect, se=se, low=low, high=high)
