"""The planted truth: every parameter the company is generated from, in one module of constants.

Models are checked against these numbers (generate() writes them to truth.json; data/README.md gives the
equations), so they live apart from the code that draws from them: one place to read what was planted, and a
module that imports nothing, so every other part of the package can depend on it without a circle.
"""
from __future__ import annotations

# ----------------------------------------------------------------------------------------- planted truth
# Attrition: monthly hazard h = h0 * exp(sum(BETA[k] * x_k)); x_k defined in _drivers(); h0 calibrated per run.
HAZARD_BETA = {
    "overtime_excess": 0.30,          # per 10 h/month above NORMAL_OVERTIME_HOURS
    "pay_below_band": 3.0,            # max(0, 1 - pay_vs_band)
    "years_since_promotion": 0.15,    # years since last promotion (or hire)
    "manager_changed_90d": 0.7,       # manager_id changed at a snapshot within the last 90 days
    "low_engagement": 0.35,           # per 10 points below LOW_ENGAGEMENT_THRESHOLD
    "neg_internal_posts_90d": 0.8,    # negative employee_forum / wechat_group posts by the person, last 90 days
}
TARGET_YEARLY_ATTRITION = 0.115       # h0 is solved so the starting population would lose this share in a year
NORMAL_OVERTIME_HOURS = 20.0
LOW_ENGAGEMENT_THRESHOLD = 60.0
DAYS_PER_MONTH = 365.25 / 12

# Workforce dynamics (per month unless noted)
OVERTIME_BASE = {"rd": 32, "production": 30, "customer_service": 28, "sales": 26, "marketing": 18,
                 "management": 16, "legal": 14, "hr": 12, "culture": 10}
OVERTIME_TREND = (0.3, 0.5)           # per-department trend in h/month per month ~ N(mean, sd)
OVERTIME_PERSON_SD, OVERTIME_NOISE_SD = 8.0, 5.0
ENGAGEMENT_REVERSION = 0.15           # pull towards the person's baseline
ENGAGEMENT_OVERWORK_DRAG = 1.0        # points lost per 10 h above 30 h overtime
ENGAGEMENT_NOISE_SD = 2.5
ENGAGEMENT_PROMOTION_BUMP, ENGAGEMENT_MANAGER_CHANGE_DROP = 6.0, 4.0
PROMOTION_RATE, PROMOTION_RATING_SLOPE, PROMOTION_MAX_LEVEL = 0.009, 0.9, 7
TRANSFER_RATE = 0.006                 # moves to another team of the same department (a manager change)
PAY_DRIFT, PAY_NOISE_SD = -0.002, 0.004  # bands rise faster than pay; April review adds 0.02 + 0.02*(rating-3)
REPLACEMENT_DELAY_DAYS = (14, 60)

# Internal posts: rate per person-year and P(neg), both rising as engagement falls
INTERNAL_POST_RATE, INTERNAL_POST_RATE_SLOPE = 0.5, 0.3
INTERNAL_NEG_LOGIT = {"intercept": -0.7, "low_engagement": 0.6, "overtime_excess": 0.2}
INTERNAL_CHANNEL_SHARE = {"employee_forum": 0.6, "wechat_group": 0.4}
EXTERNAL_POSTS_PER_EMPLOYEE_YEAR = 0.22
EXTERNAL_CHANNEL_SHARE = {"weibo": 0.28, "xiaohongshu": 0.14, "douyin": 0.14, "maimai": 0.12, "zhihu": 0.10,
                          "news": 0.10, "app_review": 0.12}
EXTERNAL_SENTIMENT_MIX = {  # P(neg, neu, pos)
    "weibo": (0.45, 0.30, 0.25), "xiaohongshu": (0.35, 0.25, 0.40), "douyin": (0.40, 0.30, 0.30),
    "maimai": (0.55, 0.25, 0.20), "zhihu": (0.40, 0.40, 0.20), "news": (0.20, 0.65, 0.15),
    "app_review": (0.50, 0.15, 0.35),
}
COMPLAINTS_PER_EMPLOYEE_YEAR = 0.5
COMPLAINT_CHANNEL_SHARE = {"complaint_hotline": 0.30, "app_review": 0.20, "email": 0.10, "weibo": 0.15,
                           "store": 0.10, "online_chat": 0.15}
COMPLAINT_SENTIMENT_MIX = (0.80, 0.15, 0.05)

# Cascades: marked Hawkes process (SEISMIC, Zhao et al. KDD 2015). An event with f followers has on average
# n* * f / E[f_reposter] children; delays follow the normalized kernel phi (integral 1).
KERNEL_S0_SECONDS, KERNEL_THETA = 300.0, 0.25
CHANNEL_BRANCHING = {"weibo": 0.50, "douyin": 0.55, "xiaohongshu": 0.42, "zhihu": 0.38, "maimai": 0.40,
                     "news": 0.45, "app_review": 0.15, "employee_forum": 0.20, "wechat_group": 0.30}
SENTIMENT_BRANCHING = {"neg": 1.4, "neu": 0.8, "pos": 1.0}
BRANCHING_NOISE_SD, MAX_BRANCHING = 0.15, 0.98
NEAR_CRITICAL_SHARE, NEAR_CRITICAL_RANGE = 0.02, (0.90, 0.98)
CASCADE_HORIZON_SECONDS, CASCADE_CAP = 24 * 3600, 20_000
REPOSTER_FOLLOWERS = (150.0, 1.7)     # log-normal (median, sigma)
AUTHOR_FOLLOWERS = {"weibo": (3000, 2.0), "xiaohongshu": (2000, 1.8), "douyin": (5000, 2.0), "maimai": (300, 1.2),
                    "zhihu": (1500, 1.8), "news": (200_000, 1.2), "app_review": (50, 1.0),
                    "employee_forum": (80, 0.8), "wechat_group": (150, 0.6)}
REGION_STAY_PROB = 0.55               # a repost comes from the parent's province, else from the population mix

# Province population mix: where external authors and reposters (who do not stay in the parent's province) are.
PROVINCE_WEIGHT = {
    "广东": 9.0, "山东": 7.0, "河南": 7.0, "江苏": 6.0, "四川": 6.0, "河北": 5.0, "湖南": 5.0, "浙江": 5.0, "安徽": 4.5,
    "湖北": 4.0, "广西": 3.5, "云南": 3.3, "江西": 3.2, "辽宁": 3.0, "福建": 3.0, "陕西": 2.8, "贵州": 2.7,
    "山西": 2.5, "重庆": 2.3, "黑龙江": 2.2, "新疆": 1.8, "甘肃": 1.8, "上海": 1.8, "内蒙古": 1.7, "吉林": 1.7,
    "北京": 1.5, "天津": 1.0, "海南": 0.7, "宁夏": 0.5, "青海": 0.4, "西藏": 0.3,
}
PROVINCES = tuple(PROVINCE_WEIGHT)
SENTIMENT_ORDER = ("neg", "neu", "pos")  # the order of every *_SENTIMENT_MIX tuple

# Monitoring (planted only when generate(monitoring=True)): 10-minute volume series per department with a weekly
# rhythm, spikes whose start and size are known, fixes whose effect is known, and bursts of complaints about one
# issue. Rates are per bucket at the weekly mean; the profile multiplies them by hour of the week.
MONITOR_WEEKS = 12                    # the last 12 weeks of the period (all of it when shorter)
MONITOR_BUCKET_MINUTES = 10
MONITOR_TOTAL_RATE = (0.6, 10.0)      # log-uniform posts per bucket per department
MONITOR_NEG_SHARE = (0.2, 0.45)
MONITOR_DAY_SD = {"common": 0.10, "series": 0.12}   # log-normal day shocks (company-wide, per series)
MONITOR_TREND_SD_PER_DAY = 0.01       # random walk of each series' log level
MONITOR_BUCKET_NB_SIZE = 30.0         # negative binomial size of a bucket's count (mild overdispersion)
MONITOR_COMMON_EVENT = {"prob": 0.5, "days": (7, 21), "factor": (0.7, 1.4)}  # a company-wide shift (confounder)
SPIKE_RATE_PER_30D = 1.0              # spikes per series per 30 days (Poisson), never in the first 4 weeks
SPIKE_RATIO = (3.0, 8.0)              # peak negative rate over the hour's normal ...
SPIKE_MIN_EXTRA = (4.0, 24.0)         # ... and at least m extra negative posts per bucket at the peak, m log-uniform
SPIKE_RISE_MIN = (0.0, 10.0)          # minutes to the peak
SPIKE_DECAY_MIN = (60.0, 240.0)       # exponential decay time constant after the peak
SPIKE_NEUTRAL_SHARE = 0.2             # of a spike's extra posts that are not negative (reposts, questions)
EFFECT_SHARE = 0.35                   # of series whose incident is followed by a fix
EFFECT_KINDS = {"works": (0.55, (-0.55, -0.25)), "no_effect": (0.3, (0.0, 0.0)), "backfires": (0.15, (0.2, 0.4))}
EFFECT_RESOLVE_DAYS = (1.0, 4.0)      # incident (warning opened) -> fix (resolved)
EFFECT_WINDOW_DAYS = 14               # pre window before the incident, post window after the fix
FOLLOWERS_PER_NEG_POST = (300.0, 1.5)  # log-normal (median, sigma): the audience of a negative post
COMPLAINT_ISSUES = 6                  # bursts of complaints about one issue ...
COMPLAINT_ISSUE_SIZE = (8, 40)        # ... of this many complaints ...
COMPLAINT_ISSUE_HOURS = (2.0, 12.0)   # ... within this many hours
COMPLAINT_BACKGROUND = 150            # unrelated complaints in the same weeks
