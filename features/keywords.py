"""Per-tenant keyword library: company names and aliases, core values, sensitive topics with a kind and a severity.

Sensitive topics are grouped by kind (leak, labour, safety, harassment, exposure, regulatory, or a tenant's own):
one pile of "sensitive" words sent a customer's 投诉 to legal with leak actions, so a hit carries its kind and
the policy routes and grades each kind on its own (serving/policy.yaml `keyword_kinds`).

The service calls `find` on every text, so all terms of a tenant are compiled into one trie-shaped regex and
matched on a length-preserving fold of the text (traditional → simplified, full-width → half-width, lower
case): a hit's `start`/`end` are positions in the ORIGINAL text, and "數據安全" or "ＸＱ科技" still hit.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from features.errors import InputError
from features.settings import settings
from features.text import coerce_text, fold, trie_pattern

CATEGORIES = {"companies": "company", "values": "value", "sensitive": "sensitive"}
DEFAULT_SEVERITY = {"company": 1, "value": 2}  # sensitive topics must state theirs
DEFAULT_TENANT = "default"
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")  # kinds are policy keys: lower-case identifiers


class KeywordLibraryError(InputError):
    """The YAML is malformed; the message names the file, tenant, section and entry."""


@dataclass(frozen=True)
class Keyword:
    term: str  # the surface form searched for (a name, an alias, a topic word)
    canonical: str  # what it stands for: the company's main name, the value, the topic
    category: str  # company | value | sensitive
    severity: int  # 1-3, on the scale of its kind for sensitive topics
    kind: str | None = None  # sensitive topics only: leak, labour, safety, ... (the policy's keyword_kinds)


class KeywordLibrary:
    """The terms of one tenant (plus the `common` section shared by all tenants)."""

    def __init__(self, keywords: Iterable[Keyword], tenant: str = DEFAULT_TENANT):
        self.tenant = tenant
        self.keywords = tuple(keywords)
        self._by_folded: dict[str, Keyword] = {}
        for keyword in self.keywords:  # the first entry of a duplicated term wins, as listed in the file
            self._by_folded.setdefault(fold(keyword.term), keyword)
        self._pattern = re.compile(trie_pattern(self._by_folded)) if self._by_folded else None

    # ---- loading --------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str | None = None, tenant: str = DEFAULT_TENANT) -> KeywordLibrary:
        path = Path(path or settings.keywords_path)
        return cls.from_dict(_read(path), tenant=tenant, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, tenant: str = DEFAULT_TENANT, source: str = "<dict>") -> KeywordLibrary:
        tenants = _tenants(data, source)
        if tenant not in tenants:
            raise KeywordLibraryError(f"关键词库 {source}: 没有租户 {tenant!r}; 现有租户: {sorted(tenants)}")
        sections = [("common", (data or {}).get("common") or {}), (f"tenants.{tenant}", tenants[tenant] or {})]
        return cls([k for where, section in sections for k in _parse_section(section, f"{source}: {where}")], tenant)

    @staticmethod
    def company_names(path: Path | str | None = None) -> list[str]:
        """Every company name and alias of every tenant: what the text models mask before they learn."""
        path = Path(path or settings.keywords_path)
        data = _read(path)
        names = []
        for tenant, section in _tenants(data, str(path)).items():
            names += [k.term for k in _parse_section(section or {}, f"{path}: tenants.{tenant}")
                      if k.category == "company"]
        return names

    # ---- matching -------------------------------------------------------------------------------------------
    def find(self, text: Any) -> list[dict]:
        """Leftmost-longest, non-overlapping hits: [{term, canonical, category, kind, severity, start, end}].

        `term` is the text as written at [start, end). A term that begins or ends with a Latin letter or digit
        must not touch another one ("996" does not hit inside "19960"). Empty or non-text input gives [].
        """
        original = coerce_text(text)
        if self._pattern is None or not original:
            return []
        hits = []
        for match in self._pattern.finditer(fold(original)):
            start, end = match.span()
            if _glued(original, start, end):
                continue
            keyword = self._by_folded[match.group()]
            hits.append({"term": original[start:end], "canonical": keyword.canonical, "category": keyword.category,
                         "kind": keyword.kind, "severity": keyword.severity, "start": start, "end": end})
        return hits

    def __len__(self) -> int:
        return len(self.keywords)

    def kinds(self) -> set[str]:
        """The kinds of sensitive topic this tenant's terms carry (the policy must define each one)."""
        return {keyword.kind for keyword in self.keywords if keyword.kind is not None}


def _glued(text: str, start: int, end: int) -> bool:
    def alnum(char: str) -> bool:
        return char.isascii() and char.isalnum()

    return (alnum(text[start]) and start > 0 and alnum(text[start - 1])) or (
        alnum(text[end - 1]) and end < len(text) and alnum(text[end]))


def _read(path: Path) -> Any:
    if not path.exists():
        raise KeywordLibraryError(f"关键词库文件不存在: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KeywordLibraryError(f"关键词库 {path}: YAML 语法错误 ({exc})") from None


def _tenants(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), dict) or not data["tenants"]:
        raise KeywordLibraryError(f"关键词库 {source}: 顶层应为字典, 且含非空的 tenants 字典")
    unknown = set(data) - {"common", "tenants"}
    if unknown:
        raise KeywordLibraryError(f"关键词库 {source}: 未知的顶层键 {sorted(unknown)}; 允许: common, tenants")
    return {str(k): v for k, v in data["tenants"].items()}


def _parse_section(section: Any, where: str) -> list[Keyword]:
    if not isinstance(section, dict):
        raise KeywordLibraryError(f"关键词库 {where}: 应为字典 (companies / values / sensitive)")
    unknown = set(section) - set(CATEGORIES)
    if unknown:
        raise KeywordLibraryError(f"关键词库 {where}: 未知的分类 {sorted(unknown)}; 允许: {sorted(CATEGORIES)}")
    keywords = []
    for key, category in CATEGORIES.items():
        entries = section.get(key) or []
        if category == "sensitive" and isinstance(entries, dict):  # {kind: [entries]}: the usual form
            for kind, listed in entries.items():
                _check_kind(kind, f"{where}.{key}.{kind}")
                if not isinstance(listed, list):
                    raise KeywordLibraryError(f"关键词库 {where}.{key}.{kind}: 应为列表")
                for index, entry in enumerate(listed):
                    keywords += _parse_entry(entry, category, f"{where}.{key}.{kind}[{index}]", kind)
            continue
        if not isinstance(entries, list):
            raise KeywordLibraryError(f"关键词库 {where}.{key}: 应为列表" + (
                "或按类别分组的字典 (leak: [...], labour: [...])" if category == "sensitive" else ""))
        for index, entry in enumerate(entries):
            keywords += _parse_entry(entry, category, f"{where}.{key}[{index}]")
    return keywords


def _check_kind(kind: Any, where: str) -> str:
    if not isinstance(kind, str) or not KIND_PATTERN.match(kind):
        raise KeywordLibraryError(f"关键词库 {where}: 敏感话题类别应为小写英文标识 (如 leak、labour), 实为 {kind!r}")
    return kind


def _parse_entry(entry: Any, category: str, where: str, kind: str | None = None) -> list[Keyword]:
    """An entry is a bare term or {term|name, aliases, severity[, kind]}; every alias reports the main term.
    A sensitive topic needs a kind: from its group ({kind: [entries]}) or its own `kind:` in a plain list."""
    if isinstance(entry, (str, int)) and not isinstance(entry, bool):
        entry = {"term": str(entry)}
    if not isinstance(entry, dict):
        raise KeywordLibraryError(f"关键词库 {where}: 应为字符串或字典, 实为 {entry!r}")
    allowed = {"term", "name", "aliases", "severity"}
    if category == "sensitive" and kind is None:
        allowed.add("kind")
    unknown = set(entry) - allowed
    if unknown:
        raise KeywordLibraryError(f"关键词库 {where}: 未知的键 {sorted(unknown)}; 允许: {', '.join(sorted(allowed))}")
    canonical = str(entry.get("term") or entry.get("name") or "").strip()
    if not canonical:
        raise KeywordLibraryError(f"关键词库 {where}: 缺少 term (或 name)")
    severity = entry.get("severity", DEFAULT_SEVERITY.get(category))
    if severity is None:
        raise KeywordLibraryError(f"关键词库 {where} ({canonical}): 敏感话题必须给出 severity (1-3)")
    if isinstance(severity, bool) or severity not in (1, 2, 3):
        raise KeywordLibraryError(f"关键词库 {where} ({canonical}): severity 应为 1、2 或 3, 实为 {severity!r}")
    aliases = entry.get("aliases") or []
    if not isinstance(aliases, list):
        raise KeywordLibraryError(f"关键词库 {where} ({canonical}): aliases 应为列表")
    if category == "sensitive":
        if kind is None and "kind" not in entry:
            raise KeywordLibraryError(f"关键词库 {where} ({canonical}): 敏感话题必须给出类别 kind "
                                      "(leak、labour、safety、harassment、exposure、regulatory 或租户自定义), "
                                      "或写在按类别分组的字典下")
        kind = kind or _check_kind(entry["kind"], f"{where}.kind")
    terms = [canonical] + [str(a).strip() for a in aliases if str(a).strip()]
    return [Keyword(term, canonical, category, int(severity), kind) for term in terms]
