"""Texts: internal and external posts and customer complaints, drawn from the labelled workplace corpus.

A text is drawn with the sentiment the simulation asked for, so its labels (sentiment, loss type, function)
are the corpus's own; the built-in sentences below stand in when data/workplace_corpus holds no rows. Each
post also gets its author's followers and its planted branching factor n*, which the cascades then use.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.contracts import FUNCTIONS, INTERNAL_CHANNELS
from synthetic.cascades import _lognormal_int
from synthetic.org import CITY_PROVINCE, Org, _id_list
from synthetic.truth import (
    AUTHOR_FOLLOWERS,
    BRANCHING_NOISE_SD,
    CHANNEL_BRANCHING,
    COMPLAINT_CHANNEL_SHARE,
    COMPLAINT_SENTIMENT_MIX,
    COMPLAINTS_PER_EMPLOYEE_YEAR,
    EXTERNAL_CHANNEL_SHARE,
    EXTERNAL_POSTS_PER_EMPLOYEE_YEAR,
    EXTERNAL_SENTIMENT_MIX,
    MAX_BRANCHING,
    NEAR_CRITICAL_RANGE,
    NEAR_CRITICAL_SHARE,
    PROVINCE_WEIGHT,
    PROVINCES,
    SENTIMENT_BRANCHING,
    SENTIMENT_ORDER,
)
from synthetic.workforce import People, _day

log = logging.getLogger(__name__)

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
