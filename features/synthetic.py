"""Seeded synthetic company: org chart, workforce with planted attrition drivers, posts, complaints, repost cascades.

No real data links HR records, internal posts and social spread, so we simulate one company whose generating
parameters are known (written to truth.json): models are then checked against the truth, not just a holdout score.
Everything is vectorized numpy (5000 people x 365 days well under a minute) and a function of the seed alone
(plus the workplace corpus the texts are drawn from). The equations are documented in data/README.md.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from features.contracts import FUNCTIONS, INTERNAL_CHANNELS
from features.settings import settings

log = logging.getLogger(__name__)

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

# ----------------------------------------------------------------------------------------------- the world
COMPANY = "总裁办"
# division, function, city, departments: (name, function, headcount weight, team names)
SKELETON = (
    ("市场与品牌中心", "marketing", "上海", (
        ("市场部", "marketing", 3, ("品牌组", "数字营销组", "活动策划组", "市场调研组")),
        ("公关部", "marketing", 1, ("媒体关系组", "舆情监测组")))),
    ("客户服务中心", "customer_service", "成都", (
        ("客服部", "customer_service", 5, ("热线服务组", "在线客服组", "投诉处理组", "会员服务组")),
        ("售后服务部", "customer_service", 3, ("维修服务组", "退换货组", "安装服务组")))),
    ("人力资源中心", "hr", "北京", (
        ("人力资源部", "hr", 2, ("招聘组", "薪酬福利组", "培训发展组", "员工关系组")),
        ("企业文化部", "culture", 1, ("文化建设组", "内部传播组")))),
    ("研发中心", "rd", "深圳", (
        ("产品研发部", "rd", 6, ("前端组", "后端组", "移动端组", "测试组", "产品设计组")),
        ("平台技术部", "rd", 4, ("基础架构组", "数据平台组", "安全组", "运维组")),
        ("算法部", "rd", 2, ("推荐算法组", "视觉算法组", "语音组")))),
    ("法务合规中心", "legal", "北京", (
        ("法务部", "legal", 1, ("合同组", "诉讼组")),
        ("合规部", "legal", 1, ("合规审查组", "数据合规组")))),
    ("生产制造中心", "production", "苏州", (
        ("生产部", "production", 7, ("装配一组", "装配二组", "装配三组", "包装组", "设备维护组")),
        ("质量管理部", "production", 2, ("质检组", "品控组", "体系认证组")),
        ("供应链部", "production", 2, ("采购组", "物流组", "仓储组")))),
    ("销售中心", "sales", "广州", (
        ("华东销售部", "sales", 3, ("上海销售组", "杭州销售组", "南京销售组")),
        ("华南销售部", "sales", 3, ("广州销售组", "深圳销售组", "福州销售组")),
        ("华北销售部", "sales", 2, ("北京销售组", "天津销售组", "济南销售组")),
        ("大客户部", "sales", 1, ("政企客户组", "渠道合作组")))),
    ("综合管理中心", "management", "北京", (
        ("战略规划部", "management", 1, ("战略组", "投资组")),
        ("财务部", "management", 2, ("会计组", "资金组", "税务组")),
        ("行政部", "management", 1, ("行政组", "后勤组")))),
)
TEAM_SIZE, SUBTEAM_SPLIT_AT, SUBTEAM_SIZE = 40, 16, 10
VACANT_SHARE = 0.04                   # of team and sub-team units, permanently without a head
SUBTEAM_NAMES = ("第一小组", "第二小组", "第三小组", "第四小组", "第五小组", "第六小组", "第七小组", "第八小组")
HEAD_TITLES = ("首席执行官", "分管副总裁", "部门总监", "经理", "组长")
ROLES = {
    "marketing": ("市场专员", "品牌策划", "新媒体运营"), "customer_service": ("客服专员", "售后工程师", "投诉专员"),
    "hr": ("招聘专员", "薪酬专员", "培训专员", "HRBP"), "culture": ("企业文化专员", "内部传播专员"),
    "rd": ("软件工程师", "测试工程师", "算法工程师", "产品经理"), "legal": ("法务专员", "合规专员"),
    "production": ("生产操作员", "质检员", "采购专员", "工艺工程师"), "sales": ("销售代表", "大客户经理", "销售支持"),
    "management": ("战略分析师", "会计", "行政专员"),
}
STAFF_LEVEL_P = (0.18, 0.30, 0.25, 0.15, 0.08, 0.04)  # job levels 1..6
CITY_PROVINCE = {"北京": "北京", "上海": "上海", "深圳": "广东", "广州": "广东", "杭州": "浙江", "成都": "四川",
                 "武汉": "湖北", "南京": "江苏", "苏州": "江苏", "西安": "陕西"}
PROVINCE_WEIGHT = {
    "广东": 9.0, "山东": 7.0, "河南": 7.0, "江苏": 6.0, "四川": 6.0, "河北": 5.0, "湖南": 5.0, "浙江": 5.0, "安徽": 4.5,
    "湖北": 4.0, "广西": 3.5, "云南": 3.3, "江西": 3.2, "辽宁": 3.0, "福建": 3.0, "陕西": 2.8, "贵州": 2.7,
    "山西": 2.5, "重庆": 2.3, "黑龙江": 2.2, "新疆": 1.8, "甘肃": 1.8, "上海": 1.8, "内蒙古": 1.7, "吉林": 1.7,
    "北京": 1.5, "天津": 1.0, "海南": 0.7, "宁夏": 0.5, "青海": 0.4, "西藏": 0.3,
}
PROVINCES = tuple(PROVINCE_WEIGHT)
SENTIMENT_ORDER = ("neg", "neu", "pos")

# Used only when data/workplace_corpus holds no rows, so generation never depends on that folder.
FALLBACK_CORPUS = (
    ("公司又开始搞996了，加班费一分没有，身体真的扛不住", "neg", "culture", "management", "employee_forum"),
    ("这个季度的绩效考核标准又改了，完全没人提前通知", "neg", "culture", "hr", "employee_forum"),
    ("部门领导换了第三个了，方向一直在变，大家都很迷茫", "neg", "culture", "management", "employee_forum"),
    ("年终奖说好的三个月，最后只发了一个月，心寒", "neg", "culture", "hr", "wechat_group"),
    ("食堂新开了面食窗口，味道不错，推荐大家去试试", "pos", "none", "none", "wechat_group"),
    ("本周五下午三点在三楼会议室开季度总结会，请准时参加", "neu", "none", "none", "wechat_group"),
    ("新来的主管很愿意听意见，组里氛围好多了", "pos", "none", "management", "employee_forum"),
    ("培训课程安排得很实用，学到了不少东西", "pos", "none", "hr", "employee_forum"),
    ("请问报销系统是不是又出问题了？一直提交不了", "neu", "none", "none", "employee_forum"),
    ("买的扫地机器人用了一周就坏了，客服电话打了十次没人接", "neg", "reputation", "customer_service", "weibo"),
    ("这家的新品发布会太敷衍了，宣传和实物差距巨大", "neg", "reputation", "marketing", "weibo"),
    ("听说他们产线工人连续上夜班，出了事故还压着不报", "neg", "reputation", "production", "weibo"),
    ("售后小哥上门很准时，修得也快，点赞", "pos", "none", "customer_service", "weibo"),
    ("他们家今年的广告片拍得挺有意思的", "pos", "none", "marketing", "douyin"),
    ("直播间说的赠品到手根本没有，销售话术太坑了", "neg", "reputation", "sales", "douyin"),
    ("刚到手的耳机音质不错，包装也很用心", "pos", "none", "production", "xiaohongshu"),
    ("用了两周皮肤过敏，找客服只给了张优惠券", "neg", "reputation", "customer_service", "xiaohongshu"),
    ("面试了三轮最后说岗位冻结，浪费大家时间", "neg", "opportunity", "hr", "maimai"),
    ("研发部核心骨干走了一半，项目怕是要延期", "neg", "opportunity", "rd", "maimai"),
    ("这家公司技术氛围不错，导师制度很完善", "pos", "none", "rd", "maimai"),
    ("如何评价该公司最近的裁员传闻？内部人士说法不一", "neu", "none", "management", "zhihu"),
    ("他们的隐私条款写得很模糊，用户数据到底怎么用的？", "neg", "reputation", "legal", "zhihu"),
    ("该公司发布第三季度财报，营收同比增长百分之八", "neu", "none", "management", "news"),
    ("该公司因虚假宣传被市场监管部门罚款", "neg", "reputation", "legal", "news"),
    ("该公司获评年度最佳雇主", "pos", "none", "hr", "news"),
    ("更新后老是闪退，登录都登录不上", "neg", "reputation", "rd", "app_review"),
    ("界面简洁，下单流程很顺畅", "pos", "none", "rd", "app_review"),
    ("订单显示已发货，物流一周没动静，客服也联系不上", "neg", "reputation", "customer_service",
     "complaint_hotline"),
    ("收到的商品和描述不符，要求退货被拒绝", "neg", "reputation", "sales", "complaint_hotline"),
    ("想咨询一下会员积分的到期时间", "neu", "none", "customer_service", "complaint_hotline"),
    ("上次的问题处理得很及时，特地来表扬一下接线员", "pos", "none", "customer_service", "complaint_hotline"),
)


# ------------------------------------------------------------------------------------------------ helpers
def _kernel_c0() -> float:
    """phi(s) = c0 for s <= s0, c0 (s/s0)^-(1+theta) beyond; c0 makes the integral 1 so n* carries the scale."""
    return KERNEL_THETA / (KERNEL_S0_SECONDS * (1 + KERNEL_THETA))


def _lognormal_mean(median: float, sigma: float) -> float:
    return float(median * np.exp(sigma**2 / 2))


def _lognormal_int(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return np.floor(rng.lognormal(np.log(median), sigma, size)).astype(np.int64)


def _snapshot_days(start: pd.Timestamp, days: int) -> np.ndarray:
    """Month ends inside the period, plus the last day when it is not one (as day numbers since 1970)."""
    end = start + pd.Timedelta(days=days - 1)
    ends = list(pd.date_range(start, end, freq="ME"))
    if not ends or ends[-1] != end:
        ends.append(end)
    return np.array([_day(d) for d in ends], dtype=np.int64)


def _day(timestamp: pd.Timestamp) -> int:
    return int(timestamp.to_datetime64().astype("datetime64[D]").astype(np.int64))


def _dates(days: np.ndarray, missing: int) -> pd.Series:
    """Day numbers to datetime64 with `missing` sentinel as NaT."""
    days = np.asarray(days, dtype=np.int64)
    out = days.astype("datetime64[D]").astype("datetime64[s]")
    out[days == missing] = np.datetime64("NaT")
    return pd.Series(out)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


NEVER = np.iinfo(np.int64).max  # leave day of someone still employed
NONE_DAY = np.iinfo(np.int64).min  # no promotion / no manager change yet


# ------------------------------------------------------------------------------------------------ org chart
@dataclass
class Org:
    """Units in creation (= topological) order with the seats (who sits where) of the starting workforce."""

    unit_ids: list[str]
    names: list[str]
    parent: np.ndarray      # -1 for the company
    level: np.ndarray
    function: list[str]
    department: np.ndarray  # level-2 ancestor (itself for a department, -1 above that level)
    city: list[str]
    vacant: np.ndarray      # bool: permanently without a head
    seat_unit: np.ndarray   # one entry per starting employee
    seat_head: np.ndarray   # bool: this seat heads seat_unit

    @property
    def leaves(self) -> np.ndarray:
        has_child = np.zeros(len(self.names), bool)
        has_child[self.parent[self.parent >= 0]] = True
        return ~has_child


def _allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Largest-remainder split of `total` in proportion to weights, each share at least `minimum`."""
    spare = total - minimum * len(weights)
    raw = spare * weights / weights.sum()
    out = np.floor(raw).astype(int)
    out[np.argsort(raw - out)[::-1][: spare - out.sum()]] += 1
    return out + minimum


def build_org(employees: int, rng: np.random.Generator) -> Org:
    """Company -> divisions -> departments -> teams -> sub-teams, sized so the seats add up to `employees`."""
    names, parent, level, function, department, city = [], [], [], [], [], []

    def add(name, parent_idx, unit_level, unit_function, dept_idx, unit_city):
        names.append(name), parent.append(parent_idx), level.append(unit_level)
        function.append(unit_function), department.append(dept_idx), city.append(unit_city)
        return len(names) - 1

    departments = [(d, dept) for d in SKELETON for dept in d[3]]
    n_upper_heads = 1 + len(SKELETON) + len(departments)
    if employees < n_upper_heads * 3:
        raise ValueError(f"employees 至少 {n_upper_heads * 3} (组织架构需要 {n_upper_heads} 个中高层岗位)")
    staff = _allocate(employees - n_upper_heads, np.array([dept[2] for _, dept in departments], float), 2)

    seats_unit, seats_head = [], []
    company = add(COMPANY, -1, 0, "management", -1, "北京")
    seats_unit.append(company), seats_head.append(True)
    division_of = {}
    for division in SKELETON:
        division_of[division[0]] = add(division[0], company, 1, division[1], -1, division[2])
        seats_unit.append(division_of[division[0]]), seats_head.append(True)
    for (division, (dept_name, dept_function, _, team_names)), dept_staff in zip(departments, staff):
        dept = add(dept_name, division_of[division[0]], 2, dept_function, -1, division[2])
        department[dept] = dept
        seats_unit.append(dept), seats_head.append(True)
        n_teams = int(np.clip(round(dept_staff / TEAM_SIZE), 1, len(team_names)))
        for team_name, team_staff in zip(team_names, _allocate(dept_staff, np.ones(n_teams), 1)):
            team = add(team_name, dept, 3, dept_function, dept, division[2])
            if team_staff < SUBTEAM_SPLIT_AT:
                seats_unit += [team] * team_staff
                seats_head += [True] + [False] * (team_staff - 1)
                continue
            seats_unit.append(team), seats_head.append(True)
            n_sub = min(len(SUBTEAM_NAMES), -(-(team_staff - 1) // SUBTEAM_SIZE))
            for sub_name, sub_staff in zip(SUBTEAM_NAMES, _allocate(team_staff - 1, np.ones(n_sub), 1)):
                sub = add(f"{team_name}{sub_name}", team, 4, dept_function, dept, division[2])
                seats_unit += [sub] * sub_staff
                seats_head += [True] + [False] * (sub_staff - 1)

    level_arr = np.array(level)
    seat_unit, seat_head = np.array(seats_unit), np.array(seats_head)
    candidates = np.flatnonzero(level_arr >= 3)
    vacant = np.zeros(len(names), bool)
    vacant[rng.choice(candidates, max(2, round(VACANT_SHARE * len(candidates))), replace=False)] = True
    # a vacant unit's head seat becomes an ordinary seat (in its first sub-unit when it has sub-units)
    parent_arr = np.array(parent)
    for unit in np.flatnonzero(vacant):
        seat = np.flatnonzero((seat_unit == unit) & seat_head)[0]
        children = np.flatnonzero(parent_arr == unit)
        seat_head[seat] = False
        if len(children):
            seat_unit[seat] = children[0]
    return Org(_id_list("U", len(names), 3), names, parent_arr, level_arr, function, np.array(department), city,
               vacant, seat_unit, seat_head)


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
    roles = np.array([ROLES[f][i % len(ROLES[f])] for f, i in zip(unit_function, rng.integers(0, 12, n))], dtype=object)
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


# ------------------------------------------------------------------------------------------------ texts
def _corpus() -> pd.DataFrame:
    from features.loaders import load_workplace_corpus

    corpus = load_workplace_corpus()
    if len(corpus) == 0:
        log.warning("workplace corpus is empty; drawing texts from the %d built-in sentences", len(FALLBACK_CORPUS))
        corpus = pd.DataFrame(FALLBACK_CORPUS, columns=["text", "sentiment", "loss_type", "function", "channel"])
    return corpus.reset_index(drop=True)


def _draw_rows(rng, corpus: pd.DataFrame, channel: np.ndarray, sentiment: np.ndarray,
               family: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """Corpus row per request with the requested sentiment, preferring the same channel, then the channel family
    (internal / external / complaint desk), then any channel. The fallback sentences cover every sentiment."""
    fallback = pd.DataFrame(FALLBACK_CORPUS, columns=["text", "sentiment", "loss_type", "function", "channel"])
    pool = pd.concat([corpus, fallback], ignore_index=True)
    in_corpus = np.arange(len(pool)) < len(corpus)
    rows = np.empty(len(channel), np.int64)
    for (wanted_channel, wanted_sentiment), index in pd.Series(range(len(channel))).groupby([channel, sentiment]):
        same = (pool["sentiment"] == wanted_sentiment).to_numpy()
        tiers = (same & in_corpus & (pool["channel"] == wanted_channel).to_numpy(),
                 same & in_corpus & pool["channel"].isin(family).to_numpy(), same & in_corpus, same)
        candidates = np.flatnonzero(next(t for t in tiers if t.any()))
        rows[index.to_numpy()] = rng.choice(candidates, len(index))
    return rows, pool


def _department_for(rng, org: Org, functions: np.ndarray, default_function: str | None) -> np.ndarray:
    """A department (level-2 unit) of the text's function; a text naming none goes to `default_function`'s
    departments, or nowhere (None) without a default."""
    departments = np.flatnonzero(org.level == 2)
    by_function = {f: departments[[org.function[d] == f for d in departments]] for f in FUNCTIONS}
    out = np.full(len(functions), None, dtype=object)
    for function in np.unique(functions):
        options = by_function.get(function if function in by_function else default_function, np.zeros(0, int))
        if len(options):
            index = np.flatnonzero(functions == function)
            out[index] = np.array(org.unit_ids, dtype=object)[rng.choice(options, len(index))]
    return out


# ----------------------------------------------------------------------------------------------- cascades
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


# --------------------------------------------------------------------------------------------------- output
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


def _id_list(prefix: str, n: int, width: int) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def generate(employees: int = settings.employees, days: int = settings.days, seed: int = settings.seed,
             out_dir: Path | str | None = None) -> dict[str, Path]:
    """Write org_units, employees, snapshots, posts, complaints, reposts (Parquet) and truth.json to out_dir.

    Same seed (and corpus) -> byte-identical tables. Returns {table name: path}.
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
    paths = {}
    for name, frame in tables.items():
        paths[name] = out / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    truth = _truth(seed, employees, days, start, org, work, tables, corpus)
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(truth, ensure_ascii=False, indent=2), encoding="utf-8")
    return paths


def _posts(rng, org: Org, people: People, ids: np.ndarray, internal: pd.DataFrame, corpus: pd.DataFrame,
           employees: int, days: int, start: pd.Timestamp) -> pd.DataFrame:
    """Internal posts from the workforce simulation plus external social posts, with texts and planted n*."""
    n_external = rng.poisson(EXTERNAL_POSTS_PER_EMPLOYEE_YEAR * employees * days / 365.25)
    ext_channel = rng.choice(list(EXTERNAL_CHANNEL_SHARE), n_external, p=list(EXTERNAL_CHANNEL_SHARE.values()))
    ext_sentiment = np.empty(n_external, dtype=object)
    for channel, mix in EXTERNAL_SENTIMENT_MIX.items():
        index = np.flatnonzero(ext_channel == channel)
        ext_sentiment[index] = rng.choice(SENTIMENT_ORDER, len(index), p=mix)
    start_second = _day(start) * 86400
    ext_seconds = start_second + rng.integers(0, days * 86400, n_external)

    internal_n = len(internal)
    channel = np.concatenate([internal["channel"].to_numpy(dtype=object), ext_channel.astype(object)])
    sentiment = np.concatenate([internal["sentiment"].to_numpy(dtype=object), ext_sentiment])
    rows_internal, pool = _draw_rows(rng, corpus, channel[:internal_n], sentiment[:internal_n], INTERNAL_CHANNELS)
    external_family = tuple(EXTERNAL_CHANNEL_SHARE)
    rows_external, _ = _draw_rows(rng, corpus, channel[internal_n:], sentiment[internal_n:], external_family)
    drawn = pool.iloc[np.concatenate([rows_internal, rows_external])].reset_index(drop=True)

    unit_ids = np.array(org.unit_ids, dtype=object)
    author = internal["person"].to_numpy()
    external_departments = _department_for(rng, org, drawn["function"].to_numpy()[internal_n:], None)
    n = len(channel)
    followers = np.empty(n, np.int64)
    for name, (median, sigma) in AUTHOR_FOLLOWERS.items():
        index = np.flatnonzero(channel == name)
        followers[index] = _lognormal_int(rng, median, sigma, len(index))
    province_p = np.array(list(PROVINCE_WEIGHT.values()))
    author_region = np.array([CITY_PROVINCE[c] for c in people.location[author]], dtype=object)
    region = np.concatenate([author_region, rng.choice(np.array(PROVINCES, dtype=object), n_external,
                                                       p=province_p / province_p.sum())])
    labels = drawn["sentiment"].to_numpy()
    base = np.array([CHANNEL_BRANCHING[c] for c in channel]) * np.array([SENTIMENT_BRANCHING[s] for s in labels])
    branching = np.minimum(MAX_BRANCHING, base * np.exp(rng.normal(0, BRANCHING_NOISE_SD, n)))
    near_critical = rng.random(n) < NEAR_CRITICAL_SHARE
    branching[near_critical] = rng.uniform(*NEAR_CRITICAL_RANGE, near_critical.sum())

    posts = pd.DataFrame({
        "created_at": np.concatenate([internal["seconds"].to_numpy(), ext_seconds]).astype("datetime64[s]"),
        "text": drawn["text"], "channel": channel, "author_followers": followers, "region": region,
        "department_id": np.concatenate([unit_ids[internal["unit"].to_numpy()], external_departments]),
        "employee_id": np.concatenate([ids[author], np.full(n_external, None)]),
        "internal": np.arange(n) < internal_n,
        "sentiment": labels, "loss_type": drawn["loss_type"], "function": drawn["function"],
        "branching": branching.round(4), "near_critical": near_critical,
    })
    posts = posts.sort_values("created_at", kind="stable").reset_index(drop=True)
    posts.insert(0, "post_id", _id_list("P", len(posts), 6))
    return posts


def _complaints(rng, org: Org, corpus: pd.DataFrame, employees: int, days: int, start: pd.Timestamp) -> pd.DataFrame:
    """Customer complaints: texts from the complaint-desk part of the corpus, routed to the department named."""
    n = rng.poisson(COMPLAINTS_PER_EMPLOYEE_YEAR * employees * days / 365.25)
    channel = rng.choice(list(COMPLAINT_CHANNEL_SHARE), n, p=list(COMPLAINT_CHANNEL_SHARE.values()))
    sentiment = rng.choice(SENTIMENT_ORDER, n, p=COMPLAINT_SENTIMENT_MIX)
    corpus_channel = np.where(np.isin(channel, ("app_review", "weibo")), channel, "complaint_hotline")
    rows, pool = _draw_rows(rng, corpus, corpus_channel, sentiment, ("complaint_hotline", "app_review"))
    drawn = pool.iloc[rows].reset_index(drop=True)
    labels = drawn["sentiment"].to_numpy()
    severity_base = np.select([labels == "neg", labels == "neu"], [3, 1], 1)
    severity = np.clip(severity_base + rng.integers(0, 3, n) + (drawn["loss_type"].to_numpy() == "reputation"), 1, 5)
    customers = rng.zipf(1.6, n) % (employees * 4)
    frame = pd.DataFrame({
        "created_at": (_day(start) * 86400 + rng.integers(0, days * 86400, n)).astype("datetime64[s]"),
        "text": drawn["text"], "channel": channel,
        "department_id": _department_for(rng, org, drawn["function"].to_numpy(), "customer_service"),
        "customer_id": [f"K{c:06d}" for c in customers], "severity": severity,
        "sentiment": labels, "loss_type": drawn["loss_type"], "function": drawn["function"],
    })
    frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    frame.insert(0, "complaint_id", _id_list("C", len(frame), 6))
    return frame[["complaint_id", "text", "channel", "created_at", "department_id", "customer_id", "severity",
                  "sentiment", "loss_type", "function"]]


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
