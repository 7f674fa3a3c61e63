"""Which file holds which entity, read through which mapping; and the checks that span rows or entities.

A mapping says its entity (`entity: posts`) and may say its files (`files: ["weibo_*.csv"]`). A file is read
through the mapping whose `files` patterns match its name; else through the mapping of the entity its name
names (`posts_2024.xlsx` -> posts), or as it is when its columns already are the contract's; else, when exactly
one mapping was given and it names no files, through that one (`import hr.csv --mapping ibm`). Anything else is
reported, never guessed.

Rules that no single row can settle live here too: an org chart must be a tree (every parent known, no cycles;
the depth of each unit is computed as `level`), a repost must belong to an imported post, and a labelled text
needs at least one label.
"""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.imported import ENTITIES, MANIFEST, REPORT, entity_of_file
from features.loaders import DEFAULT_ENTITY, check_mapping, mapping_path
from features.tables import TABLE_SUFFIXES
from ingest.report import Problem

SKIPPED_NAMES = {MANIFEST, REPORT}


@dataclass(frozen=True)
class Mapping:
    name: str  # as given on the command line
    spec: dict
    entity: str
    files: tuple[str, ...]
    sha256: str


def load_mappings(names: list[str]) -> list[Mapping]:
    """Every mapping read and compiled before any data file is touched: a typo is a usage error (exit 2)."""
    out = []
    for name in names:
        path = mapping_path(name)
        spec = check_mapping(path)
        files = spec.get("files", [])
        out.append(Mapping(str(name), spec, str(spec.get("entity", DEFAULT_ENTITY)),
                           tuple([files] if isinstance(files, str) else files),
                           hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def expand(sources: list[Path]) -> list[Path]:
    """Files as given, folders as their table files (sorted, not recursive; the import's own report and
    manifest skipped). The same file named twice is read once."""
    out: dict[Path, Path] = {}
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES
                           and p.name not in SKIPPED_NAMES and not p.name.startswith((".", "~$")))
            if not found:
                raise InputError(f"{source}: 目录中没有 {', '.join(TABLE_SUFFIXES)} 文件", field=str(source))
        elif source.is_file():
            found = [source]
        else:
            raise InputError(f"{source}: 文件或目录不存在", field=str(source))
        for path in found:
            out.setdefault(path.resolve(), path)
    return list(out.values())


def assign(files: list[Path], mappings: list[Mapping]) -> tuple[dict[str, list[tuple[Path, Mapping | None]]],
                                                                list[Problem]]:
    """entity -> [(file, mapping or None for as-is)] in import order, and the files no rule could place."""
    plan: dict[str, list[tuple[Path, Mapping | None]]] = {name: [] for name in ENTITIES}
    problems = []
    by_entity = {}
    for mapping in mappings:
        if not mapping.files:
            by_entity.setdefault(mapping.entity, []).append(mapping)
    only = mappings[0] if len(mappings) == 1 and not mappings[0].files else None
    for path in files:
        claims = [m for m in mappings if any(fnmatch.fnmatch(path.name, p) for p in m.files)]
        named = entity_of_file(path)
        if not claims and named:
            unnamed = by_entity.get(named, [])
            claims = unnamed[:1] if len(unnamed) <= 1 else unnamed
            if not claims:
                plan[named].append((path, None))
                continue
        if not claims and only is not None:
            claims = [only]
        if len(claims) == 1:
            plan[claims[0].entity].append((path, claims[0]))
        elif not claims:
            problems.append(Problem("", str(path), None, "*", "", "无法判断文件属于哪个实体: 请按实体命名文件 "
                                    f"({', '.join(e + '.csv' for e in ENTITIES)}) 或在映射中写 files: 模式"))
        else:
            problems.append(Problem("", str(path), None, "*", "", "多个映射都匹配该文件: "
                                    + ", ".join(m.name for m in claims)))
    return {name: items for name, items in plan.items() if items}, problems


# ------------------------------------------------------------------------------------------ cross-row rules
def org_tree(units: pd.DataFrame) -> tuple[np.ndarray, list[tuple[int, str, object, str]], pd.Series]:
    """(rows kept, problems as (position, field, value, reason), depth per unit with the root at 0).

    A unit whose parent is unknown or was dropped is dropped too (a chart with a hole would route warnings to
    nobody); so is every unit on a cycle."""
    ids = units["unit_id"].astype(object).tolist()
    parents = units["parent_id"].astype(object).where(units["parent_id"].notna(), None).tolist()
    kept = np.ones(len(units), dtype=bool)
    problems = []
    position = {unit: i for i, unit in enumerate(ids)}
    changed = True
    while changed:
        changed = False
        alive = {ids[i] for i in np.flatnonzero(kept)}
        for i in np.flatnonzero(kept):
            parent = parents[i]
            if parent is not None and parent not in alive:
                reason = (f"上级单位 {parent!r} 不存在" if parent not in position
                          else f"上级单位 {parent!r} 未通过校验")
                problems.append((int(i), "parent_id", parent, reason))
                kept[i] = False
                changed = True
    depth = pd.Series(np.nan, index=units.index)
    for i in np.flatnonzero(kept):
        chain, node = [], i
        while node is not None and node not in chain:
            chain.append(node)
            parent = parents[node]
            node = position.get(parent) if parent is not None else None
        if node is not None:  # came back to a unit already on the chain: a cycle
            loop = " -> ".join(ids[n] for n in chain[chain.index(node):] + [node])
            if kept[i]:
                problems.append((int(i), "parent_id", parents[i], f"组织架构有环: {loop}"))
            kept[i] = False
        else:
            depth.iloc[i] = len(chain) - 1
    return kept, problems, depth


def missing_reference(values: pd.Series, known: set, what: str, field: str) -> tuple[np.ndarray, list]:
    """Rows whose `values` are not in `known` (e.g. reposts of a post that was not imported)."""
    unknown = (~values.isin(known)).to_numpy()
    return ~unknown, [(int(i), field, values.iloc[i], f"{what} {values.iloc[i]!r} 不在导入的数据中")
                      for i in np.flatnonzero(unknown)]


def unlabelled(texts: pd.DataFrame) -> tuple[np.ndarray, list]:
    labels = texts[["sentiment", "loss_type", "function"]].notna().any(axis=1).to_numpy()
    return labels, [(int(i), "sentiment", "", "至少需要 sentiment、loss_type、function 之一")
                    for i in np.flatnonzero(~labels)]
