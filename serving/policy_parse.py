"""Validate a policy mapping and build the parts of the Policy (`serving.policy_model`) from it; every error names the
key path.

Its own module because the checks are most of the policy's code: each section is read by one function, which
refuses what would otherwise fail silently later (a rule that can never fire, a route naming an owner or a kind of
sensitive topic nobody defined, a template placeholder the evaluator cannot fill).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from features.contracts import FUNCTIONS, LOSS_TYPES, TEXT_FUNCTIONS
from features.keywords import KIND_PATTERN
from serving.monitoring.config import parse_monitoring
from serving.policy_model import (
    _SENTIMENT_RANK,
    EVENT_KINDS,
    GRADES,
    KEYWORD_CATEGORIES,
    KNOWN_CHANNELS,
    OWNER_SCOPES,
    SIGNALS,
    WEBHOOK_EVENTS,
    Action,
    Condition,
    GradeSpec,
    KeywordKind,
    Listening,
    Match,
    OwnerSpec,
    PlaybookEntry,
    PolicyError,
    Route,
    Rule,
    _is_number,
)

LISTENING_RULE = "listening_negative_external"  # the id of the rules `listening` adds


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


def _probability(value: Any, path: str) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise _fail(path, f"应为 0 到 1 之间的数字, 实为 {value!r}")
    return float(value)


def _flag(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "应为 true 或 false")
    return value


def _choices(value: Any, path: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = _list(value, path)
    for index, item in enumerate(items):
        if item not in allowed:
            raise _fail(f"{path}[{index}]", f"取值 {item!r} 不在允许范围 {list(allowed)}")
    return tuple(items)


_RULE_FILTERS = ("event_kinds", "loss_types", "functions", "channels", "keyword_kinds")
_MATCH_KEYS = _RULE_FILTERS + ("keyword_categories", "external")


def _parse_match(value: Any, path: str, kinds: Mapping[str, KeywordKind], keys: tuple[str, ...] = _MATCH_KEYS) -> Match:
    data = _mapping(value, path, keys)
    allowed = {"event_kinds": EVENT_KINDS, "loss_types": LOSS_TYPES, "functions": TEXT_FUNCTIONS,
               "channels": KNOWN_CHANNELS, "keyword_categories": KEYWORD_CATEGORIES}
    fields_: dict[str, Any] = {key: _choices(data[key], f"{path}.{key}", allowed[key])
                               for key in allowed if key in data}
    if "keyword_kinds" in data:
        for index, kind in enumerate(_list(data["keyword_kinds"], f"{path}.keyword_kinds")):
            if kind not in kinds:
                raise _fail(f"{path}.keyword_kinds[{index}]",
                            f"未定义的敏感话题类别 {kind!r}; keyword_kinds 中有: {list(kinds)}")
        fields_["keyword_kinds"] = tuple(data["keyword_kinds"])
    if "external" in data:
        fields_["external"] = _flag(data["external"], f"{path}.external")
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


def _parse_rules(value: Any, kinds: Mapping[str, KeywordKind]) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(_list(value, "rules")):
        raw = _mapping(item, f"rules[{index}]")
        path = f"rules.{raw['id']}" if isinstance(raw.get("id"), str) else f"rules[{index}]"
        raw = _mapping(raw, path, ("id", "name", "grade", "when", "enabled") + _RULE_FILTERS, ("id", "name", "when"))
        rule_id = _text(raw["id"], f"{path}.id")
        if rule_id in seen:
            raise _fail(f"{path}.id", "规则 id 重复")
        if rule_id.startswith(LISTENING_RULE):
            raise _fail(f"{path}.id", f"以 {LISTENING_RULE} 开头的 id 留给 listening 设置生成的规则")
        seen.add(rule_id)
        enabled = _flag(raw.get("enabled", True), f"{path}.enabled")
        if raw.get("grade") not in GRADES:
            raise _fail(f"{path}.grade", f"取值 {raw.get('grade')!r} 不在允许范围 {list(GRADES)}")
        when = _mapping(raw["when"], f"{path}.when")
        if not when:
            raise _fail(f"{path}.when", "至少需要一个条件")
        conditions = tuple(_parse_condition(name, threshold, f"{path}.when.{name}")
                           for name, threshold in when.items())
        filters = {key: raw[key] for key in _RULE_FILTERS if key in raw}
        applies_to = _parse_match(filters, path, kinds, _RULE_FILTERS)
        if enabled:
            rules.append(Rule(rule_id, _text(raw["name"], f"{path}.name"), raw["grade"], conditions, applies_to))
    return rules


def _parse_listening(value: Any) -> tuple[Listening, list[Rule]]:
    """The listening setting and the rules it adds: a negative external post gets at least `grade`."""
    raw = _mapping(value, "listening", ("warn_negative_external", "grade", "min_p_neg"))
    enabled = _flag(raw.get("warn_negative_external", True), "listening.warn_negative_external")
    grade = raw.get("grade", "blue")
    if grade not in GRADES:
        raise _fail("listening.grade", f"取值 {grade!r} 不在允许范围 {list(GRADES)}")
    min_p_neg = _probability(raw["min_p_neg"], "listening.min_p_neg") if raw.get("min_p_neg") is not None else None
    listening = Listening(enabled, grade, min_p_neg)
    if not enabled:
        return listening, []
    name, posts = "舆情监测：外部渠道负面内容", Match(event_kinds=("post",))
    rules = []
    # The sentiment model's neg is its argmax of three, so P(neg) >= 1/3 there: a min_p_neg at or below 1/3 already
    # covers it and one rule says why (two would list the same warning twice).
    if min_p_neg is None or min_p_neg > 1 / 3:
        rules.append(Rule(LISTENING_RULE, name, grade, (Condition("sentiment", 2), Condition("external", 1)), posts))
    if min_p_neg is not None:
        rules.append(Rule(f"{LISTENING_RULE}_p_neg", name, grade,
                          (Condition("p_neg", min_p_neg), Condition("external", 1)), posts))
    return listening, rules


def _parse_kinds(value: Any) -> dict[str, KeywordKind]:
    """`keyword_kinds: {kind: {name, severity}}`: the kinds of sensitive topic routes, rules and playbook name."""
    kinds = {}
    for kind, item in _mapping(value, "keyword_kinds").items():
        where = f"keyword_kinds.{kind}"
        if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
            raise _fail(where, "类别应为小写英文标识 (如 leak、labour)")
        raw = _mapping(item, where, ("name", "severity"), ("name",))
        severity = raw.get("severity", 1)
        if isinstance(severity, bool) or severity not in (1, 2, 3):
            raise _fail(f"{where}.severity", f"应为 1、2 或 3, 实为 {severity!r}")
        kinds[kind] = KeywordKind(kind, _text(raw["name"], f"{where}.name"), int(severity))
    return kinds


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


def _owner(name: Any, path: str, catalog: Mapping[str, OwnerSpec]) -> OwnerSpec:
    if not isinstance(name, str) or name not in catalog:
        raise _fail(path, f"未定义的负责人 {name!r}; 负责人目录 owners 中有: {list(catalog)}")
    return catalog[name]


def _parse_owners(value: Any, path: str, catalog: Mapping[str, OwnerSpec]) -> tuple[OwnerSpec, ...]:
    """A list of catalog names; anything else is refused naming the entry and the names known."""
    return tuple(_owner(name, f"{path}[{index}]", catalog) for index, name in enumerate(_list(value, path)))


def _parse_targets(value: Any, path: str, targets: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    events = _mapping(value, path, WEBHOOK_EVENTS)
    return {event: _choices(names, f"{path}.{event}", tuple(targets)) for event, names in events.items()}


def _parse_routes(value: Any, path: str, catalog: Mapping[str, OwnerSpec], webhooks: Mapping[str, str],
                  kinds: Mapping[str, KeywordKind], *, functional: bool) -> tuple[Route, ...]:
    routes = []
    for index, item in enumerate(_list(value, path)):
        where = f"{path}[{index}]"
        raw = _mapping(item, where, ("name", "match", "owners", "webhooks"), ("name", "match"))
        match = _parse_match(raw["match"], f"{where}.match", kinds)
        if functional and (not match.functions or "none" in match.functions):
            raise _fail(f"{where}.match.functions", "职能路由必须按责任职能 (functions, 不含 none) 匹配; "
                                                    "按损失类型或敏感话题增派的负责人写在 routing.co_owners")
        owners = _parse_owners(raw.get("owners", []), f"{where}.owners", catalog)
        if functional and not owners:
            raise _fail(f"{where}.owners", "职能路由至少需要一个负责人")
        routes.append(Route(_text(raw["name"], f"{where}.name"), match, owners,
                            _parse_targets(raw.get("webhooks", {}), f"{where}.webhooks", webhooks)))
    return tuple(routes)


def _parse_routing(value: Any, catalog: Mapping[str, OwnerSpec], webhooks: Mapping[str, str],
                   kinds: Mapping[str, KeywordKind]) -> dict[str, Any]:
    raw = _mapping(value, "routing")
    if "routes" in raw:
        raise _fail("routing.routes", "已拆分为 routing.functional（职能负责人，第一个匹配的路由）与 routing.co_owners"
                                      "（协同负责人，每个匹配的路由都增派），见 serving/policy.yaml")
    raw = _mapping(raw, "routing", ("function_confidence", "default_owners", "functional", "co_owners"),
                   ("default_owners", "functional"))
    default_owners = _parse_owners(raw["default_owners"], "routing.default_owners", catalog)
    if not default_owners:
        raise _fail("routing.default_owners", "至少需要一个负责人")
    return {
        "function_confidence": _probability(raw.get("function_confidence", 0.5), "routing.function_confidence"),
        "default_owners": default_owners,
        "functional_routes": _parse_routes(raw["functional"], "routing.functional", catalog, webhooks, kinds,
                                           functional=True),
        "co_owner_routes": _parse_routes(raw.get("co_owners", []), "routing.co_owners", catalog, webhooks, kinds,
                                         functional=False),
    }


def _parse_playbook(value: Any, catalog: Mapping[str, OwnerSpec], webhooks: Mapping[str, str],
                    kinds: Mapping[str, KeywordKind]) -> tuple[PlaybookEntry, ...]:
    playbook = []
    for index, item in enumerate(_list(value, "playbook")):
        path = f"playbook[{index}]"
        raw = _mapping(item, path, ("match", "actions"), ("match", "actions"))
        actions = []
        for position, action in enumerate(_list(raw["actions"], f"{path}.actions")):
            where = f"{path}.actions[{position}]"
            action = _mapping(action, where, ("text", "system", "due_hours", "owner"), ("text",))
            text = _text(action["text"], f"{where}.text")
            try:
                text.format(channel="", deadline_hours="")
            except (KeyError, IndexError, ValueError):
                raise _fail(f"{where}.text", "模板只能使用 {channel} 与 {deadline_hours}") from None
            system = action.get("system")
            if system is not None and system not in webhooks:
                raise _fail(f"{where}.system", f"未定义的集成 {system!r}; 已定义: {list(webhooks)}")
            due = _positive(action["due_hours"], f"{where}.due_hours") if "due_hours" in action else None
            owner = _owner(action["owner"], f"{where}.owner", catalog).name if "owner" in action else None
            actions.append(Action(text, system, due, owner))
        playbook.append(PlaybookEntry(_parse_match(raw["match"], f"{path}.match", kinds), tuple(actions)))
    return tuple(playbook)


def _parse_grades(value: Any) -> dict[str, GradeSpec]:
    grades_raw = _mapping(value, "grades", GRADES, GRADES)
    grades = {}
    for grade in GRADES:
        spec = _mapping(grades_raw[grade], f"grades.{grade}", ("deadline_hours", "renotify_minutes"),
                        ("deadline_hours", "renotify_minutes"))
        grades[grade] = GradeSpec(_positive(spec["deadline_hours"], f"grades.{grade}.deadline_hours"),
                                  _positive(spec["renotify_minutes"], f"grades.{grade}.renotify_minutes"))
    for lower, higher in zip(GRADES, GRADES[1:], strict=False):
        if grades[higher].deadline_hours > grades[lower].deadline_hours:
            raise _fail(f"grades.{higher}.deadline_hours", f"不应长于更低等级 {lower} 的处理时限")
    return grades


def _parse_webhooks(value: Any) -> dict[str, str]:
    webhooks = {}
    for name, spec in _mapping(value, "webhooks").items():
        spec = _mapping(spec, f"webhooks.{name}", ("url",), ("url",))
        url = _text(spec["url"], f"webhooks.{name}.url", allow_empty=True)
        if url and not url.startswith(("http://", "https://")):
            raise _fail(f"webhooks.{name}.url", "应以 http:// 或 https:// 开头")
        webhooks[name] = url
    return webhooks


def parse_policy(data: Any) -> dict[str, Any]:
    """The Policy's fields from a policy mapping (the default merged with a tenant's)."""
    top = _mapping(data, "", ("grades", "grouping", "inhibition", "fallback_loss_type", "channel_names",
                              "listening", "rules", "keyword_kinds", "owners", "routing", "playbook", "webhooks",
                              "monitoring"),
                   ("grades", "rules", "owners", "routing"))

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

    webhooks = _parse_webhooks(top.get("webhooks", {}))
    kinds = _parse_kinds(top.get("keyword_kinds", {}))
    catalog = _parse_owner_catalog(top["owners"])
    listening, listening_rules = _parse_listening(top.get("listening", {}))
    rules = _parse_rules(top["rules"], kinds) + listening_rules
    if not rules:
        raise _fail("rules", "至少需要一条启用的规则")

    return dict(
        grades=_parse_grades(top["grades"]),
        grouping_window_minutes=_positive(grouping["window_minutes"], "grouping.window_minutes"),
        inhibit_source_grades=_choices(inhibition["source_grades"], "inhibition.source_grades", GRADES),
        inhibit_equal=equal,
        fallback_loss_type=fallback,
        channel_names=channel_names,
        rules=tuple(rules),
        playbook=_parse_playbook(top.get("playbook", []), catalog, webhooks, kinds),
        webhooks=webhooks,
        owners=catalog,
        keyword_kinds=kinds,
        listening=listening,
        monitoring=parse_monitoring(top.get("monitoring", {}), _fail, EVENT_KINDS),
        **_parse_routing(top["routing"], catalog, webhooks, kinds),
    )
