"""Error replies in one shape, whoever raised them: {error, detail: [{field, message}]}, in Chinese.

Pydantic's errors (from BentoML's APIs and FastAPI's routes alike) become 422 naming every field (413 for an
oversized batch); the Engine's and the contracts' refusals become 422 naming their field; BentoML's own error
replies are reshaped by the middleware with `_reshape`.
"""
import json
import re
from http import HTTPStatus
from typing import Any, Optional

from bentoml.exceptions import BentoMLException
from fastapi.responses import JSONResponse

from features.contracts import ContractError


class UnprocessableInput(BentoMLException):
    error_code = HTTPStatus.UNPROCESSABLE_ENTITY


_ERROR_ZH = {
    "missing": "缺少必填字段", "string_too_short": "不能为空", "string_too_long": "文本超过长度上限",
    "string_pattern_mismatch": "不能为空白", "too_long": "条目数超过上限", "too_short": "条目数不足",
    "literal_error": "取值不在允许范围", "extra_forbidden": "不支持的字段", "json_invalid": "请求体不是合法的 JSON",
    "greater_than_equal": "数值过小", "greater_than": "数值过小", "less_than_equal": "数值过大", "less_than": "数值过大",
    "datetime_from_date_parsing": "时间格式错误", "datetime_parsing": "时间格式错误", "date_parsing": "日期格式错误",
    "date_from_datetime_inexact": "日期格式错误", "datetime_type": "时间格式错误", "date_type": "日期格式错误",
    "int_parsing": "应为整数", "int_type": "应为整数", "int_from_float": "应为整数", "float_parsing": "应为数字",
    "float_type": "应为数字", "bool_parsing": "应为布尔值", "bool_type": "应为布尔值", "string_type": "应为文本",
    "list_type": "应为列表", "dict_type": "应为对象", "model_type": "应为对象", "model_attributes_type": "应为对象",
}


def _dotted(field: str) -> str:
    """"reposts[0].timestamp" → "reposts.0.timestamp", the form pydantic's own errors use."""
    return re.sub(r"\[(\d+)\]", r".\1", field).lstrip(".")


def _validation_body(errors: list[dict]) -> tuple[int, dict]:
    """Pydantic errors → (status, {error, detail}) with every field named; a too-long top-level list is 413."""
    detail, status = [], HTTPStatus.UNPROCESSABLE_ENTITY
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        kind = error.get("type", "")
        message = str(error.get("msg", ""))
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
            field, _, rest = message.partition(": ")
            if rest and " " not in field:
                loc, message = loc + [_dotted(field)], rest
        elif kind in _ERROR_ZH:
            message = f"{_ERROR_ZH[kind]}（{message}）"
        if kind == "too_long" and len(loc) <= 2:
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        detail.append({"field": ".".join(loc) or "body", "message": message, "type": kind})
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:5])
    more = f"（另有 {len(detail) - 5} 处）" if len(detail) > 5 else ""
    prefix = "批量过大" if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else "请求参数错误"
    return int(status), {"error": f"{prefix}: {shown}{more}", "detail": detail}


def _error(status: int, message: str, field: Optional[str] = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["detail"] = [{"field": field, "message": message}]
    return JSONResponse(body, status_code=status)


def _refusal(exc: Exception) -> JSONResponse:
    """422 for input only the Engine or a contract could refuse, naming the field."""
    if isinstance(exc, ContractError):
        return _error(422, "; ".join(str(e) for e in exc.errors[:5]), exc.errors[0].field if exc.errors else None)
    return _error(422, str(exc), getattr(exc, "field", None))


def _reshape(status: int, raw: bytes) -> tuple[int, dict]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return status, {"error": raw.decode("utf-8", "replace")[:500] or HTTPStatus(status).phrase}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if status == 400 and isinstance(body, dict) and isinstance(body.get("detail"), list):
        return _validation_body(body["detail"])
    if status == 503:
        return status, {"error": "服务繁忙，请稍后重试"}
    if not isinstance(body, dict):
        body = {"error": str(body)}
    return status, body
