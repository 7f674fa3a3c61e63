"""The entry point: `generate` runs org chart, workforce, texts and cascades, then writes the tables and truth.json.

Each part draws from its own random stream spawned from the seed, so changing the corpus or the cascade model
leaves the workforce untouched; the tables are shaped here to the contracts in features/contracts.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from features.settings import settings
from synthetic.cascades import _kernel_c0, _lognormal_mean, simulate_cascades
from synthetic.monitoring import monitoring_tables
from synthetic.org import Org, _id_list, build_org
from synthetic.texts import _complaints, _corpus, _posts
from synthetic.truth import (
    AUTHOR_FOLLOWERS,
    BRANCHING_NOISE_SD,
    CASCADE_CAP,
    CASCADE_HORIZON_SECONDS,
    CHANNEL_BRANCHING,
    COMPLAINT_CHANNEL_SHARE,
    COMPLAINT_SENTIMENT_MIX,
    COMPLAINTS_PER_EMPLOYEE_YEAR,
    ENGAGEMENT_MANAGER_CHANGE_DROP,
    ENGAGEMENT_NOISE_SD,
    ENGAGEMENT_OVERWORK_DRAG,
    ENGAGEMENT_PROMOTION_BUMP,
    ENGAGEMENT_REVERSION,
    EXTERNAL_CHANNEL_SHARE,
    EXTERNAL_POSTS_PER_EMPLOYEE_YEAR,
    EXTERNAL_SENTIMENT_MIX,
    HAZARD_BETA,
    INTERNAL_CHANNEL_SHARE,
    INTERNAL_NEG_LOGIT,
    INTERNAL_POST_RATE,
    INTERNAL_POST_RATE_SLOPE,
    KERNEL_S0_SECONDS,
    KERNEL_THETA,
    LOW_ENGAGEMENT_THRESHOLD,
    MAX_BRANCHING,
    NEAR_CRITICAL_RANGE,
    NEAR_CRITICAL_SHARE,
    NORMAL_OVERTIME_HOURS,
    OVERTIME_BASE,
    OVERTIME_TREND,
    PROMOTION_MAX_LEVEL,
    PROMOTION_RATE,
    PROMOTION_RATING_SLOPE,
    PROVINCE_WEIGHT,
    PROVINCES,
    REGION_STAY_PROB,
    REPLACEMENT_DELAY_DAYS,
    REPOSTER_FOLLOWERS,
    SENTIMENT_BRANCHING,
    SENTIMENT_ORDER,
    TARGET_YEARLY_ATTRITION,
    TRANSFER_RATE,
)
from synthetic.workforce import NEVER, NONE_DAY, People, Workforce, _day, simulate_workforce


# --------------------------------------------------------------------------------------------------- output
def _dates(days: np.ndarray, missing: int) -> pd.Series:
    """Day numbers to datetime64 with `missing` sentinel as NaT."""
    days = np.asarray(days, dtype=np.int64)
    out = days.astype("datetime64[D]").astype("datetime64[s]")
    out[days == missing] = np.datetime64("NaT")
    return pd.Series(out)


def _org_frame(org: Org, people: People, ids: np.ndarray, end_day: int) -> pd.DataFrame:
    active = (people.hire <= end_day) & (people.leave > end_day)
    head = np.full(len(org.names), None, dtype=object)
    heads = np.flatnonzero(active & people.is_head)
    head[people.unit[heads]] = ids[heads]
    return pd.DataFrame({
        "unit_id": org.unit_ids, "name": org.names,
        "parent_id": [org.unit_ids[p] if p >= 0 else None for p in org.parent],
        "head_employee_id": head, "function": org.function, "level": org.level,
    })


def generate(employees: int = settings.employees, days: int = settings.days, seed: int = settings.seed,
             out_dir: Path | str | None = None, monitoring: bool = True) -> dict[str, Path]:
    """Write org_units, employees, snapshots, posts, complaints, reposts (Parquet) and truth.json to out_dir.

    Same seed (and corpus) -> byte-identical tables. Returns {table name: path}. `monitoring` adds the planted
    monitoring feed (series, complaint_bursts and truth.json's "monitoring" section) from a random stream of
    its own: every other table is byte-identical with it on or off, and truth.json too apart from that section.
    """
    out = Path(out_dir) if out_dir is not None else settings.generated_dir
    out.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(settings.start_date)
    end_day = _day(start) + days - 1
    # independent streams: changing the corpus or the cascade model leaves the workforce untouched
    org_rng, people_rng, text_rng, cascade_rng = map(np.random.default_rng, np.random.SeedSequence(seed).spawn(4))

    org = build_org(employees, org_rng)
    work = simulate_workforce(org, start, days, people_rng)
    people = work.people
    ids = np.array(_id_list("E", len(people.unit), 5), dtype=object)
    unit_ids = np.array(org.unit_ids, dtype=object)

    def maybe_id(index: np.ndarray) -> np.ndarray:
        return np.where(index >= 0, ids[np.maximum(index, 0)], None)

    leave = _dates(people.leave, NEVER)
    employees_frame = pd.DataFrame({
        "employee_id": ids, "department_id": unit_ids[people.unit], "manager_id": maybe_id(people.manager),
        "hire_date": _dates(people.hire, NONE_DAY), "job_level": people.job_level, "role": people.role,
        "location": people.location, "gender": people.gender, "marital_status": people.marital,
        "birth_year": people.birth_year, "is_key": people.is_key, "leave_date": leave,
    })

    snap = work.snapshots
    person = snap["person"].to_numpy()
    snapshots = pd.DataFrame({
        "employee_id": ids[person], "department_id": unit_ids[snap["unit"].to_numpy()],
        "manager_id": maybe_id(snap["manager"].to_numpy()), "hire_date": _dates(people.hire[person], NONE_DAY),
        "job_level": snap["job_level"], "role": people.role[person], "location": people.location[person],
        "pay_vs_band": snap["pay_vs_band"], "overtime_hours": snap["overtime_hours"],
        "last_promotion_date": _dates(snap["last_promo"].to_numpy(), NONE_DAY),
        "performance_rating": snap["performance_rating"], "engagement_score": snap["engagement_score"],
        "snapshot_date": _dates(snap["snapshot_day"].to_numpy(), NONE_DAY), "leave_date": leave.to_numpy()[person],
        "gender": people.gender[person], "marital_status": people.marital[person],
        "is_key": people.is_key[person], "manager_changed_90d": snap["manager_changed_90d"],
        "neg_internal_posts_90d": snap["neg_internal_posts_90d"], "truth_monthly_hazard": snap["truth_monthly_hazard"],
    })

    corpus = _corpus()
    posts = _posts(text_rng, org, people, ids, work.internal_posts, corpus, employees, days, start)
    events = simulate_cascades(cascade_rng, posts["branching"].to_numpy(), posts["author_followers"].to_numpy(),
                               posts["region"].map({p: i for i, p in enumerate(PROVINCES)}).to_numpy())
    created_seconds = posts["created_at"].to_numpy().astype("datetime64[s]").astype(np.int64)
    post_index = events["post"].to_numpy()
    reposts = pd.DataFrame({
        "post_id": posts["post_id"].to_numpy()[post_index],
        "timestamp": (created_seconds[post_index] + np.floor(events["time"].to_numpy()).astype(np.int64))
        .astype("datetime64[s]"),
        "user_followers": events["followers"].to_numpy(),
        "region": np.array(PROVINCES, dtype=object)[events["region"].to_numpy()],
        "parent_index": events["parent_index"].to_numpy(),  # among the post's reposts; -1 = the post
        "generation": events["generation"].to_numpy(),
    })
    posts["final_reposts_24h"] = np.bincount(post_index, minlength=len(posts))
    complaints = _complaints(text_rng, org, corpus, employees, days, start)
    org_units = _org_frame(org, people, ids, end_day)

    tables = {"org_units": org_units, "employees": employees_frame, "snapshots": snapshots, "posts": posts,
              "complaints": complaints, "reposts": reposts}
    extra, planted = {}, None
    if monitoring:  # a fifth stream: the four above draw exactly what they drew before
        monitoring_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])
        extra, planted = monitoring_tables(monitoring_rng, org, start, days, corpus)
    paths = {}
    for name, frame in {**tables, **extra}.items():
        paths[name] = out / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    truth = _truth(seed, employees, days, start, org, work, tables, corpus)
    if planted is not None:
        truth["monitoring"] = planted
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(truth, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths


def yearly_attrition_rate(snapshots: pd.DataFrame, employees: pd.DataFrame, days: int) -> float:
    """Leavers in the period over the mean month-end headcount, scaled to 365 days."""
    leavers = employees["leave_date"].notna().sum()
    headcount = snapshots.groupby("snapshot_date").size().mean()
    return float(leavers / headcount * 365.25 / days)


def _truth(seed, employees, days, start, org: Org, work: Workforce, tables: dict[str, pd.DataFrame], corpus) -> dict:
    posts, reposts = tables["posts"], tables["reposts"]
    table = {c: {s: round(CHANNEL_BRANCHING[c] * SENTIMENT_BRANCHING[s], 4) for s in SENTIMENT_ORDER}
             for c in CHANNEL_BRANCHING}
    return {
        "seed": seed, "employees": employees, "days": days, "start_date": str(start.date()),
        "end_date": str((start + pd.Timedelta(days=days - 1)).date()), "corpus_rows": int(len(corpus)),
        "org": {"units": len(org.names), "depth": int(org.level.max()) + 1,
                "vacant_units": [org.unit_ids[u] for u in np.flatnonzero(org.vacant)]},
        "attrition": {
            "model": "monthly hazard h = h0 * exp(sum beta_k x_k); P(leave in dt days) = 1 - exp(-h dt / 30.44)",
            "h0_monthly": work.h0, "beta": HAZARD_BETA, "target_yearly_rate_for_h0": TARGET_YEARLY_ATTRITION,
            "normal_overtime_hours": NORMAL_OVERTIME_HOURS, "low_engagement_threshold": LOW_ENGAGEMENT_THRESHOLD,
            "department_overtime_trend_h_per_month": work.overtime_trend,
            "realized_yearly_rate": round(yearly_attrition_rate(tables["snapshots"], tables["employees"], days), 4),
            "leavers": int(tables["employees"]["leave_date"].notna().sum()),
        },
        "workforce": {
            "overtime_base": OVERTIME_BASE, "overtime_trend_mean_sd": OVERTIME_TREND,
            "engagement": {"reversion": ENGAGEMENT_REVERSION, "overwork_drag_per_10h_over_30": ENGAGEMENT_OVERWORK_DRAG,
                           "noise_sd": ENGAGEMENT_NOISE_SD, "promotion_bump": ENGAGEMENT_PROMOTION_BUMP,
                           "manager_change_drop": ENGAGEMENT_MANAGER_CHANGE_DROP},
            "promotion": {"rate": PROMOTION_RATE, "rating_slope": PROMOTION_RATING_SLOPE,
                          "max_level": PROMOTION_MAX_LEVEL},
            "transfer_rate": TRANSFER_RATE, "replacement_delay_days": REPLACEMENT_DELAY_DAYS,
        },
        "internal_posts": {"rate_per_person_year": INTERNAL_POST_RATE,
                           "rate_slope_per_10_low_engagement": INTERNAL_POST_RATE_SLOPE,
                           "neg_logit": INTERNAL_NEG_LOGIT, "channel_share": INTERNAL_CHANNEL_SHARE},
        "external_posts": {"per_employee_year": EXTERNAL_POSTS_PER_EMPLOYEE_YEAR,
                           "channel_share": EXTERNAL_CHANNEL_SHARE,
                           "sentiment_mix_neg_neu_pos": EXTERNAL_SENTIMENT_MIX},
        "complaints": {"per_employee_year": COMPLAINTS_PER_EMPLOYEE_YEAR, "channel_share": COMPLAINT_CHANNEL_SHARE,
                       "sentiment_mix_neg_neu_pos": COMPLAINT_SENTIMENT_MIX},
        "cascades": {
            "kernel": {"form": "phi(s) = c0 for s <= s0; c0 (s/s0)^-(1+theta) beyond", "s0_seconds": KERNEL_S0_SECONDS,
                       "theta": KERNEL_THETA, "c0": _kernel_c0()},
            "children_per_event": "Poisson(n* * followers / mean_reposter_followers)",
            "mean_reposter_followers": _lognormal_mean(*REPOSTER_FOLLOWERS),
            "reposter_followers_lognormal_median_sigma": REPOSTER_FOLLOWERS,
            "author_followers_lognormal_median_sigma": AUTHOR_FOLLOWERS,
            "branching": {"channel_base": CHANNEL_BRANCHING, "sentiment_multiplier": SENTIMENT_BRANCHING,
                          "mean_by_channel_and_sentiment": table, "noise_lognormal_sd": BRANCHING_NOISE_SD,
                          "max": MAX_BRANCHING, "near_critical_share": NEAR_CRITICAL_SHARE,
                          "near_critical_range": NEAR_CRITICAL_RANGE},
            "horizon_seconds": CASCADE_HORIZON_SECONDS, "cap_events": CASCADE_CAP,
            "region_stay_prob": REGION_STAY_PROB, "province_weight": PROVINCE_WEIGHT,
        },
        "rows": {name: int(len(frame)) for name, frame in tables.items()},
        "realized": {"posts_per_year": round(len(posts) * 365.25 / days, 1),
                     "reposts": int(len(reposts)), "max_cascade": int(posts["final_reposts_24h"].max()),
                     "capped_cascades": int((posts["final_reposts_24h"] >= CASCADE_CAP).sum())},
    }
