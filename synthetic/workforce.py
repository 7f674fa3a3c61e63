"""The workforce: people in the org chart's seats, simulated month by month with the planted attrition hazard.

Features (overtime, engagement, pay, promotions, transfers, manager changes) evolve between month-end
snapshots, people write internal posts, leave by h = h0 * exp(sum beta_k x_k) and are replaced in the same
seat. Time is counted in whole days since 1970 (int64), so the clock helpers live here with the simulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from synthetic.org import CITY_PROVINCE, HEAD_TITLES, ROLES, STAFF_LEVEL_P, Org
from synthetic.truth import (
    DAYS_PER_MONTH,
    ENGAGEMENT_MANAGER_CHANGE_DROP,
    ENGAGEMENT_NOISE_SD,
    ENGAGEMENT_OVERWORK_DRAG,
    ENGAGEMENT_PROMOTION_BUMP,
    ENGAGEMENT_REVERSION,
    HAZARD_BETA,
    INTERNAL_CHANNEL_SHARE,
    INTERNAL_NEG_LOGIT,
    INTERNAL_POST_RATE,
    INTERNAL_POST_RATE_SLOPE,
    LOW_ENGAGEMENT_THRESHOLD,
    NORMAL_OVERTIME_HOURS,
    OVERTIME_BASE,
    OVERTIME_NOISE_SD,
    OVERTIME_PERSON_SD,
    OVERTIME_TREND,
    PAY_DRIFT,
    PAY_NOISE_SD,
    PROMOTION_MAX_LEVEL,
    PROMOTION_RATE,
    PROMOTION_RATING_SLOPE,
    REPLACEMENT_DELAY_DAYS,
    TARGET_YEARLY_ATTRITION,
    TRANSFER_RATE,
)


# ------------------------------------------------------------------------------------------------ the clock
def _snapshot_days(start: pd.Timestamp, days: int) -> np.ndarray:
    """Month ends inside the period, plus the last day when it is not one (as day numbers since 1970)."""
    end = start + pd.Timedelta(days=days - 1)
    ends = list(pd.date_range(start, end, freq="ME"))
    if not ends or ends[-1] != end:
        ends.append(end)
    return np.array([_day(d) for d in ends], dtype=np.int64)


def _day(timestamp: pd.Timestamp) -> int:
    return int(timestamp.to_datetime64().astype("datetime64[D]").astype(np.int64))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


NEVER = np.iinfo(np.int64).max  # leave day of someone still employed
NONE_DAY = np.iinfo(np.int64).min  # no promotion / no manager change yet


# ------------------------------------------------------------------------------------------------- people
People = SimpleNamespace  # one numpy column per attribute, one row per person ever employed


def _append(people: People, joiners: People) -> None:
    for name, values in vars(people).items():
        setattr(people, name, np.concatenate([values, getattr(joiners, name)]))


def _new_people(rng, org: Org, unit: np.ndarray, is_head: np.ndarray, job_level: np.ndarray, hire_day: np.ndarray,
                today: int, tenure_days: np.ndarray) -> People:
    """Draw the attributes of people joining (or, for the starting workforce, already in) the given seats."""
    n = len(unit)
    year = int(np.datetime64(today, "D").astype("datetime64[Y]").astype(int) + 1970)
    unit_function = np.array(org.function, dtype=object)[unit]
    age = np.maximum(np.clip(22 + 2.2 * job_level + rng.normal(0, 4, n), 20, 62), 20 + tenure_days / 365.25)
    promoted_years = np.minimum(tenure_days / 365.25, rng.exponential(2.0, n))
    ever_promoted = (job_level > 1) & (rng.random(n) < 0.85) & (tenure_days > 60)
    last_promo = np.where(ever_promoted, today - (promoted_years * 365.25).astype(np.int64), NONE_DAY)
    last_promo = np.where(ever_promoted, np.maximum(last_promo, hire_day), NONE_DAY)
    ability = rng.normal(3.2, 0.55, n)
    female_p = np.select([np.isin(unit_function, ("hr", "culture")), np.isin(unit_function, ("rd", "production"))],
                         [0.65, 0.32], 0.5)
    u = rng.random(n)
    gender = np.where(u < 0.01, "unknown", np.where(u < 0.01 + 0.99 * female_p, "F", "M"))
    married_p = _sigmoid((age - 30) / 4)
    m = rng.random(n)
    marital = np.select([m < 0.01, m < 0.01 + 0.07 * married_p, m < 0.01 + married_p],
                        ["unknown", "divorced", "married"], "single")
    home_city = np.array(org.city, dtype=object)[unit]
    cities = np.array(list(CITY_PROVINCE), dtype=object)
    location = np.where(rng.random(n) < 0.8, home_city, cities[rng.integers(0, len(cities), n)])
    draws = rng.integers(0, 12, n)
    roles = np.array([ROLES[f][i % len(ROLES[f])] for f, i in zip(unit_function, draws, strict=True)], dtype=object)
    roles[is_head] = np.array(HEAD_TITLES, dtype=object)[org.level[unit[is_head]]]
    engagement_base = np.clip(rng.normal(68, 10, n), 20, 98)
    is_key = rng.random(n) < 0.04 + 0.25 * (job_level >= 7) + 0.2 * (ability > 3.9)
    return People(
        unit=unit.astype(np.int64), is_head=is_head.astype(bool), job_level=job_level.astype(np.int64),
        hire=hire_day.astype(np.int64), leave=np.full(n, NEVER, np.int64), last_promo=last_promo.astype(np.int64),
        role=roles, location=location, gender=gender.astype(object), marital=marital.astype(object),
        birth_year=(year - age).astype(np.int64), is_key=is_key, ability=ability, engagement_base=engagement_base,
        engagement=np.clip(engagement_base + rng.normal(0, 6, n), 0, 100),
        overtime_offset=rng.normal(0, OVERTIME_PERSON_SD, n), overtime=np.zeros(n),
        pay=np.clip(rng.normal(1.0, 0.12, n), 0.55, 1.6),
        rating=np.clip(np.round((ability + rng.normal(0, 0.35, n)) * 2) / 2, 1, 5),
        manager=np.full(n, -2, np.int64), last_manager_change=np.full(n, NONE_DAY, np.int64),
    )


def _seat_levels(rng, org: Org, unit: np.ndarray, is_head: np.ndarray) -> np.ndarray:
    """Heads by the depth of the unit they lead (CEO 10 ... sub-team lead 5); staff mostly junior."""
    staff = rng.choice(np.arange(1, 7), len(unit), p=STAFF_LEVEL_P)
    head_level = np.array([10, 9, 8, 7, 5])[org.level[unit]]
    leaf_team_lead = is_head & (org.level[unit] == 3) & org.leaves[unit]
    head_level = np.where(leaf_team_lead, 6, head_level)
    return np.where(is_head, head_level, staff)


def _managers(org: Org, people: People, active: np.ndarray) -> np.ndarray:
    """Each active person's manager: the head of their unit, or of the nearest ancestor with a head in post.

    A head reports to the head above; the CEO reports to nobody (-1).
    """
    head_of = np.full(len(org.names), -1, np.int64)
    heads = np.flatnonzero(active & people.is_head)
    head_of[people.unit[heads]] = heads
    effective = np.full(len(org.names), -1, np.int64)
    for unit in range(len(org.names)):  # creation order is topological
        above = effective[org.parent[unit]] if org.parent[unit] >= 0 else -1
        effective[unit] = head_of[unit] if head_of[unit] >= 0 else above
    parent_unit = org.parent[people.unit]
    above = np.where(parent_unit >= 0, effective[np.maximum(parent_unit, 0)], -1)
    manager = np.where(people.is_head, above, effective[people.unit])
    return np.where(active, manager, -2)


def _drivers(people: People, today: int, neg_posts_90d: np.ndarray) -> np.ndarray:
    """The planted hazard drivers x_k, columns in HAZARD_BETA order."""
    since = np.where(people.last_promo != NONE_DAY, people.last_promo, people.hire)
    changed = (people.last_manager_change != NONE_DAY) & (today - people.last_manager_change <= 90)
    return np.column_stack([
        np.maximum(0, people.overtime - NORMAL_OVERTIME_HOURS) / 10,
        np.maximum(0, 1 - people.pay),
        (today - since) / 365.25,
        changed.astype(float),
        np.maximum(0, LOW_ENGAGEMENT_THRESHOLD - people.engagement) / 10,
        neg_posts_90d.astype(float),
    ])


BETA = np.array(list(HAZARD_BETA.values()))


def _calibrate_h0(risk: np.ndarray) -> float:
    """Solve mean(1 - exp(-12 h0 risk)) = TARGET_YEARLY_ATTRITION by bisection on log h0."""
    low, high = -12.0, 0.0
    for _ in range(60):
        mid = (low + high) / 2
        rate = np.mean(1 - np.exp(-12 * np.exp(mid) * risk))
        low, high = (mid, high) if rate < TARGET_YEARLY_ATTRITION else (low, mid)
    return float(np.exp((low + high) / 2))


@dataclass
class Workforce:
    people: People
    snapshots: pd.DataFrame
    internal_posts: pd.DataFrame  # person, created_at (s), channel, sentiment, unit
    h0: float
    overtime_trend: dict[str, float]


def simulate_workforce(org: Org, start: pd.Timestamp, days: int, rng) -> Workforce:
    """Month-by-month simulation: features evolve, people post, leave by the planted hazard, get replaced."""
    start_day = _day(start)
    end_day = start_day + days - 1
    seat_level = _seat_levels(rng, org, org.seat_unit, org.seat_head)
    tenure = np.minimum(rng.exponential(365.25 * (2 + 0.6 * seat_level)), 365.25 * 30).astype(np.int64)
    people = _new_people(rng, org, org.seat_unit, org.seat_head, seat_level, start_day - 1 - tenure,
                         start_day - 1, tenure)
    departments = np.flatnonzero(org.level == 2)
    dept_trend = np.zeros(len(org.names))
    dept_trend[departments] = rng.normal(*OVERTIME_TREND, len(departments))
    dept_base = np.array([OVERTIME_BASE[f] for f in org.function], float)
    leaves_of_dept = {d: np.flatnonzero(org.leaves & (org.department == d)) for d in departments}

    def update_overtime(who, months_in):
        unit = people.unit[who]
        dept = np.where(org.department[unit] >= 0, org.department[unit], unit)
        people.overtime[who] = np.clip(dept_base[unit] + dept_trend[dept] * months_in + people.overtime_offset[who]
                                       + rng.normal(0, OVERTIME_NOISE_SD, len(who)), 0, 200).round(1)

    everyone = np.arange(len(people.unit))
    update_overtime(everyone, 0.0)
    active = np.ones(len(people.unit), bool)
    people.manager = _managers(org, people, active)
    h0 = _calibrate_h0(np.exp(_drivers(people, start_day - 1, np.zeros(len(people.unit))) @ BETA))

    neg_post_person, neg_post_day = np.zeros(0, np.int64), np.zeros(0, np.int64)
    internal_parts, snapshot_parts = [], []
    previous = start_day - 1
    checkpoints = _snapshot_days(start, days)
    for step, today in enumerate([previous, *checkpoints.tolist()]):
        if step > 0:
            months = (today - previous) / DAYS_PER_MONTH
            # --- posts written on days previous+1 .. today (a snapshot closes its day) by whoever was employed
            window_start = np.maximum(previous + 1, people.hire)
            window_end = np.minimum(today + 1, people.leave)
            exposure = np.clip(window_end - window_start, 0, None) / 365.25
            low_engagement = np.maximum(0, LOW_ENGAGEMENT_THRESHOLD - people.engagement) / 10
            rate = INTERNAL_POST_RATE * np.exp(
                INTERNAL_POST_RATE_SLOPE * (LOW_ENGAGEMENT_THRESHOLD - people.engagement) / 10)
            counts = rng.poisson(rate * exposure)
            author = np.repeat(np.arange(len(people.unit)), counts)
            span = (window_end - window_start)[author]
            seconds = (window_start[author] + rng.random(len(author)) * span) * 86400
            overtime_excess = np.maximum(0, people.overtime - NORMAL_OVERTIME_HOURS) / 10
            p_neg = _sigmoid(INTERNAL_NEG_LOGIT["intercept"] + INTERNAL_NEG_LOGIT["low_engagement"] * low_engagement
                             + INTERNAL_NEG_LOGIT["overtime_excess"] * overtime_excess)[author]
            u = rng.random(len(author))
            sentiment = np.where(u < p_neg, "neg", np.where(u < p_neg + (1 - p_neg) * 0.55, "neu", "pos"))
            channel = rng.choice(list(INTERNAL_CHANNEL_SHARE), len(author), p=list(INTERNAL_CHANNEL_SHARE.values()))
            internal_parts.append(pd.DataFrame({"person": author, "seconds": seconds.astype(np.int64),
                                                "channel": channel, "sentiment": sentiment,
                                                "unit": people.unit[author]}))
            is_neg = sentiment == "neg"
            neg_post_person = np.concatenate([neg_post_person, author[is_neg]])
            neg_post_day = np.concatenate([neg_post_day, seconds[is_neg].astype(np.int64) // 86400])

            # --- features evolve to `today`
            active = (people.hire <= today) & (people.leave > today)
            who = np.flatnonzero(active)
            update_overtime(who, (today - start_day) / DAYS_PER_MONTH)
            drag = ENGAGEMENT_OVERWORK_DRAG * np.maximum(0, people.overtime[who] - 30) / 10
            people.engagement[who] += (ENGAGEMENT_REVERSION * (people.engagement_base[who] - people.engagement[who])
                                       - drag) * months + rng.normal(0, ENGAGEMENT_NOISE_SD * np.sqrt(months), len(who))
            people.pay[who] += PAY_DRIFT * months + rng.normal(0, PAY_NOISE_SD, len(who))
            month = int(np.datetime64(today, "D").astype("datetime64[M]").astype(int) % 12 + 1)
            if month == 4:
                people.pay[who] += 0.02 + 0.02 * (people.rating[who] - 3)
            if month in (6, 12):
                review = people.ability[who] + rng.normal(0, 0.35, len(who))
                people.rating[who] = np.clip(np.round(review * 2) / 2, 1, 5)
            eligible = who[~people.is_head[who] & (people.job_level[who] < PROMOTION_MAX_LEVEL)]
            promotion_rate = PROMOTION_RATE * np.exp(PROMOTION_RATING_SLOPE * (people.rating[eligible] - 3))
            promote_p = 1 - np.exp(-promotion_rate * months)
            promoted = eligible[rng.random(len(eligible)) < promote_p]
            people.job_level[promoted] += 1
            people.last_promo[promoted] = today
            people.engagement[promoted] += ENGAGEMENT_PROMOTION_BUMP
            people.pay[promoted] *= 0.97  # promoted into the lower part of the next band
            movers = who[~people.is_head[who] & (rng.random(len(who)) < 1 - np.exp(-TRANSFER_RATE * months))]
            for person in movers:
                options = leaves_of_dept.get(org.department[people.unit[person]], np.zeros(0, int))
                options = options[options != people.unit[person]]
                if len(options):
                    people.unit[person] = rng.choice(options)

            # --- managers: a change is dated at the first snapshot that shows it
            manager = _managers(org, people, active)
            changed = active & (people.manager > -2) & (manager != people.manager)
            people.last_manager_change[changed] = today
            people.engagement[changed] -= ENGAGEMENT_MANAGER_CHANGE_DROP
            people.manager = np.where(active, manager, people.manager)
            # rounded as published, so truth_monthly_hazard is reproducible from the snapshot columns
            people.engagement[who] = np.clip(people.engagement[who], 0, 100).round(2)
            people.pay[who] = np.clip(people.pay[who], 0.45, 1.9).round(4)

        active = (people.hire <= today) & (people.leave > today)
        who = np.flatnonzero(active)
        recent = neg_post_day > today - 90
        neg_posts_90d = np.bincount(neg_post_person[recent], minlength=len(people.unit))
        drivers = _drivers(people, today, neg_posts_90d)
        hazard = h0 * np.exp(drivers @ BETA)
        if step > 0:
            snapshot_parts.append(_snapshot_rows(people, who, today, drivers, hazard))
        previous = today
        if step == len(checkpoints):
            break
        # --- leaving during (today, next checkpoint], replacements hired into the same seat
        next_day = checkpoints[step]
        length = next_day - today
        leaves = who[rng.random(len(who)) < 1 - np.exp(-hazard[who] * length / DAYS_PER_MONTH)]
        people.leave[leaves] = today + rng.integers(1, length + 1, len(leaves))
        hire_day = people.leave[leaves] + rng.integers(*REPLACEMENT_DELAY_DAYS, len(leaves))
        seats = leaves[hire_day <= end_day]
        if len(seats):
            level = np.where(people.is_head[seats], people.job_level[seats],
                             _seat_levels(rng, org, people.unit[seats], people.is_head[seats]))
            joiners = _new_people(rng, org, people.unit[seats], people.is_head[seats], level,
                                  hire_day[hire_day <= end_day], today, np.zeros(len(seats), np.int64))
            joiners.engagement = np.clip(joiners.engagement_base + 5, 0, 100)  # the honeymoon
            _append(people, joiners)

    internal = pd.concat(internal_parts, ignore_index=True)
    trend = {org.unit_ids[d]: round(float(dept_trend[d]), 4) for d in departments}
    return Workforce(people, pd.concat(snapshot_parts, ignore_index=True), internal, h0, trend)


def _snapshot_rows(people: People, who: np.ndarray, today: int, drivers: np.ndarray,
                   hazard: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "person": who, "snapshot_day": today, "unit": people.unit[who], "manager": people.manager[who],
        "job_level": people.job_level[who], "pay_vs_band": people.pay[who], "overtime_hours": people.overtime[who],
        "last_promo": people.last_promo[who], "performance_rating": people.rating[who],
        "engagement_score": people.engagement[who],
        "manager_changed_90d": drivers[who, 3].astype(bool), "neg_internal_posts_90d": drivers[who, 5].astype(int),
        "truth_monthly_hazard": hazard[who],
    })
