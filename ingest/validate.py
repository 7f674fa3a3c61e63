"""The contracts' row rules applied a column at a time, for files of millions of rows.

`features.contracts.validate` states what a good row is (types, bounds, choices, required fields, date order,
unique ids, known departments, nothing dated in the future) and checks it row by row, a Python call per cell:
right for an API request, ~1 minute for a million posts. This module reads the same `Col` specs and applies
the same rules to whole columns with pandas, with the same messages, so an import of 1M posts takes seconds.
tests/unit/test_ingest_validate.py holds the two to the same verdicts on generated tables. The one deliberate
difference is dates: text dates go through `ingest.dates` (day-month-year orders are refused, not guessed).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contracts import EMPLOYEE, Col, Contract
from ingest.dates import parse_dates

NUMBER_WORDS = {"int": "整数", "float": "数字"}
TRUE = {"1", "true", "yes", "y", "是"}
FALSE = {"0", "false", "no", "n", "否"}


@dataclass(frozen=True)
class RowProblem:
    position: int  # row position in the checked frame
    field: str
    value: object
    reason: str


def _is_text(values: pd.Series) -> bool:
    """A string-typed column (what CSV import produces): vectorized string methods apply, no per-cell checks."""
    return pd.api.types.is_string_dtype(values) and values.dtype != object


def _empty(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy().copy()
    if _is_text(values):
        missing |= values.str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    elif values.dtype == object:
        text = values.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
        missing |= text.fillna(False).to_numpy(dtype=bool)
    return missing


def _text(values: pd.Series) -> pd.Series:
    """Cells as the text the contracts would see; whole floats lose their '.0' (a CSV's 1001 read as a float
    because the column has gaps is still employee 1001)."""
    if _is_text(values):
        return values.astype("str")
    if pd.api.types.is_float_dtype(values):
        whole = values % 1 == 0
        out = values.map(lambda v: str(int(v)) if v == int(v) else str(v)).where(whole, values.map(str))
    elif pd.api.types.is_integer_dtype(values) or pd.api.types.is_bool_dtype(values):
        out = values.map(str)
    else:
        out = values.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return out.astype("str")


def to_float(text: pd.Series) -> pd.Series:
    """Numbers from text cells, NaN where a cell is not one: Arrow's cast when every cell parses (fast), else
    pandas' cell-by-cell coercion."""
    try:
        arrow = pa.array(text.to_numpy(dtype=object), type=pa.string())
        return pd.Series(pc.cast(arrow, pa.float64()).to_numpy(zero_copy_only=False), index=text.index)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").astype(float)


def _none(index: pd.Index) -> pd.Series:
    return pd.Series(None, index=index, dtype=object)


class _Column:
    """One column's typed values (aligned with the frame; missing where empty or wrong) and its problems."""

    def __init__(self, values: pd.Series, col: Col):
        self.col = col
        self.reason = _none(values.index)
        self.empty = _empty(values)
        filled = values[~self.empty]
        typed, reason = getattr(self, f"_{'text' if col.kind == 'str' else col.kind}")(filled)
        self.typed = typed.reindex(values.index)
        self.reason[filled.index] = reason.to_numpy()

    @staticmethod
    def _fail(values: pd.Series, mask, message) -> pd.Series:
        reason = _none(values.index)
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            reason[mask] = [message(v) for v in values[mask]]
        return reason

    def _text(self, values: pd.Series):
        nested = (np.zeros(len(values), dtype=bool) if _is_text(values)
                  else values.map(lambda v: isinstance(v, (dict, list))).to_numpy(dtype=bool))
        text = _text(values)
        text = text.str.strip() if self.col.kind == "str" else text
        reason = self._fail(values, nested, lambda v: "应为文本")
        if self.col.max_len:
            long = (text.str.len() > self.col.max_len).to_numpy(dtype=bool) & ~nested
            limit = self.col.max_len
            reason = reason.fillna(self._fail(text, long, lambda v: f"长度 {len(v)} 超过上限 {limit}"))
        return text, reason

    def _category(self, values: pd.Series):
        text = _text(values).str.strip()
        return text, self._fail(text, ~text.isin(self.col.choices),
                                lambda v: f"取值 {v!r} 不在允许范围 {list(self.col.choices)}")

    def _bool(self, values: pd.Series):
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean"), _none(values.index)
        words = _text(values).str.strip().str.lower()
        typed = pd.Series(pd.NA, index=values.index, dtype="boolean")
        typed[words.isin(TRUE)] = True
        typed[words.isin(FALSE)] = False
        return typed, self._fail(values, typed.isna(), lambda v: f"应为布尔值, 实为 {v!r}")

    def _number(self, values: pd.Series):
        col, word = self.col, NUMBER_WORDS[self.col.kind]
        booleans = np.zeros(len(values), dtype=bool)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(float)
        elif _is_text(values):
            numbers = to_float(values.str.strip())
        else:
            booleans = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
            cleaned = values.map(lambda v: v.strip() if isinstance(v, str) else v).where(~booleans, None)
            numbers = pd.to_numeric(cleaned, errors="coerce").astype(float)
        reason = self._fail(values, booleans, lambda v: f"应为数字, 实为 {v!r}")
        reason = reason.fillna(self._fail(values, numbers.isna().to_numpy() & ~booleans,
                                          lambda v: f"应为{word}, 实为 {v!r}"))
        infinite = np.isinf(numbers.to_numpy())
        reason = reason.fillna(self._fail(values, infinite, lambda v: "应为有限数字"))
        finite = numbers.notna().to_numpy() & ~infinite
        if col.kind == "int":
            fraction = finite & (np.where(finite, numbers.to_numpy(), 0) % 1 != 0)
            reason = reason.fillna(self._fail(values, fraction, lambda v: f"应为整数, 实为 {v!r}"))
        def shown(n: float):  # as the contracts print it: an int column's value as an int
            return int(n) if col.kind == "int" and n == int(n) else n

        for bound, text in ((col.min, "小于下限"), (col.max, "大于上限")):
            if bound is not None:
                worse = (numbers < bound) if text == "小于下限" else (numbers > bound)
                message = (lambda n, b=bound, t=text: f"值 {shown(n)} {t} {b:g}")
                reason = reason.fillna(self._fail(numbers, finite & worse.to_numpy(), message))
        typed = numbers.where(reason.isna().to_numpy())
        return (typed.astype("Int64") if col.kind == "int" else typed), reason

    _int = _float = _number

    def _date(self, values: pd.Series):
        stamps, reason = parse_dates(values)
        return (stamps.dt.normalize() if self.col.kind == "date" else stamps), reason

    _datetime = _date


def check_rows(frame: pd.DataFrame, contract: Contract, extra: tuple[Col, ...] = (), *,
               known_departments: Iterable[str] | None = None, now: pd.Timestamp | None = None,
               origins: Callable[[int], str] | None = None) -> tuple[pd.DataFrame, list[RowProblem]]:
    """(good rows typed, with the frame's other columns carried along; every problem). Required columns absent
    from the frame make every row fail on that field; the caller reports that once per file instead.
    `origins(position)` names a row where a message points at another row (a duplicate's first occurrence);
    default "第 N 行" by position."""
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)
    specs = contract.columns + extra
    index = frame.index
    columns: dict[str, _Column] = {}
    problems: list[RowProblem] = []
    positions = pd.Series(np.arange(len(frame)), index=index)
    bad = np.zeros(len(frame), dtype=bool)

    def report(mask, field: str, reasons, values) -> None:
        nonlocal bad
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        bad |= mask
        for position, reason, value in zip(positions[mask], np.asarray(reasons, dtype=object)[mask],
                                           np.asarray(values, dtype=object)[mask], strict=True):
            problems.append(RowProblem(int(position), field, value, reason))

    for col in specs:
        values = frame[col.name] if col.name in frame else pd.Series(None, index=index, dtype=object)
        column = columns[col.name] = _Column(values, col)
        if col.required:
            report(column.empty, col.name, np.full(len(frame), "必填字段为空", dtype=object), values)
        reason = column.reason.copy()
        typed = column.typed
        if col.not_future:
            late = (typed > now).fillna(False).to_numpy(dtype=bool) & reason.isna().to_numpy()
            reason[late] = [f"日期 {t.date()} 晚于当前日期" for t in typed[late]]
        if col.name == contract.department_column and known_departments is not None:
            unknown = ~typed.isin(set(known_departments)) & typed.notna()
            unknown &= reason.isna()
            reason[unknown] = [f"未知部门 {u!r}" for u in typed[unknown]]
        failed = reason.notna().to_numpy()
        report(failed, col.name, reason, values)
        column.typed = typed.where(~failed)

    for later, earlier in contract.order:
        a, b = columns[later].typed, columns[earlier].typed
        wrong = (a < b).fillna(False).to_numpy(dtype=bool)  # NaT compares False: an empty date breaks no order
        reasons = np.full(len(frame), None, dtype=object)
        reasons[wrong] = [f"{later} ({x.date()}) 早于 {earlier} ({y.date()})" for x, y in zip(a[wrong], b[wrong],
                                                                                             strict=True)]
        report(wrong, later, reasons, frame[later])

    key_names = ([contract.id_column] if contract.id_column else []) or (
        ["employee_id", "snapshot_date"] if contract is EMPLOYEE else [])
    if key_names:  # the first occurrence wins, as in features.contracts.validate
        keys = pd.DataFrame({k: columns[k].typed for k in key_names})
        keyed = keys.notna().all(axis=1)
        duplicate = (keys.duplicated(keep="first") & keyed).to_numpy()
        if duplicate.any():
            origin = positions[keyed].groupby([keys.loc[keyed, k] for k in key_names], sort=False).transform("min")
            where = index[duplicate]
            reasons = np.full(len(frame), None, dtype=object)
            named = origins or (lambda o: f"第 {o} 行")
            reasons[duplicate] = [f"重复的 ID {v!r} (首次出现于{named(o)})"
                                  for v, o in zip(keys.loc[where, key_names[0]], origin[where], strict=True)]
            shown = frame[key_names[0]] if key_names[0] in frame else keys[key_names[0]]
            report(duplicate, key_names[0], reasons, shown)

    typed = pd.DataFrame({name: c.typed for name, c in columns.items()}, index=index)
    extras = frame[[c for c in frame.columns if c not in typed.columns]]
    clean = pd.concat([typed, extras], axis=1)[~bad]
    problems.sort(key=lambda p: (p.position, [c.name for c in specs].index(p.field) if p.field in
                                 {c.name for c in specs} else len(specs)))
    return clean, problems
