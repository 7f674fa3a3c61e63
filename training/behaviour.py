"""A CheckList-style behavioural suite for sentiment (Ribeiro et al. 2020): templates x fillers, scored as rates.

Held-out accuracy says how often a model is right on texts like its training data; it does not say whether the
model handles the constructions the product depends on. Each capability here is hundreds of generated cases, so a
rate moves only when the behaviour does, never with one borderline sentence:
- negation          negated praise is negative (不好吃, 一点也不靠谱, 并不是很专业), negated criticism is not
                    (一点也不差)
- double_negation   a cancelled negation is not negative (不是不好, 没有不满意的地方)
- contrast          虽然…但是… / 本来以为…没想到…: the later clause decides
- intensity         an intensifier keeps the label and never weakens it (挺好 -> 非常好, 有点差 -> 太差了)
- neutral_sensitive questions and notices full of sensitive words (裁员/仲裁/加班费) are not negative
- invariance:*      company / person / department names swapped, traditional characters, a typo, a neutral emoji,
                    punctuation: the label must not change
Test kinds: MFT (the label must be in an accepted set), DIR (MFT plus: polarity p_pos - p_neg may not move the
wrong way by more than DIR_TOLERANCE from the base text) and INV (the base text's label). Shared by
bench/sentiment.py (rates beside SnowNLP's) and the tests (rates below thresholds).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# score(texts) -> (labels, polarity = p_pos - p_neg), one of each per text
Scorer = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]
DIR_TOLERANCE = 0.1  # CheckList's own margin for directional sentiment tests
SEED = 0

SUBJECTS = ["这家店", "这个经理", "公司食堂", "新来的主管", "这次培训", "客服", "售后服务", "这个产品", "团队氛围",
            "这份工作", "我们部门的领导", "今年的福利"]
PRAISE = ["好", "靠谱", "专业", "用心", "负责", "让人满意", "给力", "贴心", "出色", "优秀"]
CRITICISM = ["差", "糟糕", "烂", "坑", "敷衍", "让人失望", "差劲", "离谱", "恶心", "垃圾"]
DISHES = ["菜", "面", "米饭", "汤", "饺子", "包子", "烤鱼", "咖啡", "蛋糕", "外卖"]
NEG, NOT_NEG, POS = ("neg",), ("neu", "pos"), ("pos",)

MFT_TEMPLATES = {  # capability -> [(template, accepted labels)]
    "negation": [("{s}一点也不{p}", NEG), ("{s}真的不{p}", NEG), ("{s}不太{p}", NEG), ("{s}没有想象中那么{p}", NEG),
                 ("{s}并不是很{p}", NEG), ("我觉得{s}不{p}", NEG), ("{s}根本不{p}", NEG), ("{s}从来都不{p}", NEG),
                 ("食堂的{d}不好吃", NEG), ("这家店的{d}一点都不好吃", NEG),
                 ("{s}一点也不{n}", NOT_NEG), ("{s}并不{n}", NOT_NEG), ("{s}其实没那么{n}", NOT_NEG)],
    "double_negation": [("{s}不是不{p}", NOT_NEG), ("{s}并不是不{p}", NOT_NEG), ("对{s}没有不满意的地方", NOT_NEG),
                        ("{s}也不是不{p}", NOT_NEG), ("{s}没有不{p}的", NOT_NEG), ("不能说{s}不{p}", NOT_NEG)],
    "contrast": [("虽然{s}有点{n}，但是总体很{p}", POS), ("虽然{s}很{p}，但是太{n}了", NEG),
                 ("{s}虽然{n}了点，但还算{p}", POS), ("本来以为{s}会很{n}，没想到这么{p}", POS),
                 ("本来对{s}期望很高，结果太{n}了", NEG), ("{s}看着挺{p}，可惜实际太{n}了", NEG)],
}
INTENSITY = [  # (weak, strong, accepted labels of the strong text, direction the polarity must not go against)
    ("{s}挺{p}的", "{s}非常{p}", POS, 1), ("{s}挺{p}的", "{s}特别{p}", POS, 1), ("{s}还算{p}", "{s}太{p}了", POS, 1),
    ("{s}有点{n}", "{s}太{n}了", NEG, -1), ("{s}有点{n}", "{s}非常{n}", NEG, -1),
    ("{s}有点{n}", "{s}真的特别{n}", NEG, -1),
]
SENSITIVE_TOPICS = ["裁员补偿", "劳动仲裁", "加班费", "离职证明", "经济补偿金", "社保断缴", "工伤认定", "竞业协议",
                    "试用期辞退", "欠薪投诉", "劳动合同解除", "降薪调岗", "年终奖发放", "绩效末位淘汰", "病假工资",
                    "调休", "N+1赔偿", "背调", "违约金", "裁员名单公示"]
SENSITIVE_TEMPLATES = ["请问{t}是怎么计算的？", "想咨询一下{t}的流程", "{t}需要准备哪些材料？",
                       "关于{t}的说明：详见附件", "公司{t}相关制度将于下月更新，请大家查阅",
                       "有人知道{t}一般多久能办完吗？", "{t}相关问题可以联系人事部", "明天下午两点开会讲解{t}的政策",
                       "新员工手册第五章介绍了{t}", "{t}怎么申请？在哪个系统里提交？", "法务部本周五举办{t}知识讲座",
                       "请问{t}和年假可以同时申请吗", "据报道，多家企业近期调整了{t}的做法", "HR回复：{t}按劳动法执行",
                       "转发：{t}最新规定解读"]

COMPANIES = ["星启科技", "禾木集团", "北辰银行", "云帆网络", "鲲鹏航空", "深圳市远山科技有限公司", "华瑞证券",
             "青禾乳业", "蓝海物流", "优选超市", "天衡保险", "锦程教育", "海川传媒", "恒通快递", "宏达地产", "新禾食品",
             "瑞丰医药", "安途出行", "杭州云栖软件有限公司", "光年游戏"]
PEOPLE = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷", "徐强", "孙丽", "马超",
          "朱琳", "胡军", "郭晶", "何勇", "高雪", "林涛", "罗佳"]
DEPARTMENTS = ["市场部", "人事部", "研发部", "财务部", "法务部", "客服中心", "销售部", "行政部", "采购部", "生产部",
               "品牌部", "质检部", "运营中心", "信息中心", "培训中心", "战略部", "公关部", "物流部", "审计部", "设计部"]
NAME_TEMPLATES = {
    "company": ["{x}的客服态度太差了，投诉三次都没人管", "在{x}干了三年，团队氛围一直很好",
                "{x}将于下周一发布新版考勤制度", "{x}又开始996了，加班费一分没有", "听说{x}今年年终奖发了六个月",
                "{x}的面试官很专业，流程也快", "{x}拖欠供应商货款已经半年了", "{x}发布了第三季度财报",
                "再也不买{x}的东西了，质量太差", "{x}的新产品发布会定在周五", "感谢{x}的售后，问题当天就解决了",
                "{x}被曝裁员三成，员工很慌"],
    "person": ["{x}经理今天在全员会上表扬了我们组", "{x}又把锅甩给了下属", "{x}下周起负责华东区的销售",
               "跟着{x}学到了很多东西，感谢", "{x}总是临时加需求，大家都很烦", "{x}请假了，有事找他的助理",
               "{x}主管当众骂人，太过分了", "{x}的方案通过了评审", "{x}帮我改了三遍简历，特别耐心",
               "{x}明天上午九点在三楼面试候选人", "{x}天天画大饼，承诺的涨薪一直没兑现", "新来的{x}很靠谱"],
    "department": ["{x}的同事都很热心", "{x}今天下午三点开会", "{x}的领导天天画大饼", "{x}又加班到深夜，太累了",
                   "{x}这个月新来了两个实习生", "{x}办事效率太低了，一个流程拖两周", "感谢{x}帮忙协调",
                   "{x}搬到了五楼", "{x}的报销流程终于简化了，点赞", "{x}下周开始轮岗", "{x}甩锅给我们组，太恶心了",
                   "请{x}的同事周五前提交材料"],
}
TYPOS = {"的": "得", "在": "再", "再": "在", "做": "作", "已": "以", "那": "哪", "象": "像", "他": "她", "吗": "嘛"}
EMOJI = ["📌", "📎", "🏢", "📅", "📷"]


def _fill(template: str, s: str = "", p: str = "", n: str = "", d: str = "") -> str:
    return template.format(s=s, p=p, n=n, d=d)


def _mft_rows() -> list[dict]:
    rows = []
    for capability, templates in MFT_TEMPLATES.items():
        for template, ok in templates:
            if "{d}" in template:
                fills = [{"d": d} for d in DISHES]
            else:
                fills = [{"s": s, "p": p, "n": n} for s in SUBJECTS for p, n in zip(PRAISE, CRITICISM, strict=True)]
            rows += [{"capability": capability, "kind": "mft", "template": template, "text": _fill(template, **f),
                      "ok": ok} for f in fills]
    rows += [{"capability": "neutral_sensitive", "kind": "mft", "template": template, "text": template.format(t=t),
              "ok": NOT_NEG} for template in SENSITIVE_TEMPLATES for t in SENSITIVE_TOPICS]
    for weak, strong, ok, sign in INTENSITY:
        rows += [{"capability": "intensity", "kind": "dir", "template": f"{weak} -> {strong}", "ok": ok, "sign": sign,
                  "base": _fill(weak, s=s, p=p, n=n), "text": _fill(strong, s=s, p=p, n=n)}
                 for s in SUBJECTS for p, n in zip(PRAISE, CRITICISM, strict=True)]
    return rows


def _typo(text: str, rng: np.random.Generator) -> str:
    """A homophone slip (的 -> 得, 在 -> 再 ...) where the text has one, else one character typed twice."""
    slips = [i for i, char in enumerate(text) if char in TYPOS]
    if slips:
        at = slips[rng.integers(len(slips))]
        return text[:at] + TYPOS[text[at]] + text[at + 1:]
    at = int(rng.integers(len(text)))
    return text[:at + 1] + text[at:]


def _perturbations(rng: np.random.Generator) -> dict[str, Callable[[str], str]]:
    import opencc

    to_traditional = opencc.OpenCC("s2t")
    half = str.maketrans("，。！？：；（）", ",.!?:;()")
    return {
        "traditional": to_traditional.convert,
        "typo": lambda t: _typo(t, rng),
        "emoji": lambda t: t + EMOJI[int(rng.integers(len(EMOJI)))],
        "punctuation": lambda t: [lambda u: u.rstrip("。！!.") + "。", lambda u: u + "！", lambda u: u.translate(half),
                                  lambda u: re.sub(r"([，。！？,.!?])", r" \1 ", u).strip()][int(rng.integers(4))](t),
    }


def _invariance_rows(base_texts: Sequence[str]) -> list[dict]:
    rows = []
    for kind, names in (("company", COMPANIES), ("person", PEOPLE), ("department", DEPARTMENTS)):
        for template in NAME_TEMPLATES[kind]:
            base = template.format(x=names[0])
            rows += [{"capability": f"invariance:{kind}", "kind": "inv", "template": template, "base": base,
                      "text": template.format(x=name)} for name in names[1:]]
    rng = np.random.default_rng(SEED)
    for name, perturb in _perturbations(rng).items():
        for text in base_texts:
            changed = perturb(text)
            if changed != text:
                rows.append({"capability": f"invariance:{name}", "kind": "inv", "template": name, "base": text,
                             "text": changed})
    return rows


def base_texts(texts: Sequence[str], n: int = 300) -> list[str]:
    """A fixed sample of `texts` (4-120 chars) for the perturbation tests. Callers pass the workplace corpus's
    held-out texts: shipped with the project, so the suite is the same on every machine."""
    texts = pd.Series(list(texts), dtype=object).drop_duplicates()
    texts = texts[texts.str.len().between(4, 120)]
    return texts.sample(min(n, len(texts)), random_state=SEED).tolist()


def cases(base: Sequence[str]) -> pd.DataFrame:
    """Every case: capability, kind (mft / dir / inv), template, text, base (dir / inv), ok (mft / dir), sign.
    `base`: the real texts the perturbations start from (see base_texts)."""
    frame = pd.DataFrame(_mft_rows() + _invariance_rows(base))
    return frame.drop_duplicates(["capability", "base", "text"]).reset_index(drop=True)


def model_scorer(model) -> Scorer:
    """A `TextClassifier` as a Scorer: its labels and p_pos - p_neg."""
    def score(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        proba = model.predict_proba(texts)
        labels = np.asarray(model.labels, dtype=object)[proba.argmax(axis=1)]
        return labels, proba[:, model.labels.index("pos")] - proba[:, model.labels.index("neg")]
    return score


def run(score: Scorer, frame: pd.DataFrame) -> pd.DataFrame:
    """The cases with the subject's `label`, `base_label` and `fail` (each distinct text scored once)."""
    frame = frame.copy()
    texts = pd.unique(pd.concat([frame["text"], frame["base"].dropna()]))
    labels, polarity = score(list(texts))
    label_of = dict(zip(texts, labels, strict=True))
    polarity_of = dict(zip(texts, polarity, strict=True))
    frame["label"] = frame["text"].map(label_of)
    frame["base_label"] = frame["base"].map(label_of)
    in_ok = np.array([isinstance(ok, tuple) and label in ok for label, ok in zip(frame["label"], frame["ok"],
                                                                                 strict=True)])
    moved = (frame["text"].map(polarity_of) - frame["base"].map(polarity_of)) * frame["sign"]
    fail = np.where(frame["kind"] == "inv", frame["label"] != frame["base_label"], ~in_ok)
    frame["fail"] = fail | ((frame["kind"] == "dir") & (moved < -DIR_TOLERANCE)).to_numpy()
    return frame


def rates(result: pd.DataFrame) -> pd.DataFrame:
    """Failure rate and case count per capability (negation first, invariance last)."""
    out = result.groupby("capability", sort=False)["fail"].agg(rate="mean", cases="size")
    return out.reindex(sorted(out.index, key=lambda c: (c.startswith("invariance"), list(out.index).index(c))))


def metrics(result: pd.DataFrame) -> dict[str, float]:
    """behaviour_<capability>_fail_rate per capability, for MLflow (":" is not a metric-name character)."""
    by_capability = rates(result)["rate"]
    return {f"behaviour_{name.replace(':', '_')}_fail_rate": float(rate) for name, rate in by_capability.items()}


def worst_templates(result: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The k templates failing most often, with their capability and rate."""
    by = result.groupby(["capability", "template"])["fail"].agg(rate="mean", cases="size").reset_index()
    return by.sort_values("rate", ascending=False).head(k)

