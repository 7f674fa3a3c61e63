"""The policy's language: which signals a rule may threshold (`SIGNALS`) and the parts a valid policy file becomes
(rules, keyword kinds, owners, routes, actions, grades, the listening setting).

Its own module so both sides can stand on it without a circle: `serving.policy_parse` builds these parts from YAML
and `serving.policy` assembles them into the Policy; the evaluator (`serving.rules`, `serving.routing`) reads them.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.contracts import COMPLAINT_CHANNELS, CORPUS_CHANNELS
from features.errors import InputError
from serving.monitoring.config import MONITORING_SIGNALS

if TYPE_CHECKING:  # annotations only: at run time the policy never imports the evaluator
    from serving.rules import RiskInput

GRADES = ("blue", "yellow", "orange", "red")  # ascending severity
GRADE_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
GRADE_LEVEL = {"blue": "IV", "yellow": "III", "orange": "II", "red": "I"}
EVENT_KINDS = ("post", "complaint", "team", "trend")  # trend: a volume spike (serving.monitoring)
KEYWORD_CATEGORIES = ("company", "value", "sensitive")
OWNER_SCOPES = ("department", "team")
OWNER_ROLES = ("functional", "co_owner")  # the functional owner of the responsible function; co-owners added
WEBHOOK_EVENTS = ("opened", "updated", "reminded", "escalated", "acknowledged", "assigned", "resolved")
KNOWN_CHANNELS = tuple(dict.fromkeys(CORPUS_CHANNELS + COMPLAINT_CHANNELS))
DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
LEAD_OWNER = "lead"  # an action without `owner:` is the warning's first functional owner's
_SENTIMENT_RANK = {"pos": 0, "neu": 1, "neg": 2}


def grade_rank(grade: str | None) -> int:
    """Order of severity; no warning ranks below blue."""
    return -1 if grade is None else GRADES.index(grade)


class PolicyError(InputError):
    """The policy file is invalid; the message starts with the offending key path."""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def keyword_hits(risk: RiskInput, category: str | None = None, kinds: Iterable[str] = ()) -> list[dict]:
    """The event's keyword hits of a category (None: any), and of those kinds when given (a rule filtered by
    `keyword_kinds` reads only the hits of its kinds: a wage dispute never fires a leak rule)."""
    kinds = set(kinds)
    return [hit for hit in risk.keyword_hits
            if category in (None, hit["category"]) and (not kinds or hit.get("kind") in kinds)]


def _keyword_reader(category: str | None) -> Callable[..., int | None]:
    def read(risk: RiskInput, kinds: Iterable[str] = ()) -> int | None:
        severities = [hit["severity"] for hit in keyword_hits(risk, category, kinds)]
        return max(severities) if severities else None

    return read


@dataclass(frozen=True)
class Signal:
    """One risk input a rule can threshold: how to read it, its label in Chinese and the thresholds a policy may
    set. Why the condition fired, worded for people, is the evaluator's (`serving.rules`). Keyword signals read
    `(risk, kinds)`: the kinds a rule is filtered to."""

    label: str
    read: Callable[..., float | None]
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
SIGNALS.update({name: Signal(*spec) for name, spec in MONITORING_SIGNALS.items()})  # spikes, complaint clusters


@dataclass(frozen=True)
class KeywordKind:
    """A kind of sensitive topic (leak, labour dispute, ...): its Chinese name, and the severity from which one of
    its hits counts as the kind for routes, playbook entries and rule filters. A kind's hits below it (a mere
    mention of 投诉) still feed the keyword severity signals, but call no specialist and fire no kind's action."""

    name: str
    title: str
    severity: int = 1


@dataclass(frozen=True)
class Match:
    """Which events a rule, route or playbook entry applies to; an empty field matches everything.

    `functions` is tested against the routed function (the predicted one when the function model is confident
    enough, else none) and `keyword_kinds` against the kinds present (hits at or above their kind's severity):
    the evaluator passes both, computed once per event."""

    event_kinds: tuple[str, ...] = ()
    loss_types: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    keyword_categories: tuple[str, ...] = ()
    keyword_kinds: tuple[str, ...] = ()
    external: bool | None = None

    def matches(self, risk: RiskInput, loss_type: str, function: str | None = None,
                kinds: frozenset[str] = frozenset()) -> bool:
        function = risk.function if function is None else function
        return (
            (not self.event_kinds or risk.event_kind in self.event_kinds)
            and (not self.loss_types or loss_type in self.loss_types)
            and (not self.functions or function in self.functions)
            and (not self.channels or risk.channel in self.channels)
            and (not self.keyword_categories
                 or any(hit["category"] in self.keyword_categories for hit in risk.keyword_hits))
            and (not self.keyword_kinds or not kinds.isdisjoint(self.keyword_kinds))
            and (self.external is None or self.external == (not risk.internal))
        )


@dataclass(frozen=True)
class Condition:
    signal: str
    threshold: float

    def value(self, risk: RiskInput, kinds: Iterable[str] = ()) -> float | None:
        signal = SIGNALS[self.signal]
        return signal.read(risk, kinds) if signal.is_keyword else signal.read(risk)

    def holds(self, risk: RiskInput, kinds: Iterable[str] = ()) -> bool:
        value = self.value(risk, kinds)
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
    """An owner from the policy's `owners` catalog (routes name them, as Alertmanager routes name receivers):
    the head of a unit with this org function (preferring a name containing `name_contains`).

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


@dataclass(frozen=True)
class Action:
    """A suggested action. In the policy `owner` is a catalog name (None: the warning's lead, its first functional
    owner) and `due_hours` may be absent (the grade's deadline); in a Decision both are always filled."""

    text: str
    system: str | None = None
    due_hours: float | None = None
    owner: str | None = None
    owner_title: str | None = None


@dataclass(frozen=True)
class PlaybookEntry:
    match: Match
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class GradeSpec:
    deadline_hours: float
    renotify_minutes: float


@dataclass(frozen=True)
class Listening:
    """What listening collects: a negative post on an outside channel about the tenant gets at least `grade`, with
    or without a keyword hit (it was collected because it is about the tenant). Negative means the sentiment model
    says neg, or P(neg) >= min_p_neg when set (catches the negatives the argmax calls neutral)."""

    warn_negative_external: bool = True
    grade: str = "blue"
    min_p_neg: float | None = None


