"""Error replies in one shape, whoever raised them: {error, detail: [{field, message}]}, in Chinese.

Library code raises the project's error kinds (features/errors.py); `error_body` is the one place a kind becomes
an HTTP status: input 422, not found 404, conflict 409, unavailable 503. Pydantic's errors (from BentoML's APIs
and FastAPI's routes alike) become 422 naming every field (413 for an oversized batch). FastAPI routes reach
`error_body` through an exception handler; BentoML's APIs answer any BentoMLException as `[{"error": str(exc)}]`
with its status, so `ApiError` carries our body inside that text and the error-shape middleware unpacks it
(`_reshape`), giving both kinds of route the same reply.
"""
import json
import re
from http import HTTPStatus

from bentoml.exceptions import BentoMLException
from fastapi.responses import JSONResponse

from features.errors import Conflict, InputError, LossguardError, NotFound, Unavailable

STATUS: tuple[tuple[type[LossguardError], HTTPStatus], ...] = (
    (InputError, HTTPStatus.UNPROCESSABLE_ENTITY), (NotFound, HTTPStatus.NOT_FOUND), (Conflict, HTTPStatus.CONFLICT),
    (Unavailable, HTTPStatus.SERVICE_UNAVAILABLE), (LossguardError, HTTPStatus.INTERNAL_SERVER_ERROR),
)
_CARRIED = "lossguard_error"  # the key ApiError's text is wrapped in, so _reshape knows it is ours


def error_body(error: LossguardError) -> tuple[int, dict]:
    """(status, {error, detail}) for any LossguardError: every problem it knows, each naming its field."""
    status = next(code for kind, code in STATUS if isinstance(error, kind))
    detail = [{"field": _dotted(str(d.get("field") or "body")), "message": str(d.get("message", ""))}
              | ({"row": d["row"]} if d.get("row") is not None else {}) for d in error.details]
    return int(status), {"error": error.message, "detail": detail or [{"field": "body", "message": error.message}]}


def json_error(error: LossguardError) -> JSONResponse:
    status, body = error_body(error)
    return JSONResponse(body, status_code=status)


class ApiError(BentoMLException):
    """A LossguardError leaving a BentoML API: the status from `error_body`, the body carried in the text."""

    def __init__(self, error: LossguardError):
        status, body = error_body(error)
        super().__init__(json.dumps({_CARRIED: body}, ensure_ascii=False), error_code=HTTPStatus(status))


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


def _reshape(status: int, raw: bytes) -> tuple[int, dict]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return status, {"error": raw.decode("utf-8", "replace")[:500] or HTTPStatus(status).phrase}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].startswith(f'{{"{_CARRIED}"'):
        return status, json.loads(body["error"])[_CARRIED]  # an ApiError: our body, as error_body made it
    if status == 400 and isinstance(body, dict) and isinstance(body.get("detail"), list):
        return _validation_body(body["detail"])
    if status == 503:
        return status, {"error": "服务繁忙，请稍后重试"}
    if not isinstance(body, dict):
        body = {"error": str(body)}
    return status, body
