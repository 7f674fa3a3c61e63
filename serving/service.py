"""Lossguard's BentoML service: typed prediction APIs with adaptive batching, warnings, team risk, review page.

One service class loads every champion model once (through Engine) and refuses to start, saying "run make
train", when one is missing. Authentication runs in an ASGI middleware in front of every route, so no handler
can forget it; a second middleware gives BentoML's own error replies the same shape and status codes as ours
(422 naming the field, 413 for oversized batches).

Settings by environment: LOSSGUARD_BATCHING=0 turns adaptive batching off (the bench compares both),
LOSSGUARD_WORKERS (default: CPUs, at most 4) / LOSSGUARD_THREADS size the server, LOSSGUARD_MAX_CONCURRENCY
sheds load (429 past that many requests in flight), LOSSGUARD_MAX_BODY_BYTES caps request bodies,
LOSSGUARD_ACCESS_LOG=1 and LOSSGUARD_TRACING=1 switch on per-request logs and spans (off by default: together
they cost about a third of the CPU of a small request; /metrics still counts everything).
"""
import asyncio
import json
import logging
import os
import re
import threading
from datetime import date, datetime, timedelta, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import anyio
import bentoml
from bentoml.exceptions import BentoMLException
from bentoml.validators import ContentType
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from features.contracts import (
    COMPLAINT_CHANNELS, EMPLOYEE, INTERNAL_CHANNELS, LOSS_TYPES, POST_CHANNELS, ContractError, pydantic_model,
)
from features.settings import settings
from serving.auth import AuthError, KeyStore, Principal
from serving.engine import Engine, InputError, NotFound
from serving.rules import GRADES, RiskInputError
from serving.store import STATUSES, IllegalTransition, StoreError

log = logging.getLogger("lossguard")

BATCHING = os.environ.get("LOSSGUARD_BATCHING", "1") != "0"
WORKERS = int(os.environ.get("LOSSGUARD_WORKERS", str(min(4, os.cpu_count() or 1))))
THREADS = int(os.environ.get("LOSSGUARD_THREADS", "4"))
MAX_CONCURRENCY = int(os.environ.get("LOSSGUARD_MAX_CONCURRENCY", "256"))
MAX_BODY_BYTES = int(os.environ.get("LOSSGUARD_MAX_BODY_BYTES", str(8 * 1024 * 1024)))
ACCESS_LOG = os.environ.get("LOSSGUARD_ACCESS_LOG", "0") != "0"
TRACING = os.environ.get("LOSSGUARD_TRACING", "0") != "0"
ESCALATION_INTERVAL_S = float(os.environ.get("LOSSGUARD_ESCALATION_INTERVAL_S", "60"))
ASSESS_MAX_BATCH = 64
MAX_REPOSTS = 50_000
CLOCK_SKEW = timedelta(minutes=5)  # a client clock slightly ahead is not "a post from the future"
EARLIEST, LATEST = date(1900, 1, 1), date(2200, 12, 31)  # pandas timestamps end in 2262
STATIC = Path(__file__).parent / "static"

# ---- request / response models ----------------------------------------------------------------------------
Text = Annotated[str, StringConstraints(min_length=1, max_length=settings.max_text_chars, pattern=r"\S")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ALL_EVENT_CHANNELS = tuple(dict.fromkeys(POST_CHANNELS + COMPLAINT_CHANNELS))
EventChannel = Literal[ALL_EVENT_CHANNELS]  # type: ignore[valid-type]
PostBase = pydantic_model("Post", optional_fields=("post_id", "internal"))
RepostBase = pydantic_model("Repost", optional_fields=("post_id",))
EmployeeBase = pydantic_model("Employee")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC (the store's convention); aware ones are converted."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _not_future(moment: Optional[datetime], field: str) -> None:
    if moment is not None and _utc(moment) > _now() + CLOCK_SKEW:
        raise ValueError(f"{field}: 时间 {moment.isoformat()} 晚于当前时间（无时区的时间按 UTC 解释）")


def _supported(moment: datetime) -> datetime:
    """Before 1900 is a typo, and beyond pandas' range (year 1677) a crash: refuse it as input."""
    if moment.year < EARLIEST.year:
        raise ValueError(f"时间 {moment.isoformat()} 早于 {EARLIEST.year} 年")
    return moment


Moment = Annotated[datetime, AfterValidator(_supported)]


class RepostIn(RepostBase):  # type: ignore[valid-type, misc]
    """One repost seen so far; post_id is implied by the post it belongs to."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    timestamp: Moment


def _reposts_in_past(reposts: Optional[list[RepostIn]], created: Optional[datetime], field: str) -> None:
    for index, repost in enumerate(reposts or []):
        _not_future(repost.timestamp, f"{field}[{index}].timestamp")
        if created is not None and _utc(repost.timestamp) < _utc(created):
            raise ValueError(f"{field}[{index}].timestamp: 转发时间早于原帖发布时间 created_at")


Reposts = Annotated[list[RepostIn], Field(max_length=MAX_REPOSTS)]


class PostIn(PostBase):  # type: ignore[valid-type, misc]
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    created_at: Moment

    @model_validator(mode="after")
    def _created_in_past(self):
        _not_future(self.created_at, "created_at")
        return self


class EventIn(BaseModel):
    """A post (outside or inside channel) or a complaint work order, with the reposts seen so far (optional)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["post", "complaint"] = "post"
    text: Text
    channel: EventChannel
    created_at: Optional[Moment] = Field(None, description="发布时间；无时区按 UTC；缺省为现在")
    post_id: Optional[Id] = None
    complaint_id: Optional[Id] = None
    author_followers: Optional[int] = Field(None, ge=0, le=10_000_000_000,
                                            description="作者粉丝数；缺省为未知（不按 0 计）")
    internal: Optional[bool] = Field(None, description="内部渠道；缺省按渠道判断")
    region: Optional[Annotated[str, StringConstraints(max_length=64)]] = None
    department_id: Optional[Id] = Field(None, description="涉及的部门；决定经理的可见范围与责任人")
    employee_id: Optional[Id] = None
    severity: Optional[int] = Field(None, ge=1, le=5)
    reposts: Optional[Reposts] = None

    @model_validator(mode="after")
    def _consistent(self):
        allowed = POST_CHANNELS if self.kind == "post" else COMPLAINT_CHANNELS
        if self.channel not in allowed:
            raise ValueError(f"channel: {self.kind} 的渠道应为 {list(allowed)} 之一, 实为 {self.channel!r}")
        _not_future(self.created_at, "created_at")
        _reposts_in_past(self.reposts, self.created_at, "reposts")
        return self


class EmployeeIn(EmployeeBase):  # type: ignore[valid-type, misc]
    """An HR record as of snapshot_date; the 90-day signals may be sent precomputed (else treated as unknown)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    manager_changed_90d: Optional[bool] = None
    neg_internal_posts_90d: Optional[float] = Field(None, ge=0, le=10_000)
    internal_posts_90d: Optional[int] = Field(None, ge=0, le=10_000)
    team_complaints_90d: Optional[int] = Field(None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _contract(self):
        """The contract's cross-field rules, checked per request (batches mix requests; one bad row must not
        fail someone else's call)."""
        today = _now().date()
        for col in EMPLOYEE.columns:
            value = getattr(self, col.name, None)
            if isinstance(value, date) and not EARLIEST <= value <= LATEST:
                raise ValueError(f"{col.name}: 日期 {value} 不在 {EARLIEST.year}–{LATEST.year} 年之间")
            if col.not_future and isinstance(value, date) and value > today:
                raise ValueError(f"{col.name}: 日期 {value} 晚于当前日期")
        for later, earlier in EMPLOYEE.order:
            a, b = getattr(self, later), getattr(self, earlier)
            if a is not None and b is not None and a < b:
                raise ValueError(f"{later}: {later} ({a}) 早于 {earlier} ({b})")
        return self


def _unique_snapshots(employees: list[EmployeeIn]) -> list[EmployeeIn]:
    seen: dict[tuple[str, date], int] = {}
    for index, e in enumerate(employees):
        key = (e.employee_id, e.snapshot_date)
        if key in seen:
            raise ValueError(f"[{index}].employee_id: 员工 {e.employee_id} 在 {e.snapshot_date} 的记录重复 "
                             f"(首次出现于 [{seen[key]}])")
        seen[key] = index
    return employees


Texts = Annotated[list[Text], Field(min_length=1, max_length=settings.max_batch)]
Employees = Annotated[list[EmployeeIn], Field(min_length=1, max_length=settings.max_batch),
                      AfterValidator(_unique_snapshots)]


class KeywordHit(BaseModel):
    term: str
    canonical: str
    category: str
    severity: int
    start: int
    end: int


class Scores(BaseModel):
    neg: float
    neu: float
    pos: float


class SentimentOut(BaseModel):
    label: Literal["neg", "neu", "pos"]
    scores: Scores
    loss_type: str
    function: str
    keyword_hits: list[KeywordHit]


# Declared, so BentoML does not rebuild the list's JSON schema on every reply to find the media type (~10% of
# a /sentiment call's CPU).
JSON = ContentType("application/json")


class AttritionOut(BaseModel):
    employee_id: str
    propensity: float
    band: str
    band_zh: str
    drivers: list[str]


class SpreadOut(BaseModel):
    p10: float
    p50: float
    p90: float
    observed: int
    window_minutes: float
    time_to_threshold: Optional[float] = Field(None, description="预计达到阈值的时间（发布后分钟数）；不会达到为 null")
    threshold: int
    reach: Optional[float] = Field(None, description="覆盖人数；转发者粉丝数未知时为 null")
    regions: Optional[float] = Field(None, description="覆盖地区数；转发没有地区时为 null")
    model_version: str


class Predictions(BaseModel):
    sentiment: SentimentOut
    spread: Optional[SpreadOut]


class WarningOut(BaseModel):
    """A warning as people read it; `audit` (流程留痕) is included when one warning is read or changed."""

    model_config = ConfigDict(extra="allow")

    id: int
    grade: str
    loss_type: str
    owners: dict[str, Any]
    deadline: str
    reasons: list[str]
    actions: list[str]
    status: str


class AssessOut(BaseModel):
    predictions: Predictions
    warning: Optional[WarningOut]
    model_versions: dict[str, str]


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    assignee: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S")]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["true_alarm", "false_alarm"]
    actual_spread: Optional[int] = Field(None, ge=0, le=10_000_000_000)
    notes: Annotated[str, StringConstraints(max_length=5000)] = ""
    corrected_labels: Optional[dict[Literal["sentiment", "loss_type", "function"], Id]] = None


# ---- errors -----------------------------------------------------------------------------------------------
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


# ---- middlewares ------------------------------------------------------------------------------------------
# Which roles may call which path prefixes; anything not listed is public (health, metrics, docs, the page shell).
ROUTE_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/sentiment", ("hr_system", "admin")),
    ("/attrition", ("hr_system", "admin")),
    ("/spread", ("hr_system", "admin")),
    ("/assess", ("hr_system", "admin")),
    ("/warnings", ("hr_system", "manager", "admin")),
    ("/teams", ("hr_system", "manager", "admin")),
    ("/me", ("hr_system", "manager", "admin")),
    ("/info", ("hr_system", "manager", "admin")),
)
BENTO_APIS = ("/sentiment", "/attrition", "/spread", "/assess")
_model_header: list[tuple[bytes, bytes]] = []  # set once the models are loaded: every API reply names them


async def _reply(send, status: int, body: dict) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class AuthMiddleware:
    """Rejects oversized bodies, missing or unknown keys and wrong roles before any handler runs."""

    def __init__(self, app):
        self.app = app
        self._keys: Optional[KeyStore] = None

    def keys(self) -> KeyStore:
        if self._keys is None:
            self._keys = KeyStore(settings.warnings_db)
        return self._keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return await _reply(send, 413, {"error": f"请求体过大（上限 {MAX_BODY_BYTES} 字节）"})
        roles = next((r for prefix, r in ROUTE_ROLES if path == prefix or path.startswith(prefix + "/")), None)
        if roles is None:
            return await self.app(scope, receive, send)
        try:
            principal = self.keys().principal(headers.get(b"x-api-key", b"").decode("utf-8", "replace"))
        except AuthError as exc:
            return await _reply(send, exc.status, {"error": exc.message})
        if principal.role not in roles:
            return await _reply(send, 403, {"error": f"角色 {principal.role} 无权访问 {path}"})
        scope.setdefault("state", {})["principal"] = principal
        return await self.app(scope, receive, send)


class ErrorShapeMiddleware:
    """BentoML answers bad input on its APIs with 400 and pydantic's English, raised errors as a list, and a
    malformed multipart body with a 500. The APIs take JSON only (else 415), and error replies are rewritten to
    our shape: 422 (413 for oversized batches), {error, detail:[{field, message}]}. Only error replies are
    buffered; successful ones stream through untouched, with the model versions added."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in BENTO_APIS:
            return await self.app(scope, receive, send)
        media = dict(scope.get("headers") or []).get(b"content-type", b"application/json").split(b";")[0]
        if scope["method"] == "POST" and media.strip().lower() != b"application/json":
            return await _reply(send, 415, {"error": "请求体应为 JSON（Content-Type: application/json）"})
        failed: dict = {}  # the start message of an error reply, held back until its body is complete
        chunks: list[bytes] = []

        async def shaped_send(message):
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    return await send({**message, "headers": list(message.get("headers", [])) + _model_header})
                failed.update(message)
                return None
            if not failed:
                return await send(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await _reply(send, *_reshape(failed["status"], b"".join(chunks)))
            return None

        return await self.app(scope, receive, shaped_send)


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


# ---- the FastAPI part: warnings, teams, review page -------------------------------------------------------
web = FastAPI(title="Lossguard 预警与复核", docs_url=None, redoc_url=None, openapi_url=None)
web.mount("/review/static", StaticFiles(directory=STATIC), name="review-static")


@web.exception_handler(RequestValidationError)
async def _fastapi_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    status, body = _validation_body(list(exc.errors()))
    return JSONResponse(body, status_code=status)


def _principal(request: Request) -> Principal:
    return request.state.principal


WarningId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
UnitId = Annotated[str, PathParam(min_length=1, max_length=64)]


def _refusal(exc: Exception) -> JSONResponse:
    """422 for input only the Engine or a contract could refuse, naming the field."""
    if isinstance(exc, ContractError):
        return _error(422, "; ".join(str(e) for e in exc.errors[:5]), exc.errors[0].field if exc.errors else None)
    return _error(422, str(exc), getattr(exc, "field", None))


class Batcher:
    """Adaptive batching for /assess, whose body is one event (BentoML batches only list-shaped inputs).

    While one batch is being assessed, arriving events queue and go together in the next one, so the batch size
    follows the load and an idle server assesses an event at once (no timer, no added latency); the text models
    run once per batch. (Answering each event as soon as it was filed, instead of with its batch, measured no
    better: it only adds thread switches.) With max_batch=1 every event runs on its own, up to `threads` at a
    time: the "batching off" mode of the bench.
    """

    def __init__(self, assess_many, max_batch: int, threads: int):
        self.assess_many = assess_many
        self.max_batch = max_batch
        self.threads = threads
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._draining = 0

    async def submit(self, event: dict):
        """The event's result, or the exception that refused it."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if self._draining < (1 if self.max_batch > 1 else self.threads):
            self._draining += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    results = await anyio.to_thread.run_sync(self.assess_many, [event for event, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining -= 1


try:
    from bentoml.metrics import Counter

    ASSESSED = Counter(name="lossguard_events_assessed", documentation="Events assessed (by kind)",
                       labelnames=["kind"])
    WARNINGS = Counter(name="lossguard_warnings_filed", documentation="Events that fired a warning (by grade)",
                       labelnames=["grade"])
except Exception:  # pragma: no cover - metrics are optional (e.g. importing outside bentoml serve)
    ASSESSED = WARNINGS = None


@bentoml.service(
    name="lossguard", workers=WORKERS, threads=THREADS,
    # Past MAX_CONCURRENCY requests in flight, answer 429 at once rather than queue them into timeouts.
    traffic={"timeout": 60, "max_concurrency": MAX_CONCURRENCY},
    logging={"access": {"enabled": ACCESS_LOG}},
    # Without an exporter a span is pure cost (a fifth of an /assess call's CPU); LOSSGUARD_TRACING=1 to trace.
    tracing={} if TRACING else {"excluded_urls": [".*"]},
)
@bentoml.asgi_app(web, path="/")
class Lossguard:
    """隐性损失预警: prediction APIs for HR systems, warnings and team risk for managers, the review page."""

    def __init__(self) -> None:
        self.engine = Engine.from_settings()
        self._assessor = Batcher(self.engine.assess_many, ASSESS_MAX_BATCH if BATCHING else 1, THREADS)
        versions = ",".join(f"{k}={v}" for k, v in self.engine.versions().items())
        _model_header[:] = [(b"x-lossguard-models", versions.encode())]
        self._stop = threading.Event()
        threading.Thread(target=self._escalation_loop, name="escalation", daemon=True).start()
        log.info("Lossguard ready: %s (batching %s)", versions, "on" if BATCHING else "off")

    @bentoml.on_deployment
    def _preflight() -> None:
        """Runs once before the workers start: without it a missing model makes them fail and respawn forever."""
        Engine.preflight()

    def _escalation_loop(self) -> None:
        """Deadlines escalate even when no request arrives."""
        while not self._stop.wait(ESCALATION_INTERVAL_S):
            try:
                self.engine.escalate_overdue()
            except Exception:  # keep the timer alive; the next tick retries
                log.exception("escalation tick failed")

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        if self.engine.store.webhooks is not None:
            self.engine.store.webhooks.close()

    # ---- prediction APIs ------------------------------------------------------------------------------------
    @bentoml.api(batchable=BATCHING, max_batch_size=2 * settings.max_batch, max_latency_ms=5000)
    def sentiment(self, texts: Texts) -> Annotated[list[SentimentOut], JSON]:
        """Sentiment (neg/neu/pos), loss type, responsible function and keyword hits for each text."""
        return self.engine.score_texts(list(texts))

    @bentoml.api(batchable=BATCHING, max_batch_size=2 * settings.max_batch, max_latency_ms=5000)
    def attrition(self, employees: Employees) -> Annotated[list[AttritionOut], JSON]:
        """Attrition propensity within the horizon, band and top drivers for each employee record."""
        try:
            return self.engine.score_employees([e.model_dump() for e in employees])
        except ContractError as exc:  # the per-record checks above make this a server-side inconsistency
            raise UnprocessableInput(str(exc)) from None

    @bentoml.api
    def spread(self, post: PostIn, reposts: Reposts = []) -> SpreadOut:  # noqa: B006 - BentoML reads the default
        """Final reposts (P10/P50/P90), minutes to the threshold, reach and provinces from the reposts so far."""
        try:
            _reposts_in_past(reposts, post.created_at, "reposts")
        except ValueError as exc:
            return _error(422, str(exc), _dotted(str(exc).partition(": ")[0]))
        data = post.model_dump()
        data["post_id"] = data.get("post_id") or "request"
        if data.get("internal") is None:
            data["internal"] = data["channel"] in INTERNAL_CHANNELS
        scores = self.engine.score_texts([data["text"]])[0]
        try:
            return SpreadOut(**self.engine.forecast(data, [r.model_dump() for r in reposts],
                                                    scores["scores"]["neg"], scores["loss_type"]))
        except ContractError as exc:
            return _refusal(exc)

    @bentoml.api
    async def assess(self, event: EventIn) -> AssessOut:
        """One post or complaint end to end: predictions, then a graded warning with owners and deadline (or null)."""
        result = await self._assessor.submit(event.model_dump())
        if isinstance(result, (InputError, ContractError, RiskInputError, StoreError)):
            return _refusal(result)
        if isinstance(result, Exception):
            raise result
        if ASSESSED is not None:
            ASSESSED.labels(kind=event.kind).inc()
            if result["warning"] is not None:
                WARNINGS.labels(grade=result["warning"]["grade"]).inc()
        return AssessOut.model_validate(result)

    # ---- warnings, teams, identity (FastAPI routes on the same service) --------------------------------------
    @web.get("/info")
    def info(self):
        """Model versions served (MLflow champions), and whether adaptive batching is on."""
        return {"service": "lossguard", "batching": BATCHING,
                "tracking_uri": re.sub(r"//[^/@]*@", "//***@", settings.tracking_uri),  # no credentials
                "models": {n: {"version": m.version, "uri": m.uri} for n, m in self.engine.models.items()}}

    @web.get("/me")
    def me(self, request: Request):
        p = _principal(request)
        unit = self.engine.chart.units.get(p.unit_id) if p.unit_id else None
        return {"name": p.name, "role": p.role, "unit_id": p.unit_id, "unit_name": unit.name if unit else None}

    @web.get("/warnings")
    def warnings(self, request: Request,
                 status: Annotated[Optional[list[Literal[STATUSES]]], Query()] = None,  # type: ignore[valid-type]
                 grade: Annotated[Optional[list[Literal[GRADES]]], Query()] = None,  # type: ignore[valid-type]
                 loss_type: Optional[Literal[LOSS_TYPES]] = None,  # type: ignore[valid-type]
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0):
        """Warnings the caller may see (a manager: their org subtree), newest first."""
        items = self.engine.list_warnings(_principal(request), status=status, grade=grade, loss_type=loss_type,
                                          limit=limit, offset=offset)
        return {"warnings": items, "count": len(items)}

    @web.get("/warnings/{warning_id}")
    def warning(self, warning_id: WarningId, request: Request):
        """One warning with its audit trail (流程留痕); 404 also when it lies outside the caller's scope."""
        try:
            return self.engine.get_warning(warning_id, _principal(request))
        except NotFound as exc:
            return _error(404, str(exc))

    @web.post("/warnings/{warning_id}/ack")
    def ack(self, warning_id: WarningId, request: Request):
        return self._transition(warning_id, "ack", request)

    @web.post("/warnings/{warning_id}/assign")
    def assign(self, warning_id: WarningId, body: AssignIn, request: Request):
        return self._transition(warning_id, "assign", request, assignee=body.assignee)

    @web.post("/warnings/{warning_id}/resolve")
    def resolve(self, warning_id: WarningId, body: ResolveIn, request: Request):
        return self._transition(warning_id, "resolve", request, **body.model_dump())

    def _transition(self, warning_id: int, action: str, request: Request, **payload):
        try:
            return self.engine.transition(warning_id, action, _principal(request), **payload)
        except NotFound as exc:
            return _error(404, str(exc))
        except IllegalTransition as exc:
            return _error(409, str(exc))
        except InputError as exc:
            return _error(422, str(exc), exc.field)
        except StoreError as exc:
            return _error(422, str(exc))

    @web.get("/teams/{unit_id}/risk")
    def team_risk(self, unit_id: UnitId, request: Request):
        """Attrition risk of a unit and everything below it; pay and performance masked by role."""
        try:
            return self.engine.team_risk(unit_id, _principal(request))
        except NotFound as exc:
            return _error(404, str(exc))

    # ---- the review page (static; it talks to the JSON API above with the user's key) -----------------------
    @web.get("/review", include_in_schema=False)
    def review_redirect(self):
        return RedirectResponse("/review/")

    @web.get("/review/", include_in_schema=False)
    def review_page(self):
        return HTMLResponse((STATIC / "review.html").read_text(encoding="utf-8"))

    @web.get("/docs", include_in_schema=False)
    def docs(self):
        """BentoML serves the Swagger UI at / and the OpenAPI document at /docs.json."""
        return RedirectResponse("/")


Lossguard.add_asgi_middleware(ErrorShapeMiddleware)
Lossguard.add_asgi_middleware(AuthMiddleware)
