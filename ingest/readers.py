"""Reading one source file for import: CSV (UTF-8 with or without BOM, GBK, GB18030), Parquet or Excel (.xlsx).

CSV cells are read verbatim as text first and typed afterwards, column by column (`infer_types`): pandas' own
guessing would turn the employee number `00123` into 123 and the date `20240305` into an integer before anyone
could check it. A CSV line with too many fields is skipped by the parser and reported as a bad row with its line
number instead of stopping the file; Excel and Parquet keep the types their cells carry.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import InputError
from features.tables import detect_encoding, read_table
from ingest.report import Problem
from ingest.validate import to_float

# Written by exports for "no value"; treated as empty so that one such cell does not make a number column text.
# Not "none": it is a label value (loss_type none, function none).
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "-", "--", "#n/a"})
_SKIPPED = re.compile(r"Skipping line (\d+): (.*)")
_LEADING_ZERO = r"^\s*[+-]?0\d"


@dataclass
class Source:
    """One file as read: its cells, the data-row number of each (0-based, as every report in Lossguard counts;
    CSV line = row + 2 without multi-line cells), its encoding and the rows the parser could not split."""

    path: Path
    frame: pd.DataFrame
    rows: np.ndarray
    encoding: str = ""
    problems: list[Problem] = field(default_factory=list)


def infer_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose every non-empty cell is a number become numbers (int when all whole and none empty),
    unless a value has a leading zero (`007`, `0123`: a code or an id, not a quantity). NA tokens become empty.
    A column whose first cells already are not numbers is left as text without parsing the rest."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            out[name] = column
            continue
        text = column.astype("str")
        empty = (text.isna() | text.str.strip().str.lower().isin(NA_TOKENS)).to_numpy(dtype=bool)
        text = text.where(~empty)
        filled = text[~empty]
        head = to_float(filled.iloc[:200].str.strip())
        if len(filled) and head.notna().all() and not filled.str.match(_LEADING_ZERO).any():
            numbers = to_float(filled.str.strip())
            if numbers.notna().all():
                typed = pd.Series(np.nan, index=column.index)
                typed[filled.index] = numbers
                whole = bool((numbers % 1 == 0).all()) and not empty.any() and numbers.abs().max() < 2**53
                out[name] = typed.astype("int64") if whole else typed
                continue
        out[name] = text
    return pd.DataFrame(out, index=frame.index)


def _csv(path: Path, encoding: str) -> tuple[pd.DataFrame, list[int]]:
    """The CSV as text cells, and the 1-based file lines the parser skipped (too many fields)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding, on_bad_lines="warn")
    skipped = []
    for warning in caught:
        for line in str(warning.message).splitlines():
            match = _SKIPPED.match(line.strip())
            if match:
                skipped.append((int(match.group(1)), match.group(2)))
    return frame, skipped


def read_source(path: Path | str, *, entity: str = "", sheet: str | int | None = None) -> Source:
    """Read one file; InputError (naming the file) only when nothing in it can be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".csv":
        frame = read_table(path, sheet=sheet)
        frame.columns = [str(c).strip() for c in frame.columns]
        if suffix == ".xlsx":  # Excel's empty cells are NaN; blank text cells stay text for the contract to judge
            frame = frame.dropna(how="all").reset_index(drop=True)
        return Source(path, frame, np.arange(len(frame)), "excel" if suffix == ".xlsx" else "parquet")
    encoding = detect_encoding(path)
    try:
        frame, skipped = _csv(path, encoding)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: 无法解析为 CSV ({exc})", field=str(path)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    bad = sorted(line - 2 for line, _ in skipped)  # data row = file line - header line - 1
    rows = np.delete(np.arange(len(frame) + len(bad)), bad) if bad else np.arange(len(frame))
    problems = [Problem(entity, str(path), line - 2, "*", "", f"第 {line} 行无法拆分为列 ({reason})")
                for line, reason in skipped]
    return Source(path, infer_types(frame), rows, encoding, problems)
