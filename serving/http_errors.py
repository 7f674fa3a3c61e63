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


# Pydantic's error kinds in Chinese; {name} takes the error's context (the bound, the allowed values). Kinds not
# listed keep their message when it is Chinese already (our validators, features.strict) and are otherwise named
# "取值无效" with the kind: no English reaches a caller.
_ERROR_ZH = {
    "missing": "缺少必填字段", "string_too_short": "不能为空（至少 {min_length} 个字符）",
    "string_too_long": "文本超过长度上限（至多 {max_length} 个字符）", "string_pattern_mismatch": "不能为空白",
    "too_long": "条目数超过上限（至多 {max_length} 条）", "too_short": "条目数不足（至少 {min_length} 条）",
    "literal_error": "取值不在允许范围（应为 {expected}）", "enum": "取值不在允许范围（应为 {expected}）",
    "extra_forbidden": "不支持的字段", "json_invalid": "请求体不是合法的 JSON", "json_type": "应为 JSON 文本",
    "greater_than_equal": "数值过小（应不小于 {ge}）", "greater_than": "数值过小（应大于 {gt}）",
    "less_than_equal": "数值过大（应不大于 {le}）", "less_than": "数值过大（应小于 {lt}）",
    "finite_number": "应为有限数值（不能是 NaN 或无穷大）",
    "datetime_from_date_parsing": "时间格式错误", "datetime_parsing": "时间格式错误", "date_parsing": "日期格式错误",
    "date_from_datetime_inexact": "日期格式错误", "datetime_type": "时间格式错误", "date_type": "日期格式错误",
    "int_parsing": "应为整数", "int_type": "应为整数", "int_from_float": "应为整数", "float_parsing": "应为数字",
    "float_type": "应为数字", "bool_parsing": "应为布尔值 true/false", "bool_type": "应为布尔值 true/false",
    "string_type": "应为文本", "string_unicode": "文本编码无效", "list_type": "应为列表", "dict_type": "应为对象",
    "model_type": "应为对象", "model_attributes_type": "应为对象", "int_from_bool": "应为整数",
    "missing_argument": "缺少必填字段", "unexpected_keyword_argument": "不支持的字段",
}
# Replies that carry no field: what the status means, in Chinese.
_STATUS_ZH = {
    400: "请求无效", 401: "缺少或无效的 API key", 403: "无权访问", 404: "请求的路径或对象不存在",
    405: "不支持该请求方法", 413: "请求体过大", 415: "请求体应为 UTF-8 编码的 JSON（Content-Type: application/json）",
    422: "请求参数错误", 429: "请求过多，请稍后重试", 500: "服务器内部错误，请查看服务日志",
    503: "服务繁忙，请稍后重试", 504: "处理超时，请稍后重试",
}
_CJK = re.compile(r"[\u3400-\u9fff]")


def plain_body(message: str, field: str = "body") -> dict:
    """The one shape for a refusal about one field (or the request as a whole: field "body")."""
    return {"error": message, "detail": [{"field": field, "message": message}]}


def _zh(kind: str, message: str, context: dict | None) -> str:
    template = _ERROR_ZH.get(kind)
    if template is None:
        return message if _CJK.search(message) else f"取值无效（{kind or '未知错误'}）"
    try:
        return template.format(**{k: v for k, v in (context or {}).items()})
    except (KeyError, IndexError, ValueError):
        return template.split("（")[0]


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
        elif kind == "json_invalid":  # FastAPI puts the character position where the field goes
            where = next((p for p in loc if p.isdigit()), None)
            loc, message = [], _ERROR_ZH[kind] + (f"（第 {int(where) + 1} 个字符附近）" if where else "")
        else:
            message = _zh(kind, message, error.get("ctx"))
        if kind == "too_long" and len(loc) <= 2:
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        detail.append({"field": ".".join(loc) or "body", "message": message, "type": kind})
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:5])
    more = f"（另有 {len(detail) - 5} 处）" if len(detail) > 5 else ""
    prefix = "批量过大" if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE else "请求参数错误"
    return int(status), {"error": f"{prefix}: {shown}{more}", "detail": detail}


def _reshape(status: int, raw: bytes) -> tuple[int, dict]:
    """Any error reply, whoever made it, in the one shape: ours pass through; BentoML's and FastAPI's are
    translated; anything else gets the Chinese meaning of its status."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return status, plain_body(_status_zh(status))
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return status, plain_body(_status_zh(status))
    error, detail = body.get("error"), body.get("detail")
    if isinstance(error, str) and error.startswith(f'{{"{_CARRIED}"'):
        return status, json.loads(error)[_CARRIED]  # an ApiError: our body, as error_body made it
    if isinstance(error, str) and isinstance(detail, list) and detail and \
            all(isinstance(d, dict) and {"field", "message"} <= set(d) for d in detail):
        return status, body  # already ours
    if status in (400, 422) and isinstance(detail, list):
        return _validation_body(detail)
    if status == 400 and detail == "There was an error parsing the body":  # FastAPI: not UTF-8, nested too deep
        return 422, plain_body("请求体不是合法的 JSON（应为 UTF-8 编码，嵌套层数有限）")
    return status, plain_body(_status_zh(status))


def _status_zh(status: int) -> str:
    return _STATUS_ZH.get(status, f"请求失败（HTTP {status}）")


def shape_overload_replies() -> None:
    """BentoML's load shedding (429 past max_concurrency) and timeout (504) answer from middlewares outside any a
    service adds, in English and without `detail`: give their module our shape (once per process)."""
    from bentoml._internal.server.http import traffic

    if getattr(traffic, "_lossguard_shaped", False):
        return

    def shaped(content, status_code: int = 200, **kwargs):
        return JSONResponse(plain_body(_status_zh(status_code)), status_code=status_code, **kwargs)

    traffic.JSONResponse, traffic._lossguard_shaped = shaped, True
