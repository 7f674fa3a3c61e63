"""Warning rules: turn one risk (model predictions as plain data) into a graded warning a person can act on.

The policy (thresholds, routes, playbook) is data, loaded and validated by `serving.policy`; this module is the
evaluator: it grades, and `serving.routing` says who owns the warning and what to do. Every rule condition is
"input >= threshold" and the grade is the highest fired rule, so raising any single risk input can never lower the
grade (tested by property).

The policy model's names are re-exported here (`from serving.rules import Policy, GRADES, ...`): callers that
grade events need both, and imports written before the split keep working.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from features.contracts import LOSS_TYPE_ZH, LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.errors import InputError
from serving.policy import (
    DEFAULT_POLICY_PATH,
    EVENT_KINDS,
    GRADE_LEVEL,
    GRADE_ZH,
    GRADES,
    KEYWORD_CATEGORIES,
    SIGNALS,
    Action,
    Condition,
    OwnerSpec,
    Policy,
    PolicyError,
    Rule,
    _is_number,
    grade_rank,
    keyword_hits,
)
from serving.routing import RoutedOwner, Routing, plan_actions, route

__all__ = [
    # the evaluator
    "Decision", "FiredRule", "RiskInput", "RiskInputError", "RoutedOwner", "SENTIMENT_ZH", "evaluate",
    # re-exported from serving.policy: what callers that grade events also need
    "DEFAULT_POLICY_PATH", "EVENT_KINDS", "GRADES", "KEYWORD_CATEGORIES", "Policy", "PolicyError", "SIGNALS",
    "grade_rank",
]

SENTIMENT_ZH = {"neg": "负面", "neu": "中性", "pos": "正面"}


class RiskInputError(InputError):
    """A RiskInput field is malformed; the message names the field."""


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
    function_confidence: float = 1.0  # the function model's probability; 1.0 when a person or system gave it
    keyword_hits: list[dict] = field(default_factory=list)
    reach_p50: float | None = None
    reach_p90: float | None = None
    velocity_per_hour: float | None = None
    regions: int | None = None
    high_risk_key_employees: int = 0
    team_expected_leavers: float | None = None
    raw_text: str | None = None  # the text as sent, when it held invisible characters (audit only; rules read text)
    # A trend (spike) or clustered complaint: ratio, excess, negative_share, reach, cluster_size and what the
    # reasons quote (baseline, window, examples); the monitoring signals read it (serving.monitoring.config).
    monitoring: dict | None = None

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
        for name in ("p_neg", "function_confidence"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 1:
                fail(name, f"应在 0 到 1 之间, 实为 {value!r}")
            setattr(self, name, float(value))
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
            if hit.get("kind") is not None and (not isinstance(hit["kind"], str) or hit["category"] != "sensitive"):
                fail(f"{where}.kind", f"只有敏感话题 (sensitive) 有类别, 且应为文本; 实为 {hit['kind']!r}")
            if not _is_number(hit.get("severity")) or hit["severity"] not in (1, 2, 3):
                fail(f"{where}.severity", f"应为 1、2 或 3, 实为 {hit.get('severity')!r}")
            hits.append({**hit, "kind": hit.get("kind"), "severity": int(hit["severity"]),
                         **{k: int(hit[k]) for k in ("start", "end") if _is_number(hit.get(k))}})
        self.keyword_hits = hits
        if self.monitoring is not None:
            if not isinstance(self.monitoring, Mapping):
                fail("monitoring", "应为字典")
            for name in ("ratio", "excess", "negative_share", "reach", "cluster_size"):
                value = self.monitoring.get(name)
                if value is not None and (not _is_number(value) or value < 0):
                    fail(f"monitoring.{name}", f"应为非负数或空, 实为 {value!r}")
            self.monitoring = {k: float(v) if _is_number(v) else v for k, v in self.monitoring.items()}


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _channel_zh(risk: RiskInput, policy: Policy) -> str:
    return policy.channel_names.get(risk.channel, risk.channel or "未知渠道")


def _keyword_terms(risk: RiskInput, category: str | None, kinds: tuple[str, ...], policy: Policy) -> str:
    """The terms behind a keyword signal, grouped under their kind's name for sensitive topics."""
    groups: dict[str, list[str]] = {}
    for hit in keyword_hits(risk, category, kinds):
        kind = policy.keyword_kinds.get(hit.get("kind") or "")
        groups.setdefault(kind.title if kind else "", []).append(hit["term"])
    return "；".join(f"{title}：" * bool(title) + "「" + "、".join(dict.fromkeys(terms)) + "」"
                    for title, terms in groups.items())


def _describe(condition: Condition, risk: RiskInput, kinds: tuple[str, ...], policy: Policy) -> str:
    """Why one condition held, for the people who read the warning: the value seen against the threshold."""
    name, threshold = condition.signal, condition.threshold
    signal = SIGNALS[name]
    value = condition.value(risk, kinds)
    if name == "external":
        return f"发布于外部渠道（{_channel_zh(risk, policy)}）"
    if name == "sentiment":
        return f"情感倾向为{SENTIMENT_ZH[risk.sentiment_label]}（负面概率 {risk.p_neg:.2f}）"
    if signal.is_keyword:
        terms = _keyword_terms(risk, signal.keyword_category, kinds, policy)
        return f"{signal.label}为 {value}（{terms}），达到阈值 {_fmt(threshold)}"
    return f"{signal.label}为 {_fmt(value)}，达到阈值 {_fmt(threshold)}"


@dataclass(frozen=True)
class FiredRule:
    id: str
    name: str
    grade: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """A graded warning: what fired and why, who the policy routes it to (and why each owner), what to do, by whom
    and by when. `notes` say where routing fell back (a function model not confident enough)."""

    grade: str
    loss_type: str
    fired: tuple[FiredRule, ...]
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    deadline_hours: float
    routes: tuple[str, ...]
    owners: tuple[RoutedOwner, ...]
    webhooks: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = ()
    function: str = "none"  # the routed function: the predicted one when confident enough, else none
    keyword_kinds: tuple[str, ...] = ()  # the kinds of sensitive topic present

    @property
    def owner_specs(self) -> tuple[OwnerSpec, ...]:
        """Every owner the policy names, functional ones first."""
        return tuple(owner.spec for owner in self.owners)

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
            "owners": [owner.as_dict() for owner in self.owners], "notes": list(self.notes),
            "function": self.function, "keyword_kinds": list(self.keyword_kinds),
            "webhooks": {event: list(targets) for event, targets in self.webhooks.items()},
        }


# --- evaluation ---------------------------------------------------------------------------------------------

def _fire(rule: Rule, risk: RiskInput, loss_type: str, kinds: frozenset[str], policy: Policy) -> FiredRule | None:
    """The rule's reasons when it fires. Its `keyword_kinds` filter narrows what its keyword signals read too."""
    if not rule.applies_to.matches(risk, loss_type, kinds=kinds):
        return None
    read = rule.applies_to.keyword_kinds
    if not all(c.holds(risk, read) for c in rule.when):
        return None
    header = f"【{GRADE_ZH[rule.grade]}·{rule.name}】"
    reasons = tuple(header + _describe(c, risk, read, policy) for c in rule.when)
    return FiredRule(rule.id, rule.name, rule.grade, reasons)


def evaluate(risk: RiskInput, policy: Policy) -> Decision | None:
    """Grade one risk; None when no rule fires. The grade is the highest grade among the fired rules; owners and
    actions come from `serving.routing`."""
    loss_type = risk.loss_type if risk.loss_type != "none" else policy.fallback_loss_type[risk.event_kind]
    kinds = policy.kinds_present(risk)
    fired = [hit for rule in policy.rules if (hit := _fire(rule, risk, loss_type, kinds, policy)) is not None]
    if not fired:
        return None
    fired.sort(key=lambda hit: grade_rank(hit.grade), reverse=True)
    grade = fired[0].grade
    reasons = [reason for hit in fired if hit.grade == grade for reason in hit.reasons]  # lower ones stay in `fired`
    if risk.loss_type == "none":
        reasons.append(f"分类模型未判定损失类型, 按事件类型归为{LOSS_TYPE_ZH[loss_type]}损失")

    deadline_hours = policy.grades[grade].deadline_hours
    routing: Routing = route(risk, loss_type, kinds, policy)
    context = {"channel": _channel_zh(risk, policy), "deadline_hours": _fmt(deadline_hours)}
    actions, owners = plan_actions(risk, loss_type, routing, policy, deadline_hours, context)
    return Decision(
        grade=grade,
        loss_type=loss_type,
        fired=tuple(fired),
        reasons=tuple(reasons),
        actions=actions,
        deadline_hours=deadline_hours,
        routes=routing.routes,
        owners=owners,
        webhooks=routing.webhooks,
        notes=routing.notes,
        function=routing.function,
        keyword_kinds=tuple(sorted(kinds)),
    )
