"""`lossguard data import` and `lossguard data check`: read, map, validate; write (import) or only report (check).

Per entity, in import order (org units first, so that posts, complaints and employees can be checked against
the departments they name; posts before reposts): every file is read and mapped, the rows of all its files are
validated together (an id repeated across two files is a duplicate too), cross-row rules run, and the good rows
are written as one Parquet file. A bad row is reported and left out; a file that cannot be read or mapped is
reported and the other files still go in.

Idempotent: each run rewrites the files of the entities it imports (under a temporary name, then moved into
place), in a deterministic row order, with no timestamps in what it writes, so the same inputs give byte-identical
outputs and re-importing never duplicates rows. Entities a run does not touch keep their earlier files.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.imported import ENTITIES, MANIFEST, REPORT, attrition_design
from features.loaders import apply_mapping
from ingest.plan import Mapping, assign, expand, load_mappings, missing_reference, org_tree, unlabelled
from ingest.readers import read_source
from ingest.report import Problem, Report, shown_value
from ingest.validate import check_rows


@dataclass
class Outcome:
    report: Report
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _storable(frame: pd.DataFrame, contract_columns: set[str]) -> pd.DataFrame:
    """Extra columns whose cells mix types (an Excel column of numbers and text) become text, so Parquet can
    hold them; contract columns are already typed."""
    out = frame.copy()
    for name in out.columns:
        if name in contract_columns or out[name].dtype != object:
            continue
        kinds = {type(v) for v in out[name] if v is not None and not (isinstance(v, float) and np.isnan(v))}
        if len(kinds) > 1 or (kinds and not kinds <= {str}):
            out[name] = out[name].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                      else str(v))
    return out


def _read_entity(name: str, items: list[tuple[Path, Mapping | None]], report: Report,
                 manifest: dict) -> pd.DataFrame | None:
    """The mapped rows of every readable file of one entity, with `__file` and `__row` for the report."""
    spec = ENTITIES[name]
    result = report.entity(name)
    frames, files = [], []
    for path, mapping in items:
        result.files.append(str(path))
        try:
            source = read_source(path, entity=name, sheet=mapping.spec.get("sheet") if mapping else None)
        except InputError as error:
            report.problems.append(Problem(name, str(path), None, "*", "", str(error)))
            continue
        result.read += len(source.rows) + len(source.problems)
        report.problems.extend(source.problems)
        files.append({"path": str(path), "sha256": _sha256(path), "encoding": source.encoding,
                      "mapping": mapping.name if mapping else None,
                      "mapping_sha256": mapping.sha256 if mapping else None})
        try:
            mapped = apply_mapping(source.frame, mapping.spec) if mapping else source.frame
        except InputError as error:
            report.problems.append(Problem(name, str(path), None, "*", "", f"映射 {mapping.name}: {error}"))
            continue
        missing = [c.name for c in spec.contract.columns if c.required and c.name not in mapped.columns]
        if missing:
            report.problems.append(Problem(name, str(path), None, ",".join(missing), "",
                                           f"缺少必需的列 {missing}; 现有列: {list(map(str, mapped.columns))[:30]}"))
            continue
        frames.append(mapped.reset_index(drop=True).assign(__file=str(path), __row=source.rows))
    manifest[name] = {"files": files}
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def _validate(name: str, rows: pd.DataFrame, report: Report, known: dict[str, set], now) -> pd.DataFrame:
    spec = ENTITIES[name]
    where = rows[["__file", "__row"]]
    data = rows.drop(columns=["__file", "__row"])
    departments = known.get("departments") if spec.contract.department_column else None
    several = where["__file"].nunique() > 1

    def origins(position: int) -> str:
        name = Path(where["__file"].iat[position]).name + " " if several else ""
        return f"{name}第 {where['__row'].iat[position]} 行"

    clean, problems = check_rows(data, spec.contract, spec.extra, known_departments=departments, now=now,
                                 origins=origins)
    extra: list[tuple[int, str, object, str]] = []
    positions = np.flatnonzero(data.index.isin(clean.index))
    keep = np.ones(len(clean), dtype=bool)
    if name == "org_units":
        keep, extra, depth = org_tree(clean)
        clean = clean.assign(level=depth.astype("Int64"))
    elif name == "reposts" and "posts" in known:
        keep, extra = missing_reference(clean["post_id"], known["posts"], "帖子", "post_id")
    elif name == "labelled_texts":
        keep, extra = unlabelled(clean)
    located = [(p.position, p.field, p.value, p.reason) for p in problems]
    located += [(positions[position], *rest) for position, *rest in extra]
    for position, field_name, value, reason in located:
        report.problems.append(Problem(name, where["__file"].iat[position], int(where["__row"].iat[position]),
                                       field_name, shown_value(value), reason))
    clean = clean[keep].reset_index(drop=True)
    report.entity(name).kept = len(clean)
    return _storable(clean, {c.name for c in spec.columns})


def run(sources: list[Path | str], mappings: list[str], out: Path | str | None = None, *,
        now: pd.Timestamp | None = None) -> Outcome:
    """Validate every source; with `out`, write `<entity>.parquet`, the manifest and the report CSV there."""
    plans = load_mappings([str(m) for m in mappings])
    files = expand([Path(s) for s in sources])
    plan, unplaced = assign(files, plans)
    report = Report(problems=list(unplaced))
    outcome = Outcome(report)
    out = Path(out) if out is not None else None
    known: dict[str, set] = {}
    if out is not None:  # checks against what an earlier import left, for entities this run does not bring
        for name, key, label in (("org_units", "unit_id", "departments"), ("posts", "post_id", "posts")):
            if name not in plan and (out / ENTITIES[name].file).is_file():
                known[label] = set(pd.read_parquet(out / ENTITIES[name].file, columns=[key])[key])
    for name, items in plan.items():
        rows = _read_entity(name, items, report, outcome.manifest)
        if rows is None:
            continue
        clean = _validate(name, rows, report, known, now)
        outcome.frames[name] = clean
        if name == "org_units":
            known["departments"] = set(clean["unit_id"])
        if name == "posts":
            known["posts"] = set(clean["post_id"])
        outcome.manifest[name].update({"rows": len(clean), "dropped": report.entities[name].dropped})
        if name == "employees" and len(clean):
            outcome.manifest[name]["design"] = attrition_design(clean)
    if out is not None:
        write(outcome, out)
    return outcome


def write(outcome: Outcome, out: Path) -> None:
    """Each imported entity's Parquet, the merged manifest and this run's report, each moved into place whole."""
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in outcome.frames.items():
        target = out / ENTITIES[name].file
        partial = target.with_name(target.name + ".partial")
        frame.to_parquet(partial, index=False)
        partial.replace(target)
        outcome.report.entities[name].output = str(target)
    previous = {}
    if (out / MANIFEST).is_file():
        try:
            previous = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("entities", {})
        except (OSError, ValueError):
            previous = {}
    entities = {**previous, **{n: m for n, m in outcome.manifest.items() if n in outcome.frames}}
    manifest = json.dumps({"entities": {n: entities[n] for n in ENTITIES if n in entities}}, ensure_ascii=False,
                          indent=2, sort_keys=True)
    (out / MANIFEST).write_text(manifest + "\n", encoding="utf-8")
    outcome.report.write_csv(out / REPORT)
