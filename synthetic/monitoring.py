"""Monitoring truth: volume series with planted spikes and fix effects, and bursts of complaints about one issue.

The company's own posts (texts.py) are a few a day per department: enough to train text models, far too few to
show a spike in 10-minute buckets. Monitoring reads the volume a social-listening feed delivers, so this module
plants such a feed for each department: a weekly rhythm (daytime and evening peaks, quieter weekends outside,
near-silent weekends inside), day-to-day shocks shared by the company and per department, a slow drift, mild
overdispersion per bucket, and a company-wide shift some weeks (a confounder a before/after comparison would
mistake for an effect). On top: spikes with a known start and size, and incidents followed by a fix whose
effect on the negative rate is known (works / no effect / backfires). Complaint bursts are texts: several
wordings of one product issue within hours, among unrelated complaints and questions about the same products.

`plant_series` is what the bench and the tests call with their own seeds; `monitoring_tables` shapes it for
`generate(monitoring=True)` (series.parquet, complaint_bursts.parquet and truth.json's "monitoring" section).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.org import Org
from synthetic.truth import (
    COMPLAINT_BACKGROUND,
    COMPLAINT_ISSUE_HOURS,
    COMPLAINT_ISSUE_SIZE,
    COMPLAINT_ISSUES,
    EFFECT_KINDS,
    EFFECT_RESOLVE_DAYS,
    EFFECT_SHARE,
    EFFECT_WINDOW_DAYS,
    FOLLOWERS_PER_NEG_POST,
    MONITOR_BUCKET_MINUTES,
    MONITOR_BUCKET_NB_SIZE,
    MONITOR_COMMON_EVENT,
    MONITOR_DAY_SD,
    MONITOR_NEG_SHARE,
    MONITOR_TOTAL_RATE,
    MONITOR_TREND_SD_PER_DAY,
    MONITOR_WEEKS,
    SPIKE_DECAY_MIN,
    SPIKE_MIN_EXTRA,
    SPIKE_NEUTRAL_SHARE,
    SPIKE_RATE_PER_30D,
    SPIKE_RATIO,
    SPIKE_RISE_MIN,
)

WARMUP_WEEKS = 4  # no planted spike before a full seasonal baseline exists
INTERNAL_FUNCTIONS = ("hr", "culture", "management")
FUNCTION_SERIES = {  # the channel and loss type a department's feed is counted under
    "marketing": ("weibo", "reputation"), "customer_service": ("app_review", "reputation"),
    "sales": ("weibo", "reputation"), "production": ("weibo", "reputation"), "rd": ("maimai", "opportunity"),
    "legal": ("news", "reputation"), "hr": ("employee_forum", "culture"), "culture": ("employee_forum", "culture"),
    "management": ("employee_forum", "culture"),
}


@dataclass
class PlantedSeries:
    start: pd.Timestamp      # start of bucket 0 (a Monday 00:00 when generated here)
    bucket_minutes: int
    total: np.ndarray        # (series, buckets) posts
    negative: np.ndarray     # (series, buckets) negative posts
    reach: np.ndarray        # (series, buckets) followers of the negative posts
    spikes: list[dict]       # series, start_minute, start_bucket, end_bucket, ratio, peak_extra, incident
    effects: list[dict]      # series, created_bucket, resolved_bucket, size, kind
    series: list[dict]       # per series: base_total, neg_share, internal
    common_event: dict | None

    def time(self, bucket: int) -> pd.Timestamp:
        return self.start + pd.Timedelta(minutes=self.bucket_minutes * bucket)


def weekly_profile(rng: np.random.Generator, internal: bool) -> np.ndarray:
    """168 hourly multipliers with mean 1: outside feeds peak late morning and evening and stay busy at
    weekends; inside feeds follow office hours and go quiet at weekends."""
    hours = np.arange(24)
    shift = rng.uniform(-1.0, 1.0)
    if internal:
        day = 0.08 + np.exp(-(((hours - 10.5 - shift) / 2.5) ** 2)) \
            + 0.8 * np.exp(-(((hours - 15.5 - shift) / 2.5) ** 2))
        weekend = rng.uniform(0.25, 0.45)
    else:
        day = 0.2 + 0.9 * np.exp(-(((hours - 11.5 - shift) / 3.0) ** 2)) \
            + 1.3 * np.exp(-(((hours - 21 - shift) / 2.5) ** 2))
        weekend = rng.uniform(1.0, 1.3)
    week = np.concatenate([day * (weekend if d >= 5 else 1.0) for d in range(7)])
    return week / week.mean()


def _nb(rng: np.random.Generator, mean: np.ndarray, size: float) -> np.ndarray:
    """Negative binomial counts with the given means (Poisson-gamma mixture)."""
    return rng.poisson(mean * rng.gamma(size, 1.0 / size, mean.shape))


def plant_series(rng: np.random.Generator, n_series: int, weeks: int, start: pd.Timestamp | str,
                 bucket_minutes: int = MONITOR_BUCKET_MINUTES, internal: np.ndarray | None = None,
                 spikes: bool = True, effects: bool = True) -> PlantedSeries:
    """`n_series` feeds of `weeks` weeks from `start` with planted spikes (after WARMUP_WEEKS) and fix effects."""
    start = pd.Timestamp(start)
    per_hour = 60 // bucket_minutes
    n = weeks * 7 * 24 * per_hour
    days = weeks * 7
    internal = rng.random(n_series) < 0.3 if internal is None else np.asarray(internal, bool)
    base = np.exp(rng.uniform(*np.log(MONITOR_TOTAL_RATE), n_series))
    neg_share = rng.uniform(*MONITOR_NEG_SHARE, n_series)
    hour_of_week = ((np.arange(n) // per_hour) + (start.dayofweek * 24 + start.hour)) % 168
    profile = np.stack([weekly_profile(rng, bool(i))[hour_of_week] for i in internal])
    day = np.arange(n) // (24 * per_hour)
    common = np.exp(rng.normal(0, MONITOR_DAY_SD["common"], days))
    own = np.exp(rng.normal(0, MONITOR_DAY_SD["series"], (n_series, days)))
    drift = np.exp(np.cumsum(rng.normal(0, MONITOR_TREND_SD_PER_DAY, (n_series, days)), axis=1))
    level = base[:, None] * profile * (common[None, :] * own * drift)[:, day]
    neg_factor = np.ones((n_series, n))
    event = None
    if rng.random() < MONITOR_COMMON_EVENT["prob"]:
        length = int(rng.integers(*MONITOR_COMMON_EVENT["days"]))
        first = int(rng.integers(0, max(1, days - length)))
        factor = float(rng.uniform(*MONITOR_COMMON_EVENT["factor"]))
        neg_factor[:, (day >= first) & (day < first + length)] *= factor
        event = {"first_day": first, "days": length, "negative_factor": round(factor, 3)}

    planted_effects: list[dict] = []
    incidents: list[tuple[int, int]] = []  # (series, start minute)
    if effects:
        window = EFFECT_WINDOW_DAYS * 24 * 60
        names = list(EFFECT_KINDS)
        shares = np.array([EFFECT_KINDS[k][0] for k in names])
        for s in np.flatnonzero(rng.random(n_series) < EFFECT_SHARE):
            resolve = rng.uniform(*EFFECT_RESOLVE_DAYS) * 24 * 60
            lo, hi = window, days * 24 * 60 - window - resolve
            if hi <= lo:
                continue
            created = int(rng.uniform(lo, hi))
            kind = names[rng.choice(len(names), p=shares / shares.sum())]
            size = float(rng.uniform(*EFFECT_KINDS[kind][1]))
            resolved = created + int(resolve)
            neg_factor[s, resolved // bucket_minutes:] *= 1 + size
            planted_effects.append({"series": int(s), "created_bucket": created // bucket_minutes,
                                    "resolved_bucket": resolved // bucket_minutes, "size": round(size, 4),
                                    "kind": kind})
            incidents.append((int(s), created))

    neg_mean = level * neg_share[:, None] * neg_factor
    other_mean = level * (1 - neg_share[:, None])
    extra_neg = np.zeros((n_series, n))
    planted_spikes = []
    wanted = []
    lo, hi = WARMUP_WEEKS * 7 * 24 * 60, days * 24 * 60 - 6 * 60
    if spikes and hi > lo:  # a feed shorter than the warm-up (a month's company) gets no planted spikes
        for s in range(n_series):
            count = rng.poisson(SPIKE_RATE_PER_30D * (days - WARMUP_WEEKS * 7) * 24 * 60 / (30 * 24 * 60))
            for minute in np.sort(rng.uniform(lo, hi, count)):
                wanted.append((s, int(minute), False))
    wanted += [(s, m, True) for s, m in incidents]
    taken: dict[int, list[int]] = {}
    for s, minute, incident in sorted(wanted, key=lambda w: (w[0], w[1])):
        if any(abs(minute - other) < 12 * 60 for other in taken.get(s, [])):
            continue  # spikes of one series at least 12 h apart, so each is judged on its own
        taken.setdefault(s, []).append(minute)
        planted_spikes.append(_spike(rng, s, minute, incident, neg_mean, extra_neg, bucket_minutes))
    negative = _nb(rng, neg_mean + extra_neg, MONITOR_BUCKET_NB_SIZE)
    other = _nb(rng, other_mean + extra_neg * SPIKE_NEUTRAL_SHARE / (1 - SPIKE_NEUTRAL_SHARE),
                MONITOR_BUCKET_NB_SIZE)
    median, sigma = FOLLOWERS_PER_NEG_POST
    reach = np.floor(negative * median * np.exp(sigma**2 / 2) * rng.gamma(4.0, 0.25, negative.shape))
    planted_spikes.sort(key=lambda s: (s["series"], s["start_minute"]))
    return PlantedSeries(
        start=start, bucket_minutes=bucket_minutes, total=negative + other, negative=negative,
        reach=reach.astype(np.int64), spikes=planted_spikes, effects=planted_effects,
        series=[{"base_total": round(float(b), 3), "neg_share": round(float(q), 3), "internal": bool(i)}
                for b, q, i in zip(base, neg_share, internal, strict=True)],
        common_event=event)


def _spike(rng, s: int, minute: int, incident: bool, neg_mean: np.ndarray, extra: np.ndarray,
           bucket_minutes: int) -> dict:
    """Add one spike's extra negative posts (rise to the peak, then exponential decay) to `extra`."""
    n = extra.shape[1]
    ratio = float(rng.uniform(*SPIKE_RATIO))
    rise, decay = float(rng.uniform(*SPIKE_RISE_MIN)), float(rng.uniform(*SPIKE_DECAY_MIN))
    first = minute // bucket_minutes
    normal = float(neg_mean[s, first: first + 60 // bucket_minutes].mean())  # the hour's normal per bucket
    peak = max((ratio - 1.0) * normal, float(np.exp(rng.uniform(*np.log(SPIKE_MIN_EXTRA)))))
    minutes = np.arange(0, int(rise + 5 * decay))
    shape = np.minimum(1.0, (minutes + 0.5) / max(rise, 0.5)) * np.exp(-np.maximum(0.0, minutes - rise) / decay)
    buckets = (minute + minutes) // bucket_minutes
    keep = buckets < n
    extra[s] += np.bincount(buckets[keep], weights=shape[keep] * peak / bucket_minutes, minlength=n)[:n]
    end = min(n - 1, (minute + int(rise + decay * np.log(10))) // bucket_minutes)
    return {"series": s, "start_minute": minute, "start_bucket": first, "end_bucket": int(end),
            "ratio": round(ratio, 3), "peak_extra_per_bucket": round(peak, 3),
            "normal_per_bucket": round(normal, 3), "incident": incident}


# ------------------------------------------------------------------------------- the company's monitoring feed
def monitoring_tables(rng: np.random.Generator, org: Org, start: pd.Timestamp, days: int,
                      corpus: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
    """series.parquet (one row per department and 10-minute bucket with posts), complaint_bursts.parquet and the
    truth: the last MONITOR_WEEKS weeks (whole weeks from a Monday) of the generated period."""
    end = start + pd.Timedelta(days=days)
    weeks = min(MONITOR_WEEKS, days // 7)
    first = (end - pd.Timedelta(weeks=weeks)).normalize()
    first -= pd.Timedelta(days=first.dayofweek)  # a Monday, so bucket 0 is the week's first
    weeks = int((end - first).days // 7)
    departments = np.flatnonzero(org.level == 2)
    functions = [org.function[d] for d in departments]
    planted = plant_series(rng, len(departments), weeks, first,
                           internal=np.array([f in INTERNAL_FUNCTIONS for f in functions]))
    unit_ids = np.array(org.unit_ids, dtype=object)[departments]
    series_index, bucket = np.nonzero(planted.total)
    channel = np.array([FUNCTION_SERIES[f][0] for f in functions], dtype=object)
    loss = np.array([FUNCTION_SERIES[f][1] for f in functions], dtype=object)
    series = pd.DataFrame({
        "bucket_start": (first + pd.to_timedelta(bucket * planted.bucket_minutes, unit="min")).astype("datetime64[s]"),
        "department_id": unit_ids[series_index], "channel": channel[series_index], "loss_type": loss[series_index],
        "keyword_category": "none", "kind": "post", "total": planted.total[series_index, bucket],
        "negative": planted.negative[series_index, bucket], "neg_reach": planted.reach[series_index, bucket],
    })
    bursts, issues = _complaint_bursts(rng, org, end, corpus)

    def at(b: int) -> str:
        return planted.time(b).isoformat()

    truth = {
        "bucket_minutes": planted.bucket_minutes, "start": first.isoformat(), "weeks": weeks,
        "warmup_weeks": WARMUP_WEEKS, "common_event": planted.common_event,
        "series": [{"department_id": unit_ids[i], "channel": channel[i], "loss_type": loss[i], **params}
                   for i, params in enumerate(planted.series)],
        "spikes": [{"department_id": unit_ids[s["series"]], "start": (first + pd.Timedelta(minutes=s["start_minute"]))
                    .isoformat(), "end": at(s["end_bucket"] + 1), **{k: v for k, v in s.items() if k != "series"}}
                   for s in planted.spikes],
        "effects": [{"department_id": unit_ids[e["series"]], "loss_type": loss[e["series"]],
                     "created_at": at(e["created_bucket"]), "resolved_at": at(e["resolved_bucket"]),
                     "size": e["size"], "kind": e["kind"],
                     "metric": "negative posts per day, relative change after the fix (DiD estimand)"}
                    for e in planted.effects],
        "complaint_issues": issues,
    }
    return {"series": series, "complaint_bursts": bursts}, truth


# One product issue per entry: product, the function that owns it, and wordings of the same problem.
ISSUES = (
    ("X5扫地机器人", "production", ("充不进电", "充电两天就坏了", "电池一充满就掉电", "充电座接触不良，充不上电")),
    ("Q3蓝牙耳机", "production", ("左耳没声音", "左耳机突然不响了", "一边耳机没有声音", "左边耳机时有时无")),
    ("会员积分", "customer_service",
     ("积分莫名被清零", "积分到期没有任何提醒就清零了", "积分少了一大半", "积分被清空了")),
    ("App 3.2版本", "rd", ("一打开就闪退", "更新后频繁闪退", "登录后闪退进不去", "升级以后老是闪退")),
    ("P7空气净化器", "production", ("滤网异味很重", "开机有一股焦味", "出风有刺鼻气味", "用起来一股怪味")),
    ("年卡套餐", "sales", ("被自动续费扣款", "没有同意就自动续费扣钱", "自动续费取消不了", "到期自动扣了年费")),
    ("L2智能门锁", "rd", ("指纹识别失灵", "指纹经常识别不了", "指纹解锁总是失败", "录入的指纹打不开")),
    ("夏季促销订单", "customer_service", ("发货拖了两周", "下单半个月还没发货", "一直显示待发货", "付款后迟迟不发货")),
)
OPENERS = ("", "", "上周买的", "刚收到的", "家里的", "用了不到一个月的", "第二次买的", "朋友推荐买的")
TAILS = {"neg": ("，要求退货退款", "，客服一直推脱", "，希望尽快处理", "，太失望了", "，请给个说法", "，申请换货",
                 "，打了三次电话都没解决"),
         "mild": ("，希望能改进一下", "，麻烦看一下", "，有点影响使用", "，请问怎么处理", "，不知道是不是个例")}
QUESTIONS = ("什么时候有优惠", "怎么设置定时", "能开发票吗", "物流到哪了", "有没有新颜色", "保修期是多久")
COMPLAINT_CHANNELS = ("complaint_hotline", "app_review", "online_chat", "email")


def _complaint_bursts(rng, org: Org, end: pd.Timestamp, corpus: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Bursts of complaints about one issue in the last two weeks, among unrelated complaints and product
    questions (hard negatives: same product, another matter)."""
    departments = np.flatnonzero(org.level == 2)
    span = pd.Timedelta(days=14)
    rows, issues = [], []
    chosen = rng.choice(len(ISSUES), min(COMPLAINT_ISSUES, len(ISSUES)), replace=False)
    for number, index in enumerate(chosen):
        product, function, wordings = ISSUES[index]
        options = [d for d in departments if org.function[d] == function]
        unit = org.unit_ids[int(rng.choice(options))]
        size = int(rng.integers(COMPLAINT_ISSUE_SIZE[0], COMPLAINT_ISSUE_SIZE[1] + 1))
        hours = float(rng.uniform(*COMPLAINT_ISSUE_HOURS))
        begin = end - span + pd.Timedelta(hours=float(rng.uniform(0, 14 * 24 - hours)))
        mild = number % 2 == 1
        tails = TAILS["mild" if mild else "neg"]
        for _ in range(size):
            text = f"{rng.choice(OPENERS)}{product}{'的' if rng.random() < 0.3 else ''}{rng.choice(wordings)}" \
                   f"{rng.choice(tails)}"
            rows.append((text, begin + pd.Timedelta(hours=float(rng.uniform(0, hours))), unit,
                         int(rng.integers(1, 3) if mild else rng.integers(3, 5)), number))
        issues.append({"issue": number, "product": product, "department_id": unit, "size": size,
                       "start": begin.isoformat(), "hours": round(hours, 2), "mild": mild})
    desk = corpus[corpus["channel"].isin(("complaint_hotline", "app_review"))
                  & corpus["sentiment"].isin(("neg", "neu"))].reset_index(drop=True)
    for _ in range(COMPLAINT_BACKGROUND):
        unit = org.unit_ids[int(rng.choice(departments))]
        if rng.random() < 0.15:  # a question about a product with an issue, to the department that owns it
            issue = issues[int(rng.integers(len(issues)))]
            text, unit = f"{issue['product']}{rng.choice(QUESTIONS)}？", issue["department_id"]
        else:
            text = str(desk["text"].iloc[int(rng.integers(len(desk)))]) if len(desk) else "想咨询一下售后电话"
        rows.append((text, end - span + pd.Timedelta(minutes=float(rng.uniform(0, 14 * 24 * 60))), unit,
                     int(rng.integers(1, 5)), -1))
    frame = pd.DataFrame(rows, columns=["text", "created_at", "department_id", "severity", "planted_issue"])
    frame["channel"] = rng.choice(COMPLAINT_CHANNELS, len(frame))
    frame["created_at"] = frame["created_at"].astype("datetime64[s]")
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    frame.insert(0, "complaint_id", [f"B{i:06d}" for i in range(1, len(frame) + 1)])
    columns = ["complaint_id", "text", "channel", "created_at", "department_id", "severity", "planted_issue"]
    return frame[columns], issues
