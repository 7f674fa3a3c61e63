"""Strict input types for the API: a value arrives as the JSON type its field names, or it is refused by name.

Lax parsing read `true` as 1, `"yes"` as a boolean, a number (or a string of digits) as a Unix time (in
milliseconds above 2e10: 253402300799 became 1978) and `0` as 1970-01-01. An HR export that sends such values has
a bug we should report, not guess around. So: integers and booleans are JSON integers and booleans, numbers are
finite, dates and times are ISO-8601 text (`2026-01-01`, `2026-01-01T09:00:00+08:00`; a space for the `T` is
accepted, as RFC 3339 allows), and text passes features.sanitize. Python callers may pass date/datetime objects.

Each refusal carries its own error type and a Chinese message, which serving/http_errors.py shows as given.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AllowInfNan, BeforeValidator, Strict, StringConstraints
from pydantic_core import PydanticCustomError

from features.sanitize import control_problem, text_problem, visible

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}"  # date, then optionally time, fraction and zone
                           r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")
DATE_EXAMPLE, DATETIME_EXAMPLE = "2026-01-01", "2026-01-01T09:00:00+08:00"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.fullmatch(value.strip()):
        raise PydanticCustomError("iso_datetime", "应为 ISO 8601 时间文本（如 {example}），实为 {value}",
                                  {"example": DATETIME_EXAMPLE, "value": _shown(value)})
    try:
        return datetime.fromisoformat(value.strip().replace(",", "."))
    except ValueError:
        raise PydanticCustomError("iso_datetime", "时间不存在或格式错误：{value}", {"value": _shown(value)}) from None


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise PydanticCustomError("iso_date", "应为 ISO 8601 日期文本（如 {example}），实为 {value}",
                                  {"example": DATE_EXAMPLE, "value": _shown(value)})
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("iso_date", "日期不存在：{value}", {"value": _shown(value)}) from None


def _free_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("text_content", problem)
    return value


def _name(value: str) -> str:
    problem = control_problem(value, free_text=False)
    if problem is not None:
        raise PydanticCustomError("control_character", problem)
    return value


def _note(value: str) -> str:
    """Free text that may be empty (a resolution note): controls refused, invisible characters removed."""
    problem = control_problem(value, free_text=True)
    if problem is not None:
        raise PydanticCustomError("control_character", problem)
    return visible(value)


def free_text(max_length: int, min_length: int = 1) -> Any:
    """A post, complaint or other text people wrote: length first, then features.sanitize's checks."""
    return Annotated[str, Strict(), StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_free_text)]


def name(max_length: int, min_length: int = 1) -> Any:
    """An id or a short name (employee_id, region, assignee): no control or invisible character at all."""
    return Annotated[str, Strict(), StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_name)]


def note(max_length: int) -> Any:
    """Free text that may be empty (a resolution note)."""
    return Annotated[str, Strict(), StringConstraints(max_length=max_length), AfterValidator(_note)]


SHORT = 256
JsonInt = Annotated[int, Strict()]
JsonFloat = Annotated[float, Strict(), AllowInfNan(False)]
JsonBool = Annotated[bool, Strict()]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]


def api_type(kind: str, *, max_length: int | None = None, min_length: int = 0) -> Any:
    """A data contract's column kind (features.contracts.Col.kind) as a strict API type; lengths apply to text
    before its content is checked (so a too-long text is "too long", not something vaguer). A short string (up to
    SHORT characters: an id, a name, a region) may hold no control or invisible character at all; a longer one is
    free text that may be empty."""
    if kind == "text":
        return free_text(max_length or 1_000_000, max(min_length, 1))
    if kind == "str" and max_length is not None and max_length > SHORT:  # e.g. a repost's reaction text
        return note(max_length)
    if kind == "str":
        return name(max_length or SHORT, min_length)
    return {"int": JsonInt, "float": JsonFloat, "date": IsoDate, "datetime": IsoDatetime, "bool": JsonBool}[kind]
