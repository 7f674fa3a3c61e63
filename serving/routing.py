"""Routing and playbook: who owns a graded warning, why each of them is there, and what each has to do by when.

The order is fixed, and the README explains it: (1) the functional owner follows the responsible function the model
predicted, when its probability clears `routing.function_confidence`; below it (or with no function) the default
owners take the warning and a note says so. (2) Co-owner routes ADD owners, never replace the functional one:
loss-type routes (culture → 企业文化 + HR, opportunity → the project owner) and keyword-kind routes (the specialists a
kind of sensitive topic needs: legal for a leak or a labour dispute, quality/EHS for safety, ...). (3) Playbook
entries fire for what the event carries (a leak action only with a leak hit) and every action names its owner and
its due time; an action's owner who is not yet an owner of the warning is added as a co-owner, so the person who
must act is told.

Why (issue #19, measured through /assess on labelled posts): with the loss-type route first, half the warnings went
to 企业文化 whatever the function, and one "sensitive" route sent every 投诉/加班/裁员 post to legal with leak actions;
bench/routing.py measures this routing against that policy.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from features.contracts import FUNCTION_ZH, LOSS_TYPE_ZH
from serving.policy import Action, Match, OwnerSpec, Policy, Route

if TYPE_CHECKING:  # annotations only: serving.rules imports this module
    from serving.rules import RiskInput

EVENT_KIND_ZH = {"post": "帖子", "complaint": "投诉", "team": "团队"}
CATEGORY_ZH = {"company": "公司名", "value": "核心价值观", "sensitive": "敏感话题"}
DEFAULT_ROUTE = "默认负责人"
PLAYBOOK_ROUTE = "行动手册"


@dataclass(frozen=True)
class RoutedOwner:
    """An owner the policy names for one warning: its catalog entry, its role (functional or co_owner), the route
    that brought it and why, in Chinese, for the people reading the warning."""

    spec: OwnerSpec
    role: str
    route: str
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.spec.name, "title": self.spec.title, "function": self.spec.function,
                "role": self.role, "route": self.route, "why": self.why}


@dataclass(frozen=True)
class Routing:
    function: str  # the routed function: the predicted one when confident enough, else none
    kinds: frozenset[str]
    owners: tuple[RoutedOwner, ...]
    routes: tuple[str, ...]
    webhooks: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...]


def routed_function(risk: RiskInput, policy: Policy) -> tuple[str, str | None]:
    """The function routing follows, and why it is none when the model named one (or named none)."""
    if risk.function == "none":
        return "none", "职能模型未判定责任职能"
    if risk.function_confidence < policy.function_confidence:
        return "none", (f"职能模型判定为{FUNCTION_ZH[risk.function]}，但置信度 {risk.function_confidence:.2f} "
                        f"低于阈值 {policy.function_confidence:.2f}")
    return risk.function, None


def _signal(match: Match, risk: RiskInput, loss_type: str, function: str, kinds: frozenset[str],
            policy: Policy) -> str:
    """What of the event made a route match, in Chinese: the signal behind a co-owner."""
    parts = []
    if match.loss_types:
        parts.append(f"损失类型为{LOSS_TYPE_ZH[loss_type]}损失")
    for name in match.keyword_kinds:
        if name in kinds:
            kind = policy.keyword_kinds[name]
            terms = dict.fromkeys(hit["term"] for hit in risk.keyword_hits
                                  if hit.get("kind") == name and hit["severity"] >= kind.severity)
            parts.append(f"命中{kind.title}关键词「{'、'.join(terms)}」")
    if match.functions:
        parts.append(f"责任职能为{FUNCTION_ZH[function]}")
    if match.event_kinds:
        parts.append(f"事件类型为{EVENT_KIND_ZH[risk.event_kind]}")
    if match.channels:
        parts.append(f"渠道为{policy.channel_names.get(risk.channel, risk.channel)}")
    if match.external is not None:
        parts.append("外部渠道" if match.external else "内部渠道")
    if match.keyword_categories:
        found = dict.fromkeys(hit["category"] for hit in risk.keyword_hits
                              if hit["category"] in match.keyword_categories)
        parts.append("命中" + "、".join(CATEGORY_ZH[c] for c in found) + "关键词")
    return "，".join(parts) or "适用于所有预警"


def _merged(owners: list[RoutedOwner]) -> tuple[RoutedOwner, ...]:
    """One entry per catalog owner: the first (functional before co-owner) keeps its role, the others' reasons are
    appended, so an owner brought by two routes says both."""
    by_name: dict[str, RoutedOwner] = {}
    for owner in owners:
        first = by_name.get(owner.spec.name)
        if first is None:
            by_name[owner.spec.name] = owner
        elif owner.why not in first.why:
            by_name[owner.spec.name] = RoutedOwner(first.spec, first.role, first.route, f"{first.why}；另：{owner.why}")
    return tuple(by_name.values())


def route(risk: RiskInput, loss_type: str, kinds: frozenset[str], policy: Policy) -> Routing:
    """(1) the functional owner from the confident function, else the default owners with a note; (2) every
    matching co-owner route adds its owners."""
    function, fallback = routed_function(risk, policy)
    functional: Route | None = None
    if function != "none":
        functional = next((r for r in policy.functional_routes if r.match.matches(risk, loss_type, function, kinds)),
                          None)
        if functional is None:
            fallback = f"责任职能{FUNCTION_ZH[function]}没有匹配的职能路由"
    owners: list[RoutedOwner] = []
    notes: list[str] = []
    if functional is not None:
        why = (f"责任职能为{FUNCTION_ZH[function]}（职能模型置信度 {risk.function_confidence:.2f}，"
               f"阈值 {policy.function_confidence:.2f}），路由「{functional.name}」")
        owners += [RoutedOwner(spec, "functional", functional.name, why) for spec in functional.owners]
    else:
        titles = "、".join(spec.title for spec in policy.default_owners)
        notes.append(f"{fallback}，由默认负责人（{titles}）承接")
        owners += [RoutedOwner(spec, "functional", DEFAULT_ROUTE, f"默认负责人：{fallback}")
                   for spec in policy.default_owners]
    matched = [functional] if functional is not None else []
    for candidate in policy.co_owner_routes:
        if candidate.match.matches(risk, loss_type, function, kinds):
            matched.append(candidate)
            why = f"路由「{candidate.name}」：{_signal(candidate.match, risk, loss_type, function, kinds, policy)}"
            owners += [RoutedOwner(spec, "co_owner", candidate.name, why) for spec in candidate.owners]
    webhooks: dict[str, tuple[str, ...]] = {}
    for matched_route in matched:
        for event, targets in matched_route.webhooks.items():
            webhooks[event] = tuple(dict.fromkeys(webhooks.get(event, ()) + targets))
    return Routing(function, kinds, _merged(owners), tuple(r.name for r in matched), webhooks, tuple(notes))


def plan_actions(risk: RiskInput, loss_type: str, routing: Routing, policy: Policy, deadline_hours: float,
                 context: Mapping[str, str]) -> tuple[tuple[Action, ...], tuple[RoutedOwner, ...]]:
    """The actions of every matching playbook entry, each with its owner (the entry's, else the warning's lead:
    its first functional owner) and due time (the entry's, else the grade's deadline); an action owner not yet
    among the warning's owners joins them as a co-owner."""
    lead = routing.owners[0].spec
    owners = list(routing.owners)
    known = {owner.spec.name for owner in owners}
    actions = []
    for entry in policy.playbook:
        if not entry.match.matches(risk, loss_type, routing.function, routing.kinds):
            continue
        for action in entry.actions:
            spec = policy.owners[action.owner] if action.owner else lead
            text = action.text.format(**context)
            actions.append(Action(text, action.system, action.due_hours or deadline_hours, spec.name, spec.title))
            if spec.name not in known:
                known.add(spec.name)
                owners.append(RoutedOwner(spec, "co_owner", PLAYBOOK_ROUTE, f"负责执行行动「{text}」"))
    return tuple(dict.fromkeys(actions)), tuple(owners)
