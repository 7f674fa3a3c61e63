"""Warning rules: turn one risk (model predictions as plain data) into a graded warning a person can act on.

The policy lives in YAML so a tenant can move thresholds without a release, and it is validated at load so a typo
fails with the key's path instead of silently never firing. Every rule condition is "input >= threshold" and the
grade is the highest fired rule, so raising any single risk input can never lower the grade (tested by property).
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from features.contracts import (
    COMPLAINT_CHANNELS,
    CORPUS_CHANNELS,
    FUNCTIONS,
    LOSS_TYPE_ZH,
    LOSS_TYPES,
    SENTIMENTS,
    TEXT_FUNCTIONS,
)
from features.settings import settings

GRADES = ("blue", "yellow", "orange", "red")  # ascending severity
GRADE_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
GRADE_LEVEL = {"blue": "IV", "yellow": "III", "orange": "II", "red": "I"}
EVENT_KINDS = ("post", "complaint", "team")
KEYWORD_CATEGORIES = ("company", "value", "sensitive")
OWNER_SCOPES = ("department", "team")
WEBHOOK_EVENTS = ("opened", "updated", "reminded", "escalated", "acknowledged", "assigned", "resolved")
KNOWN_CHANNELS = tuple(dict.fromkeys(CORPUS_CHANNELS + COMPLAINT_CHANNELS))
DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
SENTIMENT_ZH = {"neg": "负面", "neu": "中性", "pos": "正面"}
_SENTIMENT_RANK = {"pos": 0, "neu": 1, "neg": 2}


def grade_rank(grade: str | None) -> int:
    """Order of severity; no warning ranks below blue."""
    return -1 if grade is None else GRADES.index(grade)


class RiskInputError(ValueError):
    """A RiskInput field is malformed; the message names the field."""


class PolicyError(ValueError):
    """The policy file is invalid; the message starts with the offending key path."""


@dataclass
class RiskInput:
    """Everything the rules need about one event, decoupled from the models that produced it."""

    subject: str
    event_kind: str
    text: str = ""
    channel: str = ""
    internal: bool = False
    created_at: datetime = field(default_factory=datetime.now)
    department_id: str | None = None
    employee_id: str | None = None
    sentiment_label: str = "neu"
    p_neg: float = 0.0
    loss_type: str = "none"
    function: str = "none"
    keyword_hits: list[dict] = field(default_factory=list)
    reach_p50: float | None = None
    reach_p90: float | None = None
    velocity_per_hour: float | None = None
    regions: int | None = None
    high_risk_key_employees: int = 0
    team_expected_leavers: float | None = None

    def __post_init__(self) -> None:
        """Check every field and normalise numbers (numpy scalars from pandas) to plain Python ones."""
        def fail(name: str, message: str) -> None:
            raise RiskInputError(f"RiskInput.{name}: {message}")

        if not isinstance(self.subject, str) or not self.subject.strip():
            fail("subject", "不能为空")
        for name, allowed in (("event_kind", EVENT_KINDS), ("sentiment_label", SENTIMENTS),
                              ("loss_type", LOSS_TYPES), ("function", TEXT_FUNCTIONS)):
            if getattr(self, name) not in allowed:
                fail(name, f"取值 {getattr(self, name)!r} 不在允许范围 {list(allowed)}")
        if not isinstance(self.created_at, datetime):
            fail("created_at", "应为时间 (datetime)")
        if not _is_number(self.p_neg) or not 0 <= self.p_neg <= 1:
            fail("p_neg", f"应在 0 到 1 之间, 实为 {self.p_neg!r}")
        self.p_neg = float(self.p_neg)
        for name in ("reach_p50", "reach_p90", "velocity_per_hour", "team_expected_leavers"):
            value = getattr(self, name)
            if value is not None:
                if not _is_number(value) or value < 0:
                    fail(name, f"应为非负数或空, 实为 {value!r}")
                setattr(self, name, float(value))
        for name in ("regions", "high_risk_key_employees"):
            value = getattr(self, name)
            if value is None and name == "regions":
                continue
            if not _is_number(value) or value < 0 or value != int(value):
                fail(name, f"应为非负整数, 实为 {value!r}")
            setattr(self, name, int(value))
        hits = []
        for index, hit in enumerate(self.keyword_hits):
            where = f"keyword_hits[{index}]"
            if not isinstance(hit, Mapping) or not isinstance(hit.get("term"), str):
                fail(where, "应为包含 term/category/severity 的字典")
            if hit.get("category") not in KEYWORD_CATEGORIES:
                fail(f"{where}.category", f"取值 {hit.get('category')!r} 不在允许范围 {list(KEYWORD_CATEGORIES)}")
            if not _is_number(hit.get("severity")) or hit["severity"] not in (1, 2, 3):
                fail(f"{where}.severity", f"应为 1、2 或 3, 实为 {hit.get('severity')!r}")
            hits.append({**hit, "severity": int(hit["severity"]),
                         **{k: int(hit[k]) for k in ("start", "end") if _is_number(hit.get(k))}})
        self.keyword_hits = hits


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _channel_zh(risk: RiskInput, policy: "Policy") -> str:
    return policy.channel_names.get(risk.channel, risk.channel or "未知渠道")


def _keyword_reader(category: str | None) -> Callable[[RiskInput], int | None]:
    def read(risk: RiskInput) -> int | None:
        severities = [hit["severity"] for hit in risk.keyword_hits if category in (None, hit["category"])]
        return max(severities) if severities else None

    return read


def _keyword_terms(risk: RiskInput, category: str | None) -> str:
    terms = [hit["term"] for hit in risk.keyword_hits if category in (None, hit["category"])]
    return "、".join(dict.fromkeys(terms))


@dataclass(frozen=True)
class Signal:
    """One risk input a rule can threshold: how to read it and how to say it in Chinese."""

    label: str
    read: Callable[[RiskInput], float | None]
    low: float
    high: float | None = None
    keyword_category: str | None = None
    is_keyword: bool = False

    def describe(self, name: str, risk: RiskInput, threshold: float, policy: "Policy") -> str:
        value = self.read(risk)
        if name == "external":
            return f"发布于外部渠道（{_channel_zh(risk, policy)}）"
        if name == "sentiment":
            return f"情感倾向为{SENTIMENT_ZH[risk.sentiment_label]}（负面概率 {risk.p_neg:.2f}）"
        if self.is_keyword:
            terms = _keyword_terms(risk, self.keyword_category)
            return f"{self.label}为 {value}（「{terms}」），达到阈值 {_fmt(threshold)}"
        return f"{self.label}为 {_fmt(value)}，达到阈值 {_fmt(threshold)}"


SIGNALS: dict[str, Signal] = {
    "p_neg": Signal("负面概率", lambda r: r.p_neg, 0.0, 1.0),
    "sentiment": Signal("情感倾向", lambda r: _SENTIMENT_RANK[r.sentiment_label], 0, 2),
    "reach_p50": Signal("预测 24 小时转发量（P50）", lambda r: r.reach_p50, 0.0),
    "reach_p90": Signal("预测 24 小时转发量（P90）", lambda r: r.reach_p90, 0.0),
    "velocity_per_hour": Signal("首小时转发数", lambda r: r.velocity_per_hour, 0.0),
    "regions": Signal("覆盖地区数", lambda r: r.regions, 0.0),
    "keyword_severity": Signal("关键词严重度", _keyword_reader(None), 1, 3, None, True),
    "value_keyword_severity": Signal("价值观关键词严重度", _keyword_reader("value"), 1, 3, "value", True),
    "sensitive_keyword_severity": Signal("敏感话题关键词严重度", _keyword_reader("sensitive"), 1, 3, "sensitive", True),
    "company_keyword_severity": Signal("公司名关键词严重度", _keyword_reader("company"), 1, 3, "company", True),
    "external": Signal("外部渠道", lambda r: 0 if r.internal else 1, 1, 1),
    "high_risk_key_employees": Signal("高离职风险关键员工数", lambda r: r.high_risk_key_employees, 0.0),
    "team_expected_leavers": Signal("团队预计离职人数", lambda r: r.team_expected_leavers, 0.0),
}


@dataclass(frozen=True)
class Match:
    """Which events a rule, route or playbook entry applies to; an empty field matches everything."""

    event_kinds: tuple[str, ...] = ()
    loss_types: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    keyword_categories: tuple[str, ...] = ()
    external: bool | None = None

    def matches(self, risk: RiskInput, loss_type: str) -> bool:
        categories = {hit["category"] for hit in risk.keyword_hits}
        return (
            (not self.event_kinds or risk.event_kind in self.event_kinds)
            and (not self.loss_types or loss_type in self.loss_types)
            and (not self.functions or risk.function in self.functions)
            and (not self.channels or risk.channel in self.channels)
            and (not self.keyword_categories or bool(categories & set(self.keyword_categories)))
            and (self.external is None or self.external == (not risk.internal))
        )


@dataclass(frozen=True)
class Condition:
    signal: str
    threshold: float

    def holds(self, risk: RiskInput) -> bool:
        value = SIGNALS[self.signal].read(risk)
        return value is not None and value >= self.threshold


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    grade: str
    when: tuple[Condition, ...]
    applies_to: Match = Match()


@dataclass(frozen=True)
class OwnerSpec:
    """A functional owner: the head of a unit with this org function (preferring a name containing `name_contains`).

    scope "department": the top-most unit of that function above the linked unit (市场部, not its 内容组);
    scope "team": the nearest one (客服主管 is the agent's own supervisor).
    """

    function: str
    title: str
    name_contains: str | None = None
    scope: str = "department"


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    owners: tuple[OwnerSpec, ...] = ()
    webhooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    continue_matching: bool = False


@dataclass(frozen=True)
class Action:
    text: str
    system: str | None = None
    due_hours: float | None = None


@dataclass(frozen=True)
class PlaybookEntry:
    match: Match
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class GradeSpec:
    deadline_hours: float
    renotify_minutes: float


@dataclass(frozen=True)
class FiredRule:
    id: str
    name: str
    grade: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """A graded warning: what fired and why, who the policy routes it to, what to do and by when."""

    grade: str
    loss_type: str
    fired: tuple[FiredRule, ...]
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    deadline_hours: float
    routes: tuple[str, ...]
    owner_specs: tuple[OwnerSpec, ...]
    webhooks: Mapping[str, tuple[str, ...]]

    @property
    def grade_zh(self) -> str:
        return GRADE_ZH[self.grade]

    @property
    def grade_level(self) -> str:
        return GRADE_LEVEL[self.grade]

    @property
    def loss_type_zh(self) -> str:
        return LOSS_TYPE_ZH[self.loss_type]

    @property
    def label(self) -> str:
        return f"{self.grade_zh}色预警（{self.grade_level}级）· {self.loss_type_zh}损失"

    def as_dict(self) -> dict[str, Any]:
        return {
            "grade": self.grade, "grade_zh": self.grade_zh, "grade_level": self.grade_level, "label": self.label,
            "loss_type": self.loss_type, "loss_type_zh": self.loss_type_zh,
            "fired": [asdict(rule) for rule in self.fired], "reasons": list(self.reasons),
            "actions": [asdict(action) for action in self.actions], "deadline_hours": self.deadline_hours,
            "routes": list(self.routes), "owner_specs": [asdict(spec) for spec in self.owner_specs],
            "webhooks": {event: list(targets) for event, targets in self.webhooks.items()},
        }


@dataclass(frozen=True)
class Policy:
    """The validated policy; build it with `Policy.load` (YAML) or `Policy.from_dict`."""

    grades: Mapping[str, GradeSpec]
    grouping_window_minutes: float
    inhibit_source_grades: tuple[str, ...]
    inhibit_equal: tuple[str, ...]
    fallback_loss_type: Mapping[str, str]
    channel_names: Mapping[str, str]
    rules: tuple[Rule, ...]
    default_owners: tuple[OwnerSpec, ...]
    routes: tuple[Route, ...]
    playbook: tuple[PlaybookEntry, ...]
    webhooks: Mapping[str, str]
    sources: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Policy":
        """Shipped default, with the tenant file (path, else settings.policy_path) merged over it."""
        data = _read_yaml(DEFAULT_POLICY_PATH)
        sources = [str(DEFAULT_POLICY_PATH)]
        override = Path(path) if path is not None else Path(settings.policy_path)
        if override.resolve() != DEFAULT_POLICY_PATH.resolve():
            data = merge_policy(data, _read_yaml(override))
            sources.append(str(override))
        return cls.from_dict(data, sources=tuple(sources))

    @classmethod
    def from_dict(cls, data: Any, *, sources: tuple[str, ...] = ()) -> "Policy":
        return _parse_policy(data, sources)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise PolicyError(f"{path}: 策略文件不存在")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" 第 {mark.line + 1} 行" if mark is not None else ""
        raise PolicyError(f"{path}: YAML 语法错误{where}: {getattr(error, 'problem', error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: 顶层应为映射 (key: value)")
    return data


def merge_policy(base: Mapping, override: Mapping) -> dict:
    """Deep-merge a tenant policy over the default: mappings by key, `rules` by id, other lists replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if key == "rules" and isinstance(value, list) and isinstance(merged.get("rules"), list):
            merged["rules"] = _merge_rules(merged["rules"], value)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_policy(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_rules(base: list, override: list) -> list:
    by_id = {rule.get("id"): index for index, rule in enumerate(base) if isinstance(rule, Mapping)}
    merged = copy.deepcopy(base)
    for rule in override:
        index = by_id.get(rule.get("id")) if isinstance(rule, Mapping) else None
        if index is None:
            merged.append(copy.deepcopy(rule))
        else:
            merged[index] = merge_policy(merged[index], rule)
    return merged


# --- validation: every error names the key path -------------------------------------------------------------

def _fail(path: str, message: str) -> PolicyError:
    return PolicyError(f"{path}: {message}")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _mapping(value: Any, path: str, allowed: tuple[str, ...] | None = None, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, Mapping):
        raise _fail(path or "<策略>", "应为映射 (key: value)")
    if allowed is not None:
        unknown = [key for key in value if key not in allowed]
        if unknown:
            raise _fail(_join(path, unknown[0]), f"未知配置项; 可用: {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise _fail(_join(path, key), "缺少必填项")
    return dict(value)


def _list(value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise _fail(path, "应为列表")
    return value


def _text(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise _fail(path, "应为非空文本")
    return value


def _positive(value: Any, path: str) -> float:
    if not _is_number(value) or value <= 0:
        raise _fail(path, f"应为正数, 实为 {value!r}")
    return float(value)


def _choices(value: Any, path: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = _list(value, path)
    for index, item in enumerate(items):
        if item not in allowed:
            raise _fail(f"{path}[{index}]", f"取值 {item!r} 不在允许范围 {list(allowed)}")
    return tuple(items)


_RULE_FILTERS = ("event_kinds", "loss_types", "functions", "channels")
_MATCH_KEYS = _RULE_FILTERS + ("keyword_categories", "external")


def _parse_match(value: Any, path: str, keys: tuple[str, ...] = _MATCH_KEYS) -> Match:
    data = _mapping(value, path, keys)
    allowed = {"event_kinds": EVENT_KINDS, "loss_types": LOSS_TYPES, "functions": TEXT_FUNCTIONS,
               "channels": KNOWN_CHANNELS, "keyword_categories": KEYWORD_CATEGORIES}
    fields_: dict[str, Any] = {key: _choices(data[key], f"{path}.{key}", allowed[key])
                               for key in allowed if key in data}
    if "external" in data:
        if not isinstance(data["external"], bool):
            raise _fail(f"{path}.external", "应为 true 或 false")
        fields_["external"] = data["external"]
    return Match(**fields_)


def _parse_condition(name: str, value: Any, path: str) -> Condition:
    if name not in SIGNALS:
        raise _fail(path, f"未知信号; 可用: {', '.join(SIGNALS)}")
    signal = SIGNALS[name]
    if name == "external":
        if value is not True:
            raise _fail(path, "只能为 true（规则只能要求外部渠道, 以保证风险升高时等级不降）")
        return Condition(name, 1)
    if name == "sentiment":
        if value not in ("neu", "neg"):
            raise _fail(path, "应为 neu 或 neg（表示至少为该情感倾向）")
        return Condition(name, _SENTIMENT_RANK[value])
    if not _is_number(value) or value < signal.low or (signal.high is not None and value > signal.high):
        bound = f"{signal.low:g} 到 {signal.high:g} 之间" if signal.high is not None else f"不小于 {signal.low:g}"
        raise _fail(path, f"阈值应为{bound}的数字, 实为 {value!r}")
    return Condition(name, float(value))


def _parse_rules(value: Any) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(_list(value, "rules")):
        raw = _mapping(item, f"rules[{index}]")
        path = f"rules.{raw['id']}" if isinstance(raw.get("id"), str) else f"rules[{index}]"
        raw = _mapping(raw, path, ("id", "name", "grade", "when", "enabled") + _RULE_FILTERS, ("id", "name", "when"))
        rule_id = _text(raw["id"], f"{path}.id")
        if rule_id in seen:
            raise _fail(f"{path}.id", "规则 id 重复")
        seen.add(rule_id)
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise _fail(f"{path}.enabled", "应为 true 或 false")
        if raw.get("grade") not in GRADES:
            raise _fail(f"{path}.grade", f"取值 {raw.get('grade')!r} 不在允许范围 {list(GRADES)}")
        when = _mapping(raw["when"], f"{path}.when")
        if not when:
            raise _fail(f"{path}.when", "至少需要一个条件")
        conditions = tuple(_parse_condition(name, threshold, f"{path}.when.{name}")
                           for name, threshold in when.items())
        filters = {key: raw[key] for key in _RULE_FILTERS if key in raw}
        applies_to = _parse_match(filters, path, _RULE_FILTERS)
        if enabled:
            rules.append(Rule(rule_id, _text(raw["name"], f"{path}.name"), raw["grade"], conditions, applies_to))
    if not rules:
        raise _fail("rules", "至少需要一条启用的规则")
    return tuple(rules)


def _parse_owners(value: Any, path: str) -> tuple[OwnerSpec, ...]:
    owners = []
    for index, item in enumerate(_list(value, path)):
        where = f"{path}[{index}]"
        raw = _mapping(item, where, ("function", "title", "name_contains", "scope"), ("function", "title"))
        if raw["function"] not in FUNCTIONS:
            raise _fail(f"{where}.function", f"取值 {raw['function']!r} 不在允许范围 {list(FUNCTIONS)}")
        name_contains = raw.get("name_contains")
        if name_contains is not None:
            _text(name_contains, f"{where}.name_contains")
        scope = raw.get("scope", "department")
        if scope not in OWNER_SCOPES:
            raise _fail(f"{where}.scope", f"取值 {scope!r} 不在允许范围 {list(OWNER_SCOPES)}")
        owners.append(OwnerSpec(raw["function"], _text(raw["title"], f"{where}.title"), name_contains, scope))
    return tuple(owners)


def _parse_targets(value: Any, path: str, targets: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    events = _mapping(value, path, WEBHOOK_EVENTS)
    return {event: _choices(names, f"{path}.{event}", tuple(targets)) for event, names in events.items()}


def _parse_policy(data: Any, sources: tuple[str, ...]) -> Policy:
    top = _mapping(data, "", ("grades", "grouping", "inhibition", "fallback_loss_type", "channel_names",
                                      "rules", "routing", "playbook", "webhooks"),
                   ("grades", "rules", "routing"))

    grades_raw = _mapping(top["grades"], "grades", GRADES, GRADES)
    grades = {}
    for grade in GRADES:
        spec = _mapping(grades_raw[grade], f"grades.{grade}", ("deadline_hours", "renotify_minutes"),
                        ("deadline_hours", "renotify_minutes"))
        grades[grade] = GradeSpec(_positive(spec["deadline_hours"], f"grades.{grade}.deadline_hours"),
                                  _positive(spec["renotify_minutes"], f"grades.{grade}.renotify_minutes"))
    for lower, higher in zip(GRADES, GRADES[1:]):
        if grades[higher].deadline_hours > grades[lower].deadline_hours:
            raise _fail(f"grades.{higher}.deadline_hours", f"不应长于更低等级 {lower} 的处理时限")

    grouping = _mapping(top.get("grouping", {}), "grouping", ("window_minutes",), ("window_minutes",))
    inhibition = _mapping(top.get("inhibition", {"source_grades": [], "equal": ["subject"]}), "inhibition",
                          ("source_grades", "equal"), ("source_grades", "equal"))
    equal = _choices(inhibition["equal"], "inhibition.equal", ("subject", "department_id", "loss_type"))
    if not equal:
        raise _fail("inhibition.equal", "至少需要一个字段")

    fallback = _mapping(top.get("fallback_loss_type", {}), "fallback_loss_type", EVENT_KINDS, EVENT_KINDS)
    for kind, loss_type in fallback.items():
        if loss_type not in LOSS_TYPES[:-1]:
            raise _fail(f"fallback_loss_type.{kind}", f"取值 {loss_type!r} 不在允许范围 {list(LOSS_TYPES[:-1])}")

    channel_names = _mapping(top.get("channel_names", {}), "channel_names", KNOWN_CHANNELS)
    for channel, name in channel_names.items():
        _text(name, f"channel_names.{channel}")

    webhooks = {}
    for name, spec in _mapping(top.get("webhooks", {}), "webhooks").items():
        spec = _mapping(spec, f"webhooks.{name}", ("url",), ("url",))
        url = _text(spec["url"], f"webhooks.{name}.url", allow_empty=True)
        if url and not url.startswith(("http://", "https://")):
            raise _fail(f"webhooks.{name}.url", "应以 http:// 或 https:// 开头")
        webhooks[name] = url

    routing = _mapping(top["routing"], "routing", ("default_owners", "routes"), ("default_owners", "routes"))
    default_owners = _parse_owners(routing["default_owners"], "routing.default_owners")
    if not default_owners:
        raise _fail("routing.default_owners", "至少需要一个负责人")
    routes = []
    for index, item in enumerate(_list(routing["routes"], "routing.routes")):
        path = f"routing.routes[{index}]"
        raw = _mapping(item, path, ("name", "match", "owners", "webhooks", "continue"), ("name", "match"))
        cont = raw.get("continue", False)
        if not isinstance(cont, bool):
            raise _fail(f"{path}.continue", "应为 true 或 false")
        routes.append(Route(
            _text(raw["name"], f"{path}.name"), _parse_match(raw["match"], f"{path}.match"),
            _parse_owners(raw.get("owners", []), f"{path}.owners"),
            _parse_targets(raw.get("webhooks", {}), f"{path}.webhooks", webhooks), cont,
        ))

    playbook = []
    for index, item in enumerate(_list(top.get("playbook", []), "playbook")):
        path = f"playbook[{index}]"
        raw = _mapping(item, path, ("match", "actions"), ("match", "actions"))
        actions = []
        for position, action in enumerate(_list(raw["actions"], f"{path}.actions")):
            where = f"{path}.actions[{position}]"
            action = _mapping(action, where, ("text", "system", "due_hours"), ("text",))
            text = _text(action["text"], f"{where}.text")
            try:
                text.format(channel="", deadline_hours="")
            except (KeyError, IndexError, ValueError):
                raise _fail(f"{where}.text", "模板只能使用 {channel} 与 {deadline_hours}") from None
            system = action.get("system")
            if system is not None and system not in webhooks:
                raise _fail(f"{where}.system", f"未定义的集成 {system!r}; 已定义: {list(webhooks)}")
            due = _positive(action["due_hours"], f"{where}.due_hours") if "due_hours" in action else None
            actions.append(Action(text, system, due))
        playbook.append(PlaybookEntry(_parse_match(raw["match"], f"{path}.match"), tuple(actions)))

    return Policy(
        grades=grades,
        grouping_window_minutes=_positive(grouping["window_minutes"], "grouping.window_minutes"),
        inhibit_source_grades=_choices(inhibition["source_grades"], "inhibition.source_grades", GRADES),
        inhibit_equal=equal,
        fallback_loss_type=fallback,
        channel_names=channel_names,
        rules=_parse_rules(top["rules"]),
        default_owners=default_owners,
        routes=tuple(routes),
        playbook=tuple(playbook),
        webhooks=webhooks,
        sources=sources,
    )


# --- evaluation ---------------------------------------------------------------------------------------------

def _fire(rule: Rule, risk: RiskInput, loss_type: str, policy: Policy) -> FiredRule | None:
    if not rule.applies_to.matches(risk, loss_type) or not all(c.holds(risk) for c in rule.when):
        return None
    header = f"【{GRADE_ZH[rule.grade]}·{rule.name}】"
    reasons = tuple(header + SIGNALS[c.signal].describe(c.signal, risk, c.threshold, policy) for c in rule.when)
    return FiredRule(rule.id, rule.name, rule.grade, reasons)


def evaluate(risk: RiskInput, policy: Policy) -> Decision | None:
    """Grade one risk; None when no rule fires. The grade is the highest grade among the fired rules."""
    loss_type = risk.loss_type if risk.loss_type != "none" else policy.fallback_loss_type[risk.event_kind]
    fired = [hit for rule in policy.rules if (hit := _fire(rule, risk, loss_type, policy)) is not None]
    if not fired:
        return None
    fired.sort(key=lambda hit: grade_rank(hit.grade), reverse=True)
    grade = fired[0].grade
    reasons = [reason for hit in fired if hit.grade == grade for reason in hit.reasons]  # lower ones stay in `fired`
    if risk.loss_type == "none":
        reasons.append(f"分类模型未判定损失类型, 按事件类型归为{LOSS_TYPE_ZH[loss_type]}损失")

    matched_routes: list[Route] = []
    for route in policy.routes:
        if route.match.matches(risk, loss_type):
            matched_routes.append(route)
            if not route.continue_matching:
                break
    owner_specs = tuple(dict.fromkeys(spec for route in matched_routes for spec in route.owners))
    webhooks: dict[str, tuple[str, ...]] = {}
    for route in matched_routes:
        for event, targets in route.webhooks.items():
            webhooks[event] = tuple(dict.fromkeys(webhooks.get(event, ()) + targets))

    deadline_hours = policy.grades[grade].deadline_hours
    context = {"channel": _channel_zh(risk, policy), "deadline_hours": _fmt(deadline_hours)}
    actions = tuple(dict.fromkeys(
        Action(action.text.format(**context), action.system, action.due_hours)
        for entry in policy.playbook if entry.match.matches(risk, loss_type)
        for action in entry.actions
    ))
    return Decision(
        grade=grade,
        loss_type=loss_type,
        fired=tuple(fired),
        reasons=tuple(reasons),
        actions=actions,
        deadline_hours=deadline_hours,
        routes=tuple(route.name for route in matched_routes),
        owner_specs=owner_specs or policy.default_owners,
        webhooks=webhooks,
    )
