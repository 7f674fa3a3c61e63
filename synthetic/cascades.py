"""Repost cascades: a marked Hawkes process (SEISMIC, Zhao et al. KDD 2015) simulated for every post at once.

Each post's branching factor n* is planted by the texts; here its reposts are drawn generation by generation
within the 24 h horizon, each with followers and a province, so the spread model can be checked against n*.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from synthetic.truth import (
    CASCADE_CAP,
    CASCADE_HORIZON_SECONDS,
    KERNEL_S0_SECONDS,
    KERNEL_THETA,
    PROVINCE_WEIGHT,
    PROVINCES,
    REGION_STAY_PROB,
    REPOSTER_FOLLOWERS,
)


# ----------------------------------------------------------------------------------------------- cascades
def _kernel_c0() -> float:
    """phi(s) = c0 for s <= s0, c0 (s/s0)^-(1+theta) beyond; c0 makes the integral 1 so n* carries the scale."""
    return KERNEL_THETA / (KERNEL_S0_SECONDS * (1 + KERNEL_THETA))


def _lognormal_mean(median: float, sigma: float) -> float:
    return float(median * np.exp(sigma**2 / 2))


def _lognormal_int(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return np.floor(rng.lognormal(np.log(median), sigma, size)).astype(np.int64)


def _kernel_delays(rng, n: int) -> np.ndarray:
    """Inverse-CDF draw from the normalized kernel: uniform on [1 s, s0] w.p. theta/(1+theta), Pareto beyond."""
    flat = rng.random(n) < KERNEL_THETA / (1 + KERNEL_THETA)
    return np.where(flat, rng.uniform(1.0, KERNEL_S0_SECONDS, n),
                    KERNEL_S0_SECONDS * rng.random(n) ** (-1 / KERNEL_THETA))


def simulate_cascades(rng, branching: np.ndarray, author_followers: np.ndarray, region: np.ndarray) -> pd.DataFrame:
    """All cascades at once, generation by generation (the branching representation of the Hawkes process).

    Children of an event arrive as Poisson(n* * followers / E[f]) with kernel delays; events beyond the 24 h
    horizon are dropped with their (later) descendants; a cascade stops growing at CASCADE_CAP events, keeping
    the earliest of the generation that crosses it.
    """
    mean_followers = _lognormal_mean(*REPOSTER_FOLLOWERS)
    province_p = np.array(list(PROVINCE_WEIGHT.values()))
    province_p /= province_p.sum()
    n_posts = len(branching)
    room = np.full(n_posts, CASCADE_CAP, np.int64)
    parts = []
    frontier = {"post": np.arange(n_posts), "time": np.zeros(n_posts), "followers": author_followers,
                "region": region, "id": -np.arange(1, n_posts + 1), "generation": np.zeros(n_posts, np.int64)}
    next_id = 0
    while len(frontier["post"]):
        expected = branching[frontier["post"]] * frontier["followers"] / mean_followers
        children = np.minimum(rng.poisson(expected), room[frontier["post"]])
        parent = np.repeat(np.arange(len(children)), children)
        post = frontier["post"][parent]
        time = frontier["time"][parent] + _kernel_delays(rng, len(parent))
        keep = time <= CASCADE_HORIZON_SECONDS
        parent, post, time = parent[keep], post[keep], time[keep]
        order = np.lexsort((time, post))
        parent, post, time = parent[order], post[order], time[order]
        first_of_post = np.searchsorted(post, post)
        rank = np.arange(len(post)) - first_of_post
        keep = rank < room[post]
        parent, post, time = parent[keep], post[keep], time[keep]
        np.subtract.at(room, post, 1)
        n = len(post)
        stay = rng.random(n) < REGION_STAY_PROB
        new = {"post": post, "time": time, "followers": _lognormal_int(rng, *REPOSTER_FOLLOWERS, n),
               "region": np.where(stay, frontier["region"][parent], rng.choice(len(PROVINCES), n, p=province_p)),
               "id": np.arange(next_id, next_id + n), "generation": frontier["generation"][parent] + 1,
               "parent_id": frontier["id"][parent]}
        next_id += n
        parts.append(new)
        frontier = new
    if not parts:
        parts = [{k: np.zeros(0, np.int64) for k in ("post", "time", "followers", "region", "id", "generation",
                                                      "parent_id")}]
    events = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    events = events.sort_values(["post", "time"], kind="stable").reset_index(drop=True)
    position = np.arange(len(events)) - np.searchsorted(events["post"].to_numpy(), events["post"].to_numpy())
    local = np.empty(next_id, np.int64)
    local[events["id"].to_numpy()] = position
    parent_id = events["parent_id"].to_numpy()
    events["parent_index"] = np.where(parent_id >= 0, local[np.maximum(parent_id, 0)], -1)
    return events
