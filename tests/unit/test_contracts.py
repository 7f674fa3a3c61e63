"""Every contract rejects bad input with the row and field named, keeps the good rows, and agrees with its API model.

Each case below corrupts one field of the middle row of a three-row batch; the outer rows must come back intact.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from features.contracts import CONTRACTS, ContractError, pydantic_model, validate

NOW = pd.Timestamp("2026-01-01")
DEPARTMENTS = {"U010", "U011"}


def employee(i: int) -> dict:
    return {"employee_id": f"E{i}", "department_id": "U010", "manager_id": "E0", "hire_date": "2020-03-01",
            "job_level": 3, "role": "软件工程师", "location": "深圳", "pay_vs_band": 0.95, "overtime_hours": 30.0,
            "last_promotion_date": "2023-06-01", "performance_rating": 3.5, "engagement_score": 70.0,
            "snapshot_date": "2025-06-30", "leave_date": None, "gender": "F", "marital_status": "married"}


def org_unit(i: int) -> dict:
    return {"unit_id": f"U{i}", "name": "品牌组", "parent_id": "U010", "head_employee_id": "E1",
            "function": "marketing"}


def post(i: int) -> dict:
    return {"post_id": f"P{i}", "text": "加班太多了", "channel": "weibo", "created_at": "2025-06-30 12:00:00",
            "author_followers": 120, "region": "广东", "department_id": "U011", "employee_id": None, "internal": False}


def complaint(i: int) -> dict:
    return {"complaint_id": f"C{i}", "text": "客服电话打不通", "channel": "complaint_hotline",
            "created_at": "2025-06-30 09:30:00", "department_id": "U011", "customer_id": "K1", "severity": 4}


def repost(i: int) -> dict:
    return {"post_id": "P1", "timestamp": f"2025-06-30 12:0{i}:00", "user_followers": 35, "region": "四川"}


GOOD = {"Employee": employee, "OrgUnit": org_unit, "Post": post, "Complaint": complaint, "Repost": repost}
ID_COLUMN = {"Employee": "employee_id", "OrgUnit": "unit_id", "Post": "post_id", "Complaint": "complaint_id"}

# (contract, case, field, bad value)
CASES = [
    ("Employee", "wrong type", "job_level", "senior"),
    ("Employee", "out of range", "engagement_score", 130),
    ("Employee", "not an integer", "job_level", 2.5),
    ("Employee", "empty required", "employee_id", "  "),
    ("Employee", "oversized", "employee_id", "E" * 65),
    ("Employee", "unparseable date", "hire_date", "03/31/twenty"),
    ("Employee", "future date", "snapshot_date", "2030-01-31"),
    ("Employee", "unknown category", "gender", "female"),
    ("Employee", "unknown department", "department_id", "U999"),
    ("Employee", "leave before hire", "leave_date", "2019-01-01"),
    ("Employee", "promotion before hire", "last_promotion_date", "2019-12-31"),
    ("Employee", "snapshot before hire", "snapshot_date", "2020-01-31"),
    ("OrgUnit", "wrong type", "unit_id", {"id": 1}),
    ("OrgUnit", "empty required", "name", ""),
    ("OrgUnit", "oversized", "name", "组" * 129),
    ("OrgUnit", "unknown category", "function", "finance"),
    ("Post", "wrong type", "author_followers", "many"),
    ("Post", "negative count", "author_followers", -5),
    ("Post", "empty text", "text", "   "),
    ("Post", "oversized text", "text", "差" * 5001),
    ("Post", "unparseable date", "created_at", "last tuesday"),
    ("Post", "future date", "created_at", "2031-05-01 08:00:00"),
    ("Post", "unknown channel", "channel", "facebook"),
    ("Post", "not a boolean", "internal", "maybe"),
    ("Post", "unknown department", "department_id", "U999"),
    ("Complaint", "wrong type", "severity", "high"),
    ("Complaint", "out of range", "severity", 6),
    ("Complaint", "empty text", "text", ""),
    ("Complaint", "oversized text", "text", "慢" * 5001),
    ("Complaint", "unparseable date", "created_at", "2025-13-45"),
    ("Complaint", "future date", "created_at", "2099-01-01"),
    ("Complaint", "unknown department", "department_id", "U999"),
    ("Complaint", "empty required department", "department_id", None),
    ("Repost", "wrong type", "user_followers", "lots"),
    ("Repost", "empty required", "post_id", None),
    ("Repost", "oversized", "post_id", "P" * 65),
    ("Repost", "unparseable date", "timestamp", "noon"),
    ("Repost", "future date", "timestamp", "2030-01-01 00:00:00"),
]
# batch-only rules (dates against now, departments, cross-field order) are not the API model's job
MODEL_SKIPS = {"future date", "unknown department", "leave before hire", "promotion before hire",
               "snapshot before hire"}


def batch(contract: str, field: str | None = None, value=None) -> pd.DataFrame:
    rows = [GOOD[contract](i) for i in range(3)]
    if field is not None:
        rows[1][field] = value
    return pd.DataFrame(rows)


def check(frame: pd.DataFrame, contract: str, strict: bool = False):
    return validate(frame, contract, known_departments=DEPARTMENTS, now=NOW, strict=strict)


@pytest.mark.parametrize("contract", sorted(GOOD))
def test_good_rows_pass_whole(contract):
    result = check(batch(contract), contract)
    assert result.errors == [] and len(result.frame) == 3


@pytest.mark.parametrize("contract,case,field,value", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_row_is_named_and_dropped_and_nothing_else_is_lost(contract, case, field, value):
    frame = batch(contract, field, value)
    result = check(frame, contract)
    assert [(e.row, e.field) for e in result.errors] == [(1, field)]
    assert "第 1 行" in str(result.errors[0]) and field in str(result.errors[0])
    assert result.bad_rows == [1]
    kept = result.frame
    assert len(kept) == 2 and result.source_rows == [0, 2]
    if contract in ID_COLUMN:
        assert kept[ID_COLUMN[contract]].tolist() == [frame[ID_COLUMN[contract]][0], frame[ID_COLUMN[contract]][2]]
    else:
        assert kept["timestamp"].tolist() == pd.to_datetime(frame["timestamp"][[0, 2]]).tolist()

    with pytest.raises(ContractError) as raised:
        check(frame, contract, strict=True)
    assert (1, field) in [(e.row, e.field) for e in raised.value.errors]
    assert field in str(raised.value)


@pytest.mark.parametrize("contract", sorted(GOOD))
def test_missing_required_column_is_a_table_error(contract):
    required = next(c.name for c in CONTRACTS[contract].columns if c.required)
    with pytest.raises(ContractError) as raised:
        check(batch(contract).drop(columns=[required]), contract)
    assert [(e.row, e.field) for e in raised.value.errors] == [(None, required)]
    assert required in str(raised.value) and "缺少" in str(raised.value)


@pytest.mark.parametrize("contract", sorted(ID_COLUMN))
def test_duplicate_ids_keep_the_first_and_name_the_second(contract):
    frame = batch(contract)
    frame.loc[2, ID_COLUMN[contract]] = frame.loc[0, ID_COLUMN[contract]]
    result = check(frame, contract)
    assert [(e.row, e.field) for e in result.errors] == [(2, ID_COLUMN[contract])]
    assert "重复" in result.errors[0].message and len(result.frame) == 2


def test_employee_rows_are_unique_per_snapshot_not_per_person():
    frame = batch("Employee")
    frame.loc[1, "employee_id"] = frame.loc[0, "employee_id"]
    frame.loc[1, "snapshot_date"] = "2025-07-31"
    assert check(frame, "Employee").errors == []


def test_extra_columns_travel_with_the_clean_rows():
    frame = batch("Employee").assign(Age=[30, 40, 50])
    frame.loc[1, "job_level"] = 0
    assert check(frame, "Employee").frame["Age"].tolist() == [30, 50]


@pytest.mark.parametrize("contract,case,field,value",
                         [c for c in CASES if c[1] not in MODEL_SKIPS], ids=[f"{c[0]}-{c[1]}" for c in CASES
                                                                              if c[1] not in MODEL_SKIPS])
def test_api_model_rejects_the_same_bad_values_naming_the_field(contract, case, field, value):
    model = pydantic_model(contract)
    row = {k: v for k, v in GOOD[contract](1).items() if v is not None}
    model(**row)  # the good row is accepted
    row[field] = value
    with pytest.raises(ValidationError) as raised:
        model(**row)
    assert field in {str(part) for error in raised.value.errors() for part in error["loc"]}


def test_api_models_are_strict_and_refuse_unknown_fields():
    """#16: lax parsing read true as 1, a number as a time and 0 as 1970-01-01; unknown fields were ignored."""
    model = pydantic_model("Post")
    good = {k: v for k, v in post(1).items() if v is not None}
    model.model_validate_json(json.dumps(good))
    for field, value in (("author_followers", True), ("internal", "yes"), ("created_at", 253402300799),
                         ("created_at", "253402300799"), ("post_id", "\x00"), ("surprise", 1)):
        with pytest.raises(ValidationError) as raised:
            model.model_validate_json(json.dumps({**good, field: value}))
        assert field in {str(part) for error in raised.value.errors() for part in error["loc"]}, field
    assert pydantic_model("Employee").model_validate_json(json.dumps({**employee(1), "hire_date": "2020-03-01"}))
    with pytest.raises(ValidationError):
        pydantic_model("Employee").model_validate_json(json.dumps({**employee(1), "hire_date": 0}))


@pytest.mark.parametrize("text", ["2026-06-01T09:30:00", "2026-06-01T09:30:00.5+08:00", "2026-06-01 09:30:00,250Z",
                                  "2026-06-01T09:30:00.504336242"])
def test_iso_times_with_any_fraction_up_to_nanoseconds_are_read(text):
    """pandas' and Java's isoformat write nanoseconds (9 digits): ISO 8601 allows any fraction; microseconds kept."""
    model = pydantic_model("Post")
    good = {k: v for k, v in post(1).items() if v is not None}
    parsed = model.model_validate_json(json.dumps({**good, "created_at": text})).created_at
    assert parsed.year == 2026 and parsed.minute == 30


def test_model_declared_extra_fields_are_validated_by_name():
    from features.strict import JsonFloat

    model = pydantic_model("Employee", extra_fields={"Age": JsonFloat})
    row = {k: v for k, v in employee(1).items() if v is not None}
    assert model.model_validate_json(json.dumps({**row, "Age": 41})).Age == 41
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps({**row, "Age": "forty"}))
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps({**row, "Salary": 1}))
