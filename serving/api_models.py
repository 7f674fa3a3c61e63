"""The service's request and response models: what a caller may send, checked before any handler runs.

Pydantic refuses bad input naming the field (the error bodies are shaped by serving.http_errors), so the Engine
only sees well-formed values. Every request model is strict (features.strict): JSON types as declared, ISO-8601
dates, no control characters, and unknown fields refused at every level alike (inside `event`, at the top of
each API's body via `strict_input`, in /spread's `post`, in reposts and in /attrition rows). Fields a caller may
leave out are declared optional, one by one; never `extra="allow"`.

The cross-field checks that pydantic cannot express as types (time order, a post not from the future, duplicate
snapshots) are validators here, per request: batched requests must not fail someone else's call.
"""
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Optional

from bentoml.validators import ContentType
from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from features.contracts import COMPLAINT_CHANNELS, EMPLOYEE, POST_CHANNELS, pydantic_model
from features.settings import settings
from features.strict import IsoDatetime, JsonBool, JsonFloat, JsonInt, free_text, name, note

MAX_REPOSTS = 50_000
CLOCK_SKEW = timedelta(minutes=5)  # a client clock slightly ahead is not "a post from the future"
EARLIEST, LATEST = date(1900, 1, 1), date(2200, 12, 31)  # pandas timestamps end in 2262

Text = free_text(settings.max_text_chars)
Id = name(64)
ALL_EVENT_CHANNELS = tuple(dict.fromkeys(POST_CHANNELS + COMPLAINT_CHANNELS))
EventChannel = Literal[ALL_EVENT_CHANNELS]  # type: ignore[valid-type]
# The 90-day signals an HR system may send precomputed with a record (else treated as unknown): declared by name.
EMPLOYEE_SIGNALS = {
    "manager_changed_90d": JsonBool,
    "neg_internal_posts_90d": Annotated[JsonFloat, Field(ge=0, le=10_000)],
    "internal_posts_90d": Annotated[JsonInt, Field(ge=0, le=10_000)],
    "team_complaints_90d": Annotated[JsonInt, Field(ge=0, le=1_000_000)],
}
PostBase = pydantic_model("Post", optional_fields=("post_id", "internal"))
RepostBase = pydantic_model("Repost", optional_fields=("post_id",))
# An export's own columns that a model trained on the export reads as features (IBM's HR export: IBM_SPEC's
# request_inputs), declared by name and type like the signals; a record sends them only for such a model, which
# refuses a record without them (Engine.score_employees). tests/service/test_own_data_service.py checks that every
# column an export spec needs is declared here.
_SCALE = Annotated[JsonInt, Field(ge=1, le=4)]  # IBM's 1-4 survey scales
_YEARS = Annotated[JsonInt, Field(ge=0, le=80)]
EXPORT_COLUMNS = {
    "Age": Annotated[JsonInt, Field(ge=14, le=100)], "MonthlyIncome": Annotated[JsonFloat, Field(ge=0, le=1e9)],
    "NumCompaniesWorked": Annotated[JsonInt, Field(ge=0, le=100)], "TotalWorkingYears": _YEARS,
    "YearsInCurrentRole": _YEARS, "YearsWithCurrManager": _YEARS,
    "TrainingTimesLastYear": Annotated[JsonInt, Field(ge=0, le=366)],
    "DistanceFromHome": Annotated[JsonFloat, Field(ge=0, le=10_000)], "EnvironmentSatisfaction": _SCALE,
    "JobSatisfaction": _SCALE, "RelationshipSatisfaction": _SCALE, "WorkLifeBalance": _SCALE, "JobInvolvement": _SCALE,
    "StockOptionLevel": Annotated[JsonInt, Field(ge=0, le=10)], "BusinessTravel": name(64), "EducationField": name(64),
}
EmployeeBase = pydantic_model("Employee", extra_fields=EMPLOYEE_SIGNALS | EXPORT_COLUMNS)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC (the store's convention); aware ones are converted."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _not_future(moment: Optional[datetime], field: str) -> None:
    if moment is not None and _utc(moment) > _now() + CLOCK_SKEW:
        raise ValueError(f"{field}: 时间 {moment.isoformat()} 晚于当前时间（无时区的时间按 UTC 解释）")


def _supported(moment: datetime) -> datetime:
    """Before 1900 is a typo, and beyond pandas' range (year 1677) a crash: refuse it as input."""
    if moment.year < EARLIEST.year:
        raise ValueError(f"时间 {moment.isoformat()} 早于 {EARLIEST.year} 年")
    return moment


Moment = Annotated[IsoDatetime, AfterValidator(_supported)]
STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RepostIn(RepostBase):  # type: ignore[valid-type, misc]
    """One repost seen so far; post_id is implied by the post it belongs to."""

    model_config = STRICT
    timestamp: Moment


def _reposts_in_past(reposts: Optional[list[RepostIn]], created: Optional[datetime], field: str) -> None:
    for index, repost in enumerate(reposts or []):
        _not_future(repost.timestamp, f"{field}[{index}].timestamp")
        if created is not None and _utc(repost.timestamp) < _utc(created):
            raise ValueError(f"{field}[{index}].timestamp: 转发时间早于原帖发布时间 created_at")


Reposts = Annotated[list[RepostIn], Field(max_length=MAX_REPOSTS)]


class PostIn(PostBase):  # type: ignore[valid-type, misc]
    model_config = STRICT
    created_at: Moment

    @model_validator(mode="after")
    def _created_in_past(self):
        _not_future(self.created_at, "created_at")
        return self


class EventIn(BaseModel):
    """A post (outside or inside channel) or a complaint work order, with the reposts seen so far (optional)."""

    model_config = STRICT

    kind: Literal["post", "complaint"] = "post"
    text: Text
    channel: EventChannel
    created_at: Optional[Moment] = Field(None, description="发布时间；无时区按 UTC；缺省为现在")
    post_id: Optional[Id] = None
    complaint_id: Optional[Id] = None
    author_followers: Optional[JsonInt] = Field(None, ge=0, le=10_000_000_000,
                                                description="作者粉丝数；缺省为未知（不按 0 计）")
    internal: Optional[JsonBool] = Field(None, description="内部渠道；缺省按渠道判断")
    region: Optional[name(64, min_length=0)] = None
    department_id: Optional[Id] = Field(None, description="涉及的部门；决定经理的可见范围与责任人")
    employee_id: Optional[Id] = None
    severity: Optional[JsonInt] = Field(None, ge=1, le=5)
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
    """An HR record as of snapshot_date; the 90-day signals (EMPLOYEE_SIGNALS) may be sent precomputed, and an
    export's own columns (EXPORT_COLUMNS) for a model trained on that export (GET /info: `request_inputs`)."""

    model_config = STRICT

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
    kind: Optional[str] = Field(None, description="敏感话题的类别（leak、labour、safety …）；公司名与价值观为 null")
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
    function_confidence: float = Field(description="职能模型对 function 的概率；低于策略阈值时按默认负责人路由")
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
    notes: list[str] = Field([], description="对预测的说明（如覆盖人数按平台最大受众封顶）")


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
    model_config = STRICT
    assignee: Id


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["true_alarm", "false_alarm"]
    actual_spread: Optional[JsonInt] = Field(None, ge=0, le=10_000_000_000)
    notes: note(5000) = ""
    corrected_labels: Optional[dict[Literal["sentiment", "loss_type", "function"], Id]] = None


def strict_input(spec: type[BaseModel]) -> type[BaseModel]:
    """A BentoML API's input model (built from the method's signature, which ignores unknown top-level fields)
    refusing unknown fields like every model inside it."""
    return type(spec.__name__, (spec,), {"model_config": ConfigDict(extra="forbid"), "__module__": spec.__module__,
                                         "__qualname__": spec.__qualname__})


# Path parameters of the warning and team routes.
WarningId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
UnitId = Annotated[str, PathParam(min_length=1, max_length=64)]
