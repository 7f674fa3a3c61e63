"""The importer's column-wise checks give the contracts' verdicts: same rows dropped, same fields named, same words.

Tables are generated from each contract's own column specs, with a third of the rows corrupted in one or two
random fields (empty, wrong type, out of range, unknown choice, too long, future date, broken order, unknown
department, duplicate id), and judged by both `features.contracts.validate` (row by row) and
`ingest.validate.check_rows` (column by column), as typed cells and as the text a CSV import reads. Dates are
the one deliberate difference in wording (the importer says why a date was refused), not in verdict.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contracts import CONTRACTS, EMPLOYEE, Col, Contract, validate
from ingest.validate import check_rows

NOW = pd.Timestamp("2026-01-01")
DEPARTMENTS = ["U1", "U2", "U3"]
ROWS = 150


def _good(col: Col, i: int, rng: np.random.Generator):
    if col.name in ("department_id",):
        return str(rng.choice(DEPARTMENTS))
    if col.kind == "str":
        return f"{col.name[:3]}{i}"
    if col.kind == "text":
        return str(rng.choice(["加班太多了", "客服电话打不通", "年会很开心", "新产品发布"])) + str(i)
    if col.kind == "category":
        return str(rng.choice(col.choices))
    if col.kind == "bool":
        return [True, False, "是", "否", "1", "0", "yes"][int(rng.integers(0, 7))]
    if col.kind in ("int", "float"):
        low, high = col.min if col.min is not None else 0, min(col.max if col.max is not None else 1000, 1000)
        if col.kind == "int":
            return int(rng.integers(int(np.ceil(low)), int(high) + 1))
        return round(float(rng.uniform(low, high)), 3)
    if col.name == "hire_date":
        return f"2019-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    if col.kind == "date":
        return f"2023-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    day, hour, minute = rng.integers(1, 29), rng.integers(0, 24), rng.integers(0, 60)
    return f"2025-{rng.integers(1, 13):02d}-{day:02d} {hour:02d}:{minute:02d}:00"


def _bad(col: Col, rng: np.random.Generator, frame: pd.DataFrame, row: int):
    options = [None, "  "]
    if col.kind in ("str", "text") and col.max_len:
        options.append("长" * (col.max_len + 1))
    if col.kind == "category":
        options.append("bogus")
    if col.kind == "bool":
        options.append("maybe")
    if col.kind in ("int", "float"):
        options += ["many", float("inf")] + ([col.min - 1] if col.min is not None else []) + \
            ([col.max + 1] if col.max is not None else []) + ([2.5] if col.kind == "int" else [])
    if col.kind in ("date", "datetime"):
        options += ["last tuesday", "2025-02-30"] + (["2099-01-01"] if col.not_future else [])
        if col.name in ("snapshot_date", "leave_date", "last_promotion_date"):
            options.append("2010-01-01")  # before the hire date
    if col.name == "department_id":
        options.append("U999")
    if row > 0 and col.name in ("post_id", "complaint_id", "unit_id", "employee_id", "text"):
        options.append(frame.at[int(rng.integers(0, row)), col.name])  # a duplicate id
    return options[int(rng.integers(0, len(options)))]


def generated(contract: Contract, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c.name: [_good(c, i, rng) for i in range(ROWS)] for c in contract.columns}, dtype=object)
    if contract is EMPLOYEE:
        frame["snapshot_date"] = "2025-06-30"
    for row in rng.choice(ROWS, ROWS // 3, replace=False):
        for col in rng.choice(contract.columns, int(rng.integers(1, 3)), replace=False):
            frame.at[int(row), col.name] = _bad(col, rng, frame, int(row))
    return frame


def _verdicts(frame: pd.DataFrame, contract: Contract):
    reference = validate(frame, contract, known_departments=DEPARTMENTS, now=NOW)
    clean, problems = check_rows(frame, contract, known_departments=DEPARTMENTS, now=NOW)
    return reference, clean, problems


@pytest.mark.parametrize("name", [n for n in CONTRACTS])
@pytest.mark.parametrize("as_text", [False, True], ids=["typed cells", "csv text"])
def test_same_rows_dropped_and_fields_named_as_the_contracts(name, as_text):
    contract = CONTRACTS[name]
    dates = {c.name for c in contract.columns if c.kind in ("date", "datetime")}
    compared = 0
    for seed in range(4):
        frame = generated(contract, seed)
        if as_text:  # what a CSV import hands over: every cell as text, empties as missing
            frame = frame.map(lambda v: None if v is None else str(v)).astype("str")
        reference, clean, problems = _verdicts(frame, contract)
        expected = {(e.row, e.field) for e in reference.errors}
        assert {(p.position, p.field) for p in problems} == expected
        assert clean.index.tolist() == reference.source_rows
        wording = {(e.row, e.field): e.message for e in reference.errors if e.field not in dates}
        ours = {(p.position, p.field): p.reason for p in problems if p.field not in dates}
        assert ours == wording
        compared += len(expected)
    assert compared > ROWS // 2  # the generator really corrupted rows (optional fields may be empty)


def test_typed_output_keeps_values_and_types():
    frame = generated(CONTRACTS["Post"], seed=11)
    reference, clean, _ = _verdicts(frame, CONTRACTS["Post"])
    assert clean["created_at"].dtype.kind == "M" and str(clean["author_followers"].dtype) == "Int64"
    assert clean["post_id"].tolist() == reference.frame["post_id"].tolist()
    assert clean["created_at"].tolist() == reference.frame["created_at"].tolist()
    assert clean["internal"].astype(bool).tolist() == reference.frame["internal"].tolist()
