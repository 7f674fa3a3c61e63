"""A company's own data as `lossguard data import` leaves it: one validated Parquet file per entity in one folder.

The entities, their contracts and file names live here (not in the ingest package) because both sides need them:
the importer writes these files, and training and serving read them through the functions below, never through
the importer. So a model trained with `--data DIR` sees exactly what the import validated.

Employees come in two designs, told apart by the data rather than by a flag the user could get wrong:
- **history**: monthly (or any regular) snapshots with leave dates, like the synthetic company; attrition keeps its
  point-in-time features and labels and is evaluated on the latest months (time split);
- **export**: one row per employee at one date with a left/stayed outcome, like IBM's export; the label is the
  `left` column when the mapping gives one, else "has a leave date", and attrition is evaluated by repeated
  stratified cross-validation (there is no later period to hold out).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.contracts import COMPLAINT, EMPLOYEE, LABELLED_TEXT, ORG_UNIT, POST, REPOST, Col, Contract
from features.errors import InputError, Unavailable

HISTORY, EXPORT = "history", "export"
MANIFEST = "import_manifest.json"
REPORT = "import_report.csv"


@dataclass(frozen=True)
class Entity:
    """An importable entity: its contract, the extra typed columns a mapping may fill, and the file-name stems
    that say a file holds it when no mapping claims the file (`posts_2024.csv` -> posts)."""

    name: str
    contract: Contract
    stems: tuple[str, ...]
    extra: tuple[Col, ...] = ()

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    @property
    def columns(self) -> tuple[Col, ...]:
        return self.contract.columns + self.extra

    @property
    def targets(self) -> list[str]:
        return [c.name for c in self.columns]


# Import order matters: org units first (departments other entities name), posts before their reposts.
ENTITIES: dict[str, Entity] = {e.name: e for e in (
    Entity("org_units", ORG_UNIT, ("org_units", "org", "orgchart")),
    Entity("employees", EMPLOYEE, ("employees", "snapshots"),
           extra=(Col("left", "bool", required=False, doc="single export: did the person leave (the label)"),)),
    Entity("posts", POST, ("posts",)),
    Entity("complaints", COMPLAINT, ("complaints",)),
    Entity("reposts", REPOST, ("reposts",)),
    Entity("labelled_texts", LABELLED_TEXT, ("labelled_texts", "labeled_texts", "texts")),
)}


def entity(name: str) -> Entity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise InputError(f"未知实体 {name!r}; 可选: {', '.join(ENTITIES)}", field="entity") from None


def entity_of_file(path: Path | str) -> str | None:
    """The entity a file's name says it holds (`employees.csv`, `posts-2024.parquet`), else None."""
    stem = Path(path).stem.lower()
    for spec in ENTITIES.values():
        if any(stem == s or stem.startswith((s + "_", s + "-")) for s in spec.stems):
            return spec.name
    return None


def present(folder: Path | str) -> list[str]:
    """The entities with a Parquet file in `folder`, in import order."""
    folder = Path(folder)
    return [name for name, spec in ENTITIES.items() if (folder / spec.file).is_file()]


def load_imported(folder: Path | str, *required: str, optional: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    """The named entities' tables from an import folder. A missing required one is Unavailable naming the
    command that makes it; missing optional ones are simply absent from the result."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Unavailable(f"数据目录 {folder} 不存在: 请先运行 `lossguard data import … --out {folder}`", field="data")
    missing = [n for n in required if not (folder / entity(n).file).is_file()]
    if missing:
        raise Unavailable(f"{folder} 中缺少 {[entity(n).file for n in missing]}: 请先用 `lossguard data import` 导入 "
                          f"{', '.join(missing)}", field="data")
    names = list(required) + [n for n in optional if (folder / entity(n).file).is_file()]
    return {n: pd.read_parquet(folder / entity(n).file) for n in names}


def data_digest(folder: Path | str, names: list[str] | tuple[str, ...] | None = None) -> str:
    """sha256 over the entity files a model read (name + bytes), so a model card can say exactly which data it
    saw; the same import gives the same digest (the importer writes deterministic files)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in sorted(names if names is not None else present(folder)):
        path = folder / entity(name).file
        digest.update(name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def attrition_design(employees: pd.DataFrame) -> str:
    """EXPORT when all rows share one snapshot date (one row per person: IBM-like), else HISTORY."""
    dates = pd.to_datetime(employees["snapshot_date"]).dropna().unique()
    return HISTORY if len(dates) > 1 else EXPORT


def export_labels(employees: pd.DataFrame) -> pd.Series:
    """1/0 per row of a single export: the `left` flag when given, else whether the row has a leave date."""
    if "left" in employees and employees["left"].notna().any():
        left = employees["left"]
        if left.isna().any():
            rows = list(left.index[left.isna()][:5])
            raise InputError(f"left 列有空值 (如第 {rows} 行): 单次导出的每一行都需要离职/在职标签", field="left")
        return left.astype(bool).astype(int)
    return employees["leave_date"].notna().astype(int)
