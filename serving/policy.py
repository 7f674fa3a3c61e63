"""The warning policy: its model (grades, rules, routes, owners, playbook, integrations) and its YAML.

The policy lives in YAML so a tenant can move thresholds without a release, and it is validated at load so a typo
fails with the key's path instead of silently never firing. This module is the policy's language: which signals a
rule may threshold (`SIGNALS`), the dataclasses a valid file becomes, and load/merge/validate. Grading an event
against it is `serving.rules`, which imports this module and never the other way round: the model can be loaded,
merged and checked (by the CLI, by tests) without the evaluator.
"""
from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import yaml

from features.errors import InputError
from features.contracts import (
    COMPLAINT_CHANNELS,
    CORPUS_CHANNELS,
    FUNCTIONS,
    LOSS_TYPES,
    TEXT_FUNCTIONS,
)
from features.settings import settings

if TYPE_CHECKING:  # annotations only: at run time the policy never imports the evaluator
    from serving.rules import RiskInput

GRADES = ("blue", "yellow", "orange", "red")  # ascending severity
GRADE_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
GRADE_LEVEL = {"blue": "IV", "yellow": "III", "orange": "II", "red": "I"}
EVENT_KINDS = ("post", "complaint", "team")
KEYWORD_CATEGORIES = ("company", "value", "sensitive")
OWNER_SCOPES = ("department", "team")
WEBHOOK_EVENTS = ("opened", "updated", "reminded", "escalated", "acknowledged", "assigned", "resolved")
KNOWN_CHANNELS = tuple(dict.fromkeys(CORPUS_CHANNELS + COMPLAINT_CHANNELS))
DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
_SENTIMENT_RANK = {"pos": 0, "neu": 1, "neg": 2}


def grade_rank(grade: str | None) -> int:
    """Order of severity; no warning ranks below blue."""
    return -1 if grade is None else GRADES.index(grade)


class PolicyError(InputError):
    """The policy file is invalid; the message starts with the offending key path."""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _keyword_reader(category: str | None) -> Callable[[RiskInput], int | None]:
    def read(risk: RiskInput) -> int | None:
        severities = [hit["severity"] for hit in risk.keyword_hits if category in (None, hit["category"])]
        return max(severities) if severities else None

    return read


@dataclass(frozen=True)
class Signal:
    """One risk input a rule can threshold: how to read it, its label in Chinese and the thresholds a policy may
    set. Why the condition fired, worded for people, is the evaluator's (`serving.rules`)."""

    label: str
    read: Callable[[RiskInput], float | None]
    low: float
    high: float | None = None
    keyword_category: str | None = None
    is_keyword: bool = False


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
    """A functional owner from the policy's `owners` catalog (routes name them, as Alertmanager routes name
    receivers): the head of a unit with this org function (preferring a name containing `name_contains`).

    scope "department": the top-most unit of that function above the linked unit (市场部, not its 内容组);
    scope "team": the nearest one (客服主管 is the agent's own supervisor).
    """

    function: str
    title: str
    name_contains: str | None = None
    scope: str = "department"
    name: str = ""  # its key in the catalog


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
    owners: Mapping[str, OwnerSpec] = field(default_factory=dict)  # the catalog routes refer to by name

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


def _parse_owner_catalog(value: Any) -> dict[str, OwnerSpec]:
    """`owners: {name: {function, title[, name_contains, scope]}}`: each owner defined once."""
    catalog = {}
    for name, item in _mapping(value, "owners").items():
        where = f"owners.{name}"
        raw = _mapping(item, where, ("function", "title", "name_contains", "scope"), ("function", "title"))
        if raw["function"] not in FUNCTIONS:
            raise _fail(f"{where}.function", f"取值 {raw['function']!r} 不在允许范围 {list(FUNCTIONS)}")
        name_contains = raw.get("name_contains")
        if name_contains is not None:
            _text(name_contains, f"{where}.name_contains")
        scope = raw.get("scope", "department")
        if scope not in OWNER_SCOPES:
            raise _fail(f"{where}.scope", f"取值 {scope!r} 不在允许范围 {list(OWNER_SCOPES)}")
        catalog[str(name)] = OwnerSpec(raw["function"], _text(raw["title"], f"{where}.title"), name_contains, scope,
                                       str(name))
    if not catalog:
        raise _fail("owners", "至少需要一个负责人")
    return catalog


def _parse_owners(value: Any, path: str, catalog: Mapping[str, OwnerSpec]) -> tuple[OwnerSpec, ...]:
    """A list of catalog names; anything else is refused naming the entry and the names known."""
    owners = []
    for index, name in enumerate(_list(value, path)):
        if not isinstance(name, str) or name not in catalog:
            raise _fail(f"{path}[{index}]", f"未定义的负责人 {name!r}; 负责人目录 owners 中有: {list(catalog)}")
        owners.append(catalog[name])
    return tuple(owners)


def _parse_targets(value: Any, path: str, targets: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    events = _mapping(value, path, WEBHOOK_EVENTS)
    return {event: _choices(names, f"{path}.{event}", tuple(targets)) for event, names in events.items()}


def _parse_policy(data: Any, sources: tuple[str, ...]) -> Policy:
    top = _mapping(data, "", ("grades", "grouping", "inhibition", "fallback_loss_type", "channel_names",
                                      "rules", "owners", "routing", "playbook", "webhooks"),
                   ("grades", "rules", "owners", "routing"))

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

    catalog = _parse_owner_catalog(top["owners"])
    routing = _mapping(top["routing"], "routing", ("default_owners", "routes"), ("default_owners", "routes"))
    default_owners = _parse_owners(routing["default_owners"], "routing.default_owners", catalog)
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
            _parse_owners(raw.get("owners", []), f"{path}.owners", catalog),
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
        owners=catalog,
    )
