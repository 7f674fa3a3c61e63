"""Owners: resolve a warning to concrete people from the org chart, so responsibility is never "someone in HR".

Three kinds of responsibility (BRIEF): the functional owner of the responsible function (客服主管, 市场部负责人 ...)
with the co-owners the policy adds (企业文化岗 for a culture loss, 法务 for a leak ...), direct responsibility (the
employee or team the event is linked to) and management responsibility (heads up the chain; on red also the
executive in charge, 分管领导). Every person carries `why` (in Chinese): the route and signal that put them there.
A unit without an active head never drops a level silently: the next head up answers for it and a note says so.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from features.contracts import ORG_UNIT, validate
from features.errors import InputError
from serving.policy import OwnerSpec
from serving.rules import Decision, RiskInput


class OrgChartError(InputError):
    """The org chart is unusable (unknown parent, cycle, missing column); the message names the unit or column."""


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str
    parent_id: str | None
    head_employee_id: str | None
    function: str
    level: int


@dataclass(frozen=True)
class Person:
    employee_id: str
    unit_id: str | None
    unit_name: str
    role: str
    why: str = ""  # why this person is on the warning (route and signal, or the chain of responsibility)
    owner: str = ""  # the policy catalog's owner name, for functional owners and co-owners

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Owners:
    functional: list[Person] = field(default_factory=list)
    direct: list[Person] = field(default_factory=list)
    management: list[Person] = field(default_factory=list)
    executive: Person | None = None
    escalation: list[Person] = field(default_factory=list)  # who is told next when nobody acknowledges in time
    notes: list[str] = field(default_factory=list)
    co_owners: list[Person] = field(default_factory=list)  # added by loss-type, keyword-kind and action routes

    def as_dict(self) -> dict[str, Any]:
        return {
            "functional": [p.as_dict() for p in self.functional],
            "co_owners": [p.as_dict() for p in self.co_owners],
            "direct": [p.as_dict() for p in self.direct],
            "management": [p.as_dict() for p in self.management],
            "executive": self.executive.as_dict() if self.executive else None,
            "escalation": [p.as_dict() for p in self.escalation],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class _Employee:
    employee_id: str
    department_id: str | None
    role: str | None
    active: bool


def _clean(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


class OrgChart:
    """Units with their parents and heads, plus (optionally) who works where and who has left."""

    def __init__(self, units: dict[str, Unit], employees: dict[str, _Employee] | None = None):
        self.units = units
        self.employees = employees

    @classmethod
    def from_frame(cls, org_units: pd.DataFrame, employees: pd.DataFrame | None = None) -> OrgChart:
        clean = validate(org_units, ORG_UNIT, strict=True).frame
        parents = {unit_id: _clean(parent)
                   for unit_id, parent in zip(clean["unit_id"], clean["parent_id"], strict=True)}
        for row, parent in enumerate(parents.values()):
            if parent is not None and parent not in parents:
                raise OrgChartError(f"第 {row} 行 字段 parent_id: 未知上级部门 {parent!r}")
        depths = {unit_id: cls._depth(unit_id, parents) for unit_id in parents}
        levels = org_units["level"].tolist() if "level" in org_units.columns else [None] * len(clean)
        units = {}
        for row, record in enumerate(clean.to_dict("records")):
            level = levels[row]
            if level is None or pd.isna(level):
                level = depths[record["unit_id"]]
            elif float(level) != int(level) or int(level) < 0:
                raise OrgChartError(f"第 {row} 行 字段 level: 应为非负整数, 实为 {level!r}")
            units[record["unit_id"]] = Unit(record["unit_id"], record["name"], parents[record["unit_id"]],
                                            _clean(record["head_employee_id"]), record["function"], int(level))
        return cls(units, cls._employees(employees) if employees is not None else None)

    @staticmethod
    def _depth(unit_id: str, parents: dict[str, str | None]) -> int:
        seen = [unit_id]
        while parents[seen[-1]] is not None:
            parent = parents[seen[-1]]
            if parent in seen:
                raise OrgChartError(f"部门 {unit_id!r} 的上级链存在环: {' → '.join(seen + [parent])}")
            seen.append(parent)
        return len(seen) - 1

    @staticmethod
    def _employees(frame: pd.DataFrame) -> dict[str, _Employee]:
        for column in ("employee_id", "department_id"):
            if column not in frame.columns:
                raise OrgChartError(f"员工表缺少必需的列 {column}")
        if "snapshot_date" in frame.columns:  # HR exports hold one row per snapshot: the latest one counts
            frame = frame.sort_values("snapshot_date", kind="stable")
        people = {}
        for record in frame.to_dict("records"):
            employee_id = _clean(record["employee_id"])
            if employee_id is None:
                continue
            people[employee_id] = _Employee(employee_id, _clean(record["department_id"]), _clean(record.get("role")),
                                            _clean(record.get("leave_date")) is None)
        return people

    def ancestors(self, unit_id: str) -> list[Unit]:
        """The unit itself, then its parents up to the company."""
        chain = [self.units[unit_id]]
        while chain[-1].parent_id is not None:
            chain.append(self.units[chain[-1].parent_id])
        return chain

    def subtree(self, unit_id: str) -> set[str]:
        """The unit and every unit below it (for "my department and below" permissions and filters)."""
        if unit_id not in self.units:
            raise OrgChartError(f"未知部门 {unit_id!r}")
        return {uid for uid in self.units if any(u.unit_id == unit_id for u in self.ancestors(uid))}

    def _missing_head(self, unit: Unit) -> str | None:
        """Why the unit's head cannot answer for it, or None when the head is there."""
        head = unit.head_employee_id
        if head is None:
            return "未设负责人"
        if self.employees is not None:
            if head not in self.employees:
                return f"负责人 {head} 不在员工名单中"
            if not self.employees[head].active:
                return f"负责人 {head} 已离职"
        return None

    def answering(self, unit_id: str, notes: list[str]) -> list[tuple[Unit, Person | None]]:
        """For the unit and each unit above it: the person who answers for it (its head, else the next head up)."""
        chain = self.ancestors(unit_id)
        result: list[tuple[Unit, Person | None]] = []
        for index, unit in enumerate(chain):
            substitute = next((u for u in chain[index:] if self._missing_head(u) is None), None)
            if substitute is None:
                notes.append(f"「{unit.name}」{self._missing_head(unit)}，且上级均无可用负责人")
                result.append((unit, None))
                continue
            role = f"{unit.name}负责人"
            if substitute is not unit:
                notes.append(f"「{unit.name}」{self._missing_head(unit)}，由上级「{substitute.name}」负责人 "
                             f"{substitute.head_employee_id} 承担")
                role = f"{substitute.name}负责人（代「{unit.name}」）"
            result.append((unit, Person(substitute.head_employee_id, substitute.unit_id, substitute.name, role)))
        return result

    def functional_unit(self, spec: OwnerSpec, near: str | None, notes: list[str]) -> Unit | None:
        """The unit with the spec's function above the linked unit (nearest or top-most by scope), else anywhere."""
        def fits(unit: Unit) -> bool:
            return unit.function == spec.function and (spec.name_contains is None or spec.name_contains in unit.name)

        if near is not None:
            above = [u for u in self.ancestors(near) if fits(u)]
            if above:
                return above[0] if spec.scope == "team" else above[-1]
        candidates = [u for u in self.units.values() if fits(u)]
        if not candidates and spec.name_contains is not None:
            candidates = [u for u in self.units.values() if u.function == spec.function]
            if candidates:
                notes.append(f"未找到名称含「{spec.name_contains}」的部门，「{spec.title}」改由职能部门负责人承担")
        if not candidates:
            notes.append(f"组织架构中没有职能为 {spec.function} 的部门，无法确定「{spec.title}」")
            return None
        return min(candidates, key=lambda u: (u.level, u.unit_id))


def _unique(people: list[Person | None], exclude: Collection[str] = ()) -> list[Person]:
    seen = set(exclude)
    out = []
    for person in people:
        if person is not None and person.employee_id not in seen:
            seen.add(person.employee_id)
            out.append(person)
    return out


def _policy_owners(decision: Decision, linked: str | None, chart: OrgChart, notes: list[str]
                   ) -> tuple[list[Person], list[Person]]:
    """The people behind the policy's owners, functional and co-owners apart; one person named by two owners
    (a small org's HR head is also its recruiter) is listed once, with both reasons."""
    people: dict[str, list[Person]] = {"functional": [], "co_owner": []}
    seen: dict[str, tuple[str, int]] = {}
    for routed in decision.owners:
        spec = routed.spec
        unit = chart.functional_unit(spec, linked, notes)
        if unit is None:
            continue
        head = chart.answering(unit.unit_id, notes)[0][1]
        if head is None:
            continue
        if head.employee_id in seen:
            role, index = seen[head.employee_id]
            first = people[role][index]
            if routed.why not in first.why:
                people[role][index] = Person(first.employee_id, first.unit_id, first.unit_name, first.role,
                                             f"{first.why}；另：{routed.why}", first.owner)
            continue
        title = spec.title if head.unit_id == unit.unit_id else f"{head.unit_name}负责人（代{spec.title}）"
        seen[head.employee_id] = (routed.role, len(people[routed.role]))
        people[routed.role].append(Person(head.employee_id, head.unit_id, head.unit_name, title, routed.why,
                                          spec.name))
    return people["functional"], people["co_owner"]


def resolve_owners(decision: Decision, risk: RiskInput, chart: OrgChart) -> Owners:
    """Name the people: functional owners and co-owners, direct and management responsibility, and 分管领导 on red;
    each with why they are there."""
    notes: list[str] = list(decision.notes)
    linked = risk.department_id
    employee = chart.employees.get(risk.employee_id) if risk.employee_id and chart.employees is not None else None
    if risk.employee_id and chart.employees is not None and employee is None:
        notes.append(f"员工 {risk.employee_id} 不在员工名单中，按事件所属部门定位")
    if employee is not None and employee.department_id:
        linked = employee.department_id
    if linked is not None and linked not in chart.units:
        notes.append(f"未知部门 {linked!r}，无法沿组织架构定位管理责任")
        linked = None

    functional, co_owners = _policy_owners(decision, linked, chart, notes)

    direct: list[Person] = []
    chain: list[tuple[Unit, Person | None]] = []
    if risk.employee_id:
        unit_name = chart.units[linked].name if linked else "未知部门"
        role = (employee.role if employee else None) or "员工（经办人/发布者）"
        direct = [Person(risk.employee_id, linked, unit_name, role, "直接责任：事件关联的员工（经办人/发布者）")]
        if linked is not None:
            chain = chart.answering(linked, notes)
    elif linked is not None:
        chain = chart.answering(linked, notes)
        team = chain[0][1]  # the linked team, represented by the person answering for it
        direct = _unique([_why(team, f"直接责任：事件关联的团队「{chain[0][0].name}」的负责人")])
        chain = chain[1:]
    else:
        notes.append("事件未关联部门或员工，无法确定直接责任人")
        if functional and functional[0].unit_id is not None:
            chain = chart.answering(functional[0].unit_id, notes)

    exclude = {person.employee_id for person in direct}
    management = _unique([person for unit, person in chain if unit.level >= 2], exclude)
    if not management:
        management = _unique([person for _, person in chain], exclude)[:1]
    management = [_why(p, f"管理责任：「{p.unit_name}」负责人，直接责任人的上级") for p in management]
    division_head = next((p for u, p in chain if u.level == 1 and p is not None), None)
    company_head = next((p for u, p in chain if u.level == 0 and p is not None), None)

    executive = None
    if decision.grade == "red":
        supervision = "红色预警：分管领导承担督办（监督）责任"
        if division_head is not None:
            executive = Person(division_head.employee_id, division_head.unit_id, division_head.unit_name, "分管领导",
                               supervision)
        elif company_head is not None:
            notes.append("未找到分管领导，由公司负责人承担")
            executive = Person(company_head.employee_id, company_head.unit_id, company_head.unit_name,
                               "公司负责人（代分管领导）", supervision)
        else:
            notes.append("未找到分管领导或公司负责人")
    escalation = _unique(management + [division_head, company_head], exclude)
    return Owners(functional, direct, management, executive, escalation, list(dict.fromkeys(notes)), co_owners)


def _why(person: Person | None, why: str) -> Person | None:
    if person is None:
        return None
    return Person(person.employee_id, person.unit_id, person.unit_name, person.role, why, person.owner)
