"""Data contracts: the columns an HR system, a complaint desk or a social listener hands us, and their checks.

One spec per entity drives both the batch validator (training, CLI) and the pydantic models (serving API), so
the rules for a "good row" exist once. Errors always name the row and the field, never a stack trace.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from features.errors import InputError
from features.strict import api_type

LOSS_TYPES = ("reputation", "culture", "opportunity", "none")
LOSS_TYPE_ZH = {"reputation": "声誉", "culture": "文化", "opportunity": "潜在利益", "none": "无"}
SENTIMENTS = ("neg", "neu", "pos")
FUNCTIONS = (
    "marketing", "customer_service", "hr", "rd", "legal", "production", "sales", "management", "culture",
)
TEXT_FUNCTIONS = FUNCTIONS[:-1] + ("none",)  # labels of the function classifier (culture is an org function)
FUNCTION_ZH = {"marketing": "市场", "customer_service": "客服", "hr": "人力资源", "rd": "研发", "legal": "法务",
               "production": "生产", "sales": "销售", "management": "管理", "culture": "企业文化", "none": "无"}
POST_CHANNELS = (
    "weibo", "xiaohongshu", "douyin", "maimai", "zhihu", "employee_forum", "wechat_group", "news", "app_review",
)
INTERNAL_CHANNELS = ("employee_forum", "wechat_group")
COMPLAINT_CHANNELS = ("complaint_hotline", "app_review", "email", "weibo", "store", "online_chat")
CORPUS_CHANNELS = POST_CHANNELS + ("complaint_hotline",)
GENDERS = ("F", "M", "other", "unknown")
MARITAL = ("single", "married", "divorced", "unknown")


@dataclass(frozen=True)
class Col:
    """One column: its type, whether it must be present and non-empty, and its bounds."""

    name: str
    kind: Literal["str", "text", "int", "float", "date", "datetime", "bool", "category"]
    required: bool = True
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_len: int | None = None
    not_future: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Contract:
    name: str
    columns: tuple[Col, ...]
    id_column: str | None = None
    # (later, earlier): the date in `later` may not precede the one in `earlier`
    order: tuple[tuple[str, str], ...] = ()
    department_column: str | None = None
    extra_allowed: bool = True

    def col(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


EMPLOYEE = Contract(
    name="Employee",
    id_column=None,  # one row per employee per snapshot: unique on (employee_id, snapshot_date)
    department_column="department_id",
    order=(("snapshot_date", "hire_date"), ("last_promotion_date", "hire_date"), ("leave_date", "hire_date")),
    columns=(
        Col("employee_id", "str", max_len=64),
        Col("department_id", "str", max_len=64),
        Col("manager_id", "str", required=False, max_len=64),
        Col("hire_date", "date", not_future=True),
        Col("job_level", "int", min=1, max=10),
        Col("role", "str", required=False, max_len=128),
        Col("location", "str", required=False, max_len=128),
        Col("pay_vs_band", "float", min=0.2, max=3.0, doc="pay divided by the midpoint of the pay band"),
        Col("overtime_hours", "float", min=0, max=300, doc="overtime hours in the last month"),
        Col("last_promotion_date", "date", required=False, not_future=True),
        Col("performance_rating", "float", min=1, max=5),
        Col("engagement_score", "float", min=0, max=100),
        Col("snapshot_date", "date", not_future=True),
        Col("leave_date", "date", required=False),
        Col("gender", "category", required=False, choices=GENDERS, doc="fairness reports only, not a feature"),
        Col("marital_status", "category", required=False, choices=MARITAL, doc="fairness reports only"),
    ),
)

ORG_UNIT = Contract(
    name="OrgUnit",
    id_column="unit_id",
    columns=(
        Col("unit_id", "str", max_len=64),
        Col("name", "str", max_len=128),
        Col("parent_id", "str", required=False, max_len=64),
        Col("head_employee_id", "str", required=False, max_len=64),
        Col("function", "category", choices=FUNCTIONS),
    ),
)

POST = Contract(
    name="Post",
    id_column="post_id",
    department_column="department_id",
    columns=(
        Col("post_id", "str", max_len=64),
        Col("text", "text", max_len=5000),
        Col("channel", "category", choices=POST_CHANNELS),
        Col("created_at", "datetime", not_future=True, doc="tz-aware in any zone, or naive = UTC"),
        Col("author_followers", "int", required=False, min=0, max=1e10, doc="empty = unknown (not 0)"),
        Col("author_verified", "bool", required=False, doc="verified account; empty = unknown"),
        Col("region", "str", required=False, max_len=64),
        Col("department_id", "str", required=False, max_len=64),
        Col("employee_id", "str", required=False, max_len=64),
        Col("internal", "bool"),
    ),
)

COMPLAINT = Contract(
    name="Complaint",
    id_column="complaint_id",
    department_column="department_id",
    columns=(
        Col("complaint_id", "str", max_len=64),
        Col("text", "text", max_len=5000),
        Col("channel", "category", choices=COMPLAINT_CHANNELS),
        Col("created_at", "datetime", not_future=True),
        Col("department_id", "str", max_len=64, doc="the product line or department complained about"),
        Col("customer_id", "str", required=False, max_len=64),
        Col("severity", "int", min=1, max=5),
    ),
)

# Real feeds carry different subsets: a Weibo crawl has no follower counts or regions, others have no parent ids
# or texts. Only the post and the time are required; the spread features flag whatever is missing.
REPOST = Contract(
    name="Repost",
    columns=(
        Col("post_id", "str", max_len=64),
        Col("timestamp", "datetime", not_future=True, doc="tz-aware in any zone, or naive = UTC"),
        Col("user_followers", "int", required=False, min=0, max=1e10, doc="the reposter's followers; empty = unknown"),
        Col("region", "str", required=False, max_len=64),
        Col("repost_id", "str", required=False, max_len=64, doc="an event delivered twice counts once"),
        Col("parent_id", "str", required=False, max_len=64, doc="the repost this one answers; empty = the post"),
        Col("text", "str", required=False, max_len=5000, doc="the reaction's text (may be empty)"),
    ),
)

# A company's own labelled texts (what its reviewers marked): any of the three labels may be missing, but not all.
LABELLED_TEXT = Contract(
    name="LabelledText",
    id_column="text",  # one label set per text: a text labelled twice would straddle train/test splits
    columns=(
        Col("text", "text", max_len=5000),
        Col("sentiment", "category", required=False, choices=SENTIMENTS),
        Col("loss_type", "category", required=False, choices=LOSS_TYPES),
        Col("function", "category", required=False, choices=TEXT_FUNCTIONS),
    ),
)

CONTRACTS = {c.name: c for c in (EMPLOYEE, ORG_UNIT, POST, COMPLAINT, REPOST, LABELLED_TEXT)}


@dataclass(frozen=True)
class RowError:
    row: int | None  # position in the input (0-based); None for a whole-table problem such as a missing column
    field: str
    message: str

    def __str__(self) -> str:
        where = "表级" if self.row is None else f"第 {self.row} 行"
        return f"{where} 字段 {self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


class ContractError(InputError):
    """Raised in strict mode; carries every row/field error found, not just the first."""

    def __init__(self, contract: str, errors: list[RowError]):
        self.contract = contract
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:10])
        more = f" (另有 {len(errors) - 10} 个错误)" if len(errors) > 10 else ""
        super().__init__(f"{contract} 数据校验失败: {shown}{more}", field=errors[0].field if errors else None,
                         details=[e.as_dict() for e in errors])


@dataclass
class Validated:
    """Clean rows (typed) plus the errors of the rows that were dropped."""

    frame: pd.DataFrame
    errors: list[RowError] = field(default_factory=list)
    source_rows: list[int] = field(default_factory=list)  # input position of each clean row

    @property
    def bad_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors if e.row is not None})


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    if value is pd.NaT:
        return True
    if isinstance(value, str) and not value.strip():
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _coerce(value: Any, col: Col) -> tuple[Any, str | None]:
    """Return the typed value or an error message in Chinese naming what was expected."""
    kind = col.kind
    try:
        if kind in ("str", "text"):
            if isinstance(value, (dict, list)):
                return None, "应为文本"
            out = str(value).strip() if kind == "str" else str(value)
            if kind == "text" and not out.strip():
                return None, "文本为空"
            if col.max_len and len(out) > col.max_len:
                return None, f"长度 {len(out)} 超过上限 {col.max_len}"
            return out, None
        if kind == "category":
            out = str(value).strip()
            if out not in col.choices:
                return None, f"取值 {out!r} 不在允许范围 {list(col.choices)}"
            return out, None
        if kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value), None
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "y", "是"}:
                return True, None
            if text in {"0", "false", "no", "n", "否"}:
                return False, None
            return None, f"应为布尔值, 实为 {value!r}"
        if kind in ("int", "float"):
            if isinstance(value, bool):
                return None, f"应为数字, 实为 {value!r}"
            number = float(value)
            if np.isnan(number) or np.isinf(number):
                return None, "应为有限数字"
            if kind == "int":
                if number != int(number):
                    return None, f"应为整数, 实为 {value!r}"
                number = int(number)
            if col.min is not None and number < col.min:
                return None, f"值 {number} 小于下限 {col.min:g}"
            if col.max is not None and number > col.max:
                return None, f"值 {number} 大于上限 {col.max:g}"
            return number, None
        if kind in ("date", "datetime"):
            stamp = pd.Timestamp(value)
            if stamp is pd.NaT or pd.isna(stamp):
                return None, f"无法解析的日期 {value!r}"
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            return (stamp.normalize() if kind == "date" else stamp), None
    except (TypeError, ValueError, OverflowError):
        expected = {"int": "整数", "float": "数字", "date": "日期", "datetime": "时间"}.get(kind, kind)
        return None, f"应为{expected}, 实为 {value!r}"
    return None, f"未知类型 {kind}"


def validate(
    frame: pd.DataFrame,
    contract: Contract | str,
    *,
    known_departments: Iterable[str] | None = None,
    now: datetime | date | None = None,
    strict: bool = False,
) -> Validated:
    """Check every row against the contract; bad rows are reported by position and field and left out.

    strict=True raises ContractError instead of dropping, for inputs that must be whole (an org chart).
    """
    contract = CONTRACTS[contract] if isinstance(contract, str) else contract
    if not isinstance(frame, pd.DataFrame):
        raise ContractError(contract.name, [RowError(None, "*", "输入应为表格 (DataFrame)")])
    now_ts = pd.Timestamp(now) if now is not None else pd.Timestamp.now()
    errors: list[RowError] = []
    missing = [c.name for c in contract.columns if c.required and c.name not in frame.columns]
    if missing:
        errors = [RowError(None, name, "缺少必需的列") for name in missing]
        raise ContractError(contract.name, errors)

    departments = set(known_departments) if known_departments is not None else None
    typed: dict[str, list[Any]] = {c.name: [] for c in contract.columns}
    bad: set[int] = set()
    records = frame.to_dict("records")
    for position, record in enumerate(records):
        for col in contract.columns:
            value = record.get(col.name)
            if _is_empty(value):
                if col.required:
                    errors.append(RowError(position, col.name, "必填字段为空"))
                    bad.add(position)
                typed[col.name].append(None)
                continue
            out, problem = _coerce(value, col)
            if problem is None and col.not_future and out is not None and out > now_ts:
                problem = f"日期 {out.date()} 晚于当前日期"
            if problem is None and col.name == contract.department_column and departments is not None:
                if out not in departments:
                    problem = f"未知部门 {out!r}"
            if problem:
                errors.append(RowError(position, col.name, problem))
                bad.add(position)
                out = None
            typed[col.name].append(out)
        for later, earlier in contract.order:
            a, b = typed[later][-1], typed[earlier][-1]
            if a is not None and b is not None and a < b:
                errors.append(RowError(position, later, f"{later} ({a.date()}) 早于 {earlier} ({b.date()})"))
                bad.add(position)

    ids = contract.id_column or ("employee_id" if contract is EMPLOYEE else None)
    if ids:
        keys = list(zip(typed[ids], typed["snapshot_date"], strict=True)) if contract is EMPLOYEE else typed[ids]
        seen: dict[Any, int] = {}
        for position, key in enumerate(keys):
            if key is None or (isinstance(key, tuple) and None in key):
                continue
            if key in seen:
                shown = key[0] if isinstance(key, tuple) else key
                errors.append(RowError(position, ids, f"重复的 ID {shown!r} (首次出现于第 {seen[key]} 行)"))
                bad.add(position)
            else:
                seen[key] = position

    if strict and errors:
        raise ContractError(contract.name, errors)

    out = pd.DataFrame(typed, index=range(len(records)))
    extras = [c for c in frame.columns if c not in typed] if contract.extra_allowed else []
    for extra in extras:
        out[extra] = frame[extra].to_numpy()
    for col in contract.columns:
        if col.kind in ("date", "datetime"):
            out[col.name] = pd.to_datetime(out[col.name])
        elif col.kind == "float":
            out[col.name] = pd.to_numeric(out[col.name], errors="coerce").astype(float)
    keep = [i for i in range(len(records)) if i not in bad]
    return Validated(out.iloc[keep].reset_index(drop=True), errors, keep)


def pydantic_model(contract: Contract | str, *, optional_fields: Iterable[str] = (),
                   extra_fields: dict[str, Any] | None = None) -> type[BaseModel]:
    """The API's request model for a contract, generated from the same spec the batch validator uses.

    Strict (features.strict): values arrive as the JSON type their column names, dates as ISO-8601 text, and text
    without control characters. Unknown fields are refused: a field the caller thinks we read but we ignore is a
    silent bug. Columns a caller may leave out are declared optional (`optional_fields`, or required=False in the
    contract); fields beyond the contract that a model declares (e.g. the extra features of an attrition model
    trained on an export) are passed by name in `extra_fields` ({name: annotation}), each validated, never
    `extra="allow"`.
    """
    contract = CONTRACTS[contract] if isinstance(contract, str) else contract
    relaxed = set(optional_fields)
    definitions: dict[str, Any] = {}
    for col in contract.columns:
        required = col.required and col.name not in relaxed
        if col.kind == "category":
            annotation: Any = Literal[col.choices]
        else:  # blank text counts as missing, as in validate()
            annotation = api_type(col.kind, max_length=col.max_len,
                                  min_length=1 if col.kind == "text" or (col.kind == "str" and required) else 0)
        constraints: dict[str, Any] = {"description": col.doc or None}
        if col.min is not None:
            constraints["ge"] = col.min
        if col.max is not None:
            constraints["le"] = col.max
        if required:
            definitions[col.name] = (annotation, Field(..., **constraints))
        else:
            definitions[col.name] = (Optional[annotation], Field(None, **constraints))
    for name, annotation in (extra_fields or {}).items():
        if name in definitions:
            raise ValueError(f"extra_fields: {name} 已是 {contract.name} 的字段")
        definitions[name] = (Optional[annotation], Field(None))
    return create_model(
        contract.name, __config__=ConfigDict(extra="forbid", str_strip_whitespace=True), **definitions
    )
