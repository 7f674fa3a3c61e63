"""The warning policy: grades, rules, keyword kinds, owners, routing, playbook, integrations, and its YAML.

The policy lives in YAML so a tenant can move thresholds without a release, and it is validated at load so a typo
fails with the key's path instead of silently never firing. Its parts and signals are `serving.policy_model`, the
checks that build them `serving.policy_parse`; this module assembles the Policy and loads and merges files, and
re-exports the parts (`from serving.policy import Match, OwnerSpec, ...`). Grading an event against it is
`serving.rules` (owners and actions: `serving.routing`), which import this module and never the other way round:
the policy can be loaded, merged and checked (by the CLI, by tests) without the evaluator.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from features.settings import settings
from serving.monitoring.config import MonitoringConfig
from serving.policy_model import (  # noqa: F401  (re-exported: the policy's names live here for callers)
    DEFAULT_POLICY_PATH,
    EVENT_KINDS,
    GRADE_LEVEL,
    GRADE_ZH,
    GRADES,
    KEYWORD_CATEGORIES,
    KNOWN_CHANNELS,
    OWNER_ROLES,
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
    Signal,
    _is_number,
    grade_rank,
    keyword_hits,
)
from serving.policy_parse import parse_policy

if TYPE_CHECKING:  # annotations only: at run time the policy never imports the evaluator
    from serving.rules import RiskInput


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
    functional_routes: tuple[Route, ...]
    co_owner_routes: tuple[Route, ...]
    playbook: tuple[PlaybookEntry, ...]
    webhooks: Mapping[str, str]
    sources: tuple[str, ...] = ()
    owners: Mapping[str, OwnerSpec] = field(default_factory=dict)  # the catalog routes refer to by name
    keyword_kinds: Mapping[str, KeywordKind] = field(default_factory=dict)
    function_confidence: float = 0.5
    listening: Listening = Listening()
    monitoring: MonitoringConfig = MonitoringConfig()  # series, spikes, complaint clusters, effects

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route, functional ones first (the order they are tried in)."""
        return self.functional_routes + self.co_owner_routes

    def kinds_present(self, risk: RiskInput) -> frozenset[str]:
        """The kinds of sensitive topic the event carries: hits of a kind the policy defines, at or above that
        kind's severity."""
        return frozenset(hit["kind"] for hit in risk.keyword_hits
                         if hit["category"] == "sensitive" and hit.get("kind") in self.keyword_kinds
                         and hit["severity"] >= self.keyword_kinds[hit["kind"]].severity)

    def check_keyword_kinds(self, kinds: Iterable[str], source: str = "关键词库") -> None:
        """Every kind the keyword library uses must be defined here, or its hits would route nowhere."""
        unknown = sorted(set(kinds) - set(self.keyword_kinds))
        if unknown:
            raise PolicyError(f"keyword_kinds: {source} 使用了策略未定义的敏感话题类别 {unknown}; "
                              f"请在策略 keyword_kinds 中定义 (已定义: {list(self.keyword_kinds)})")

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """Shipped default, with the tenant file (path, else settings.policy_path) merged over it."""
        data = _read_yaml(DEFAULT_POLICY_PATH)
        sources = [str(DEFAULT_POLICY_PATH)]
        override = Path(path) if path is not None else Path(settings.policy_path)
        if override.resolve() != DEFAULT_POLICY_PATH.resolve():
            data = merge_policy(data, _read_yaml(override))
            sources.append(str(override))
        return cls.from_dict(data, sources=tuple(sources))

    @classmethod
    def from_dict(cls, data: Any, *, sources: tuple[str, ...] = ()) -> Policy:
        return cls(**parse_policy(data), sources=sources)


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
