"""Lossguard's BentoML service: typed prediction APIs with adaptive batching, warnings, team risk, review page.

One service class loads every champion model once (through Engine) and refuses to start, saying "run make
train", when one is missing. Authentication runs in an ASGI middleware in front of every route, so no handler
can forget it; a second middleware gives BentoML's own error replies the same shape and status codes as ours
(422 naming the field, 413 for oversized batches).

This module is the service class and its routes only; what they stand on lives beside it: the request/response
models (serving.api_models), the middlewares (serving.middleware), the error bodies (serving.http_errors) and the
/assess batcher (serving.batching). `bentoml serve serving.service:Lossguard` loads it as before.

Settings by environment: LOSSGUARD_BATCHING=0 turns adaptive batching off (the bench compares both),
LOSSGUARD_WORKERS (default: CPUs, at most 4) / LOSSGUARD_THREADS size the server, LOSSGUARD_MAX_CONCURRENCY
sheds load (429 past that many requests in flight), LOSSGUARD_MAX_BODY_BYTES caps request bodies,
LOSSGUARD_ACCESS_LOG=1 and LOSSGUARD_TRACING=1 switch on per-request logs and spans (off by default: together
they cost about a third of the CPU of a small request; /metrics still counts everything).
"""
import logging
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, Optional

import bentoml
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from features.contracts import INTERNAL_CHANNELS, LOSS_TYPES
from features.errors import InputError, LossguardError
from features.settings import settings
from serving import metrics
from serving.api_models import (
    JSON,
    AssessOut,
    AssignIn,
    AttritionOut,
    Employees,
    EventIn,
    PostIn,
    Reposts,
    ResolveIn,
    SentimentOut,
    SpreadOut,
    Texts,
    UnitId,
    WarningId,
    _reposts_in_past,
    strict_input,
)
from serving.auth import Principal
from serving.batching import Batcher
from serving.engine import Engine
from serving.http_errors import ApiError, _validation_body, json_error, shape_overload_replies
from serving.middleware import BENTO_APIS, AuthMiddleware, ErrorShapeMiddleware, set_model_versions
from serving.monitoring.monitor import Monitor
from serving.policy import GRADES
from serving.store import STATUSES

log = logging.getLogger("lossguard")

BATCHING = os.environ.get("LOSSGUARD_BATCHING", "1") != "0"
WORKERS = int(os.environ.get("LOSSGUARD_WORKERS", str(min(4, os.cpu_count() or 1))))
THREADS = int(os.environ.get("LOSSGUARD_THREADS", "4"))
MAX_CONCURRENCY = int(os.environ.get("LOSSGUARD_MAX_CONCURRENCY", "256"))
ACCESS_LOG = os.environ.get("LOSSGUARD_ACCESS_LOG", "0") != "0"
TRACING = os.environ.get("LOSSGUARD_TRACING", "0") != "0"
ESCALATION_INTERVAL_S = float(os.environ.get("LOSSGUARD_ESCALATION_INTERVAL_S", "60"))
ASSESS_MAX_BATCH = 64
STATIC = Path(__file__).parent / "static"
Department = Annotated[str, Query(min_length=1, max_length=64)]

# ---- the FastAPI part: warnings, teams, review page -------------------------------------------------------
web = FastAPI(title="Lossguard 预警与复核", docs_url=None, redoc_url=None, openapi_url=None)
web.mount("/review/static", StaticFiles(directory=STATIC), name="review-static")


@web.exception_handler(RequestValidationError)
async def _fastapi_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    status, body = _validation_body(list(exc.errors()))
    return JSONResponse(body, status_code=status)


@web.exception_handler(LossguardError)
async def _refused(_: Request, exc: LossguardError) -> JSONResponse:
    return json_error(exc)


def _principal(request: Request) -> Principal:
    return request.state.principal


try:
    from bentoml.metrics import Counter

    ASSESSED = Counter(name="lossguard_events_assessed", documentation="Events assessed (by kind)",
                       labelnames=["kind"])
    WARNINGS = Counter(name="lossguard_warnings_filed", documentation="Events that fired a warning (by grade)",
                       labelnames=["grade"])
except Exception:  # noqa: BLE001  # pragma: no cover - metrics are optional (outside bentoml serve)
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
        self.engine.monitor = Monitor.for_engine(self.engine)  # counts, spikes, complaint clusters, effects
        self._assessor = Batcher(self.engine.assess_many, ASSESS_MAX_BATCH if BATCHING else 1, THREADS)
        versions = ",".join(f"{k}={v}" for k, v in self.engine.versions().items())
        set_model_versions(versions)
        self._stop = threading.Event()
        threading.Thread(target=self._escalation_loop, name="escalation", daemon=True).start()
        log.info("Lossguard ready: %s (batching %s)", versions, "on" if BATCHING else "off")

    @bentoml.on_deployment
    def _preflight() -> None:
        """Runs once before the workers start: without it a missing model makes them fail and respawn forever."""
        Engine.preflight()

    def _escalation_loop(self) -> None:
        """Deadlines escalate, muting follows its causes and the audit chain is anchored even when no request
        arrives (Engine.tick); each closed bucket is scanned for spikes (the worker that advances the scan cursor
        scans it) and old counts are pruned (Monitor.tick)."""
        while not self._stop.wait(ESCALATION_INTERVAL_S):
            for name, tick in (("escalation", self.engine.tick), ("monitoring", self.engine.monitor.tick)):
                try:
                    tick()
                except Exception:  # noqa: BLE001 - keep the timer alive; the next tick retries
                    log.exception("%s tick failed", name)

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        self.engine.monitor.writer.flush()
        for dispatcher in (self.engine.store.webhooks, self.engine.anchor_sender):
            if dispatcher is not None:
                dispatcher.close()

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
        except LossguardError as exc:
            raise ApiError(exc) from None

    @bentoml.api
    def spread(self, post: PostIn, reposts: Reposts = []) -> SpreadOut:  # noqa: B006 - BentoML reads the default
        """Final reposts (P10/P50/P90), minutes to the threshold, reach and provinces from the reposts so far."""
        try:
            _reposts_in_past(reposts, post.created_at, "reposts")
        except ValueError as exc:
            raise ApiError(InputError(str(exc))) from None
        data = post.model_dump()
        data["post_id"] = data.get("post_id") or "request"
        if data.get("internal") is None:
            data["internal"] = data["channel"] in INTERNAL_CHANNELS
        scores = self.engine.score_texts([data["text"]])[0]
        try:
            return SpreadOut(**self.engine.forecast(data, [r.model_dump() for r in reposts],
                                                    scores["scores"]["neg"], scores["loss_type"]))
        except LossguardError as exc:
            raise ApiError(exc) from None

    @bentoml.api
    async def assess(self, event: EventIn) -> AssessOut:
        """One post or complaint end to end: predictions, then a graded warning with owners and deadline (or null)."""
        result = await self._assessor.submit(event.model_dump())
        if isinstance(result, LossguardError):
            raise ApiError(result)
        if isinstance(result, Exception):
            raise result
        if ASSESSED is not None:
            ASSESSED.labels(kind=event.kind).inc()
            if result["warning"] is not None:
                WARNINGS.labels(grade=result["warning"]["grade"]).inc()
        return AssessOut.model_validate(result)

    # ---- warnings, teams, identity (FastAPI routes on the same service) --------------------------------------
    @web.get("/info")
    def info(self, request: Request):
        """Model versions served (MLflow champions), the inputs the attrition model reads (an export-trained model
        lists the export columns each /attrition record must carry: `request_inputs`), and whether adaptive
        batching is on. Where the registry and the data live is an operator's business: only an admin reads the
        tracking URI (without credentials) and the data folder."""
        attrition = self.engine.models["attrition"].estimator
        inputs = {"attrition": {"spec": attrition.spec.name, "features": list(attrition.spec.columns),
                                "request_inputs": attrition.request_inputs()}} if hasattr(attrition, "spec") else {}
        out = {"service": "lossguard", "batching": BATCHING,
               "models": {n: {"version": m.version, "uri": m.uri} | inputs.get(n, {})
                          for n, m in self.engine.models.items()}}
        if _principal(request).role == "admin":
            out["tracking_uri"] = re.sub(r"//[^/@]*@", "//***@", settings.tracking_uri)
            out["data"] = settings.serve_data_dir or str(settings.generated_dir)
        return out

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
        return self.engine.get_warning(warning_id, _principal(request))

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
        """Refusals (unknown warning 404, illegal transition 409, bad field 422) come back through `_refused`."""
        return self.engine.transition(warning_id, action, _principal(request), **payload)

    @web.get("/teams/{unit_id}/risk")
    def team_risk(self, unit_id: UnitId, request: Request):
        """Attrition risk of a unit and everything below it; pay and performance masked by role."""
        return self.engine.team_risk(unit_id, _principal(request))

    # ---- monitoring over time: dashboard, spikes, effects (serving.monitoring) ------------------------------------
    @web.get("/monitoring/dashboard")
    def dashboard(self, request: Request, start: Annotated[Optional[datetime], Query(alias="from")] = None,
                  end: Annotated[Optional[datetime], Query(alias="to")] = None):
        """Warnings by grade per day, negative volume per department with spikes, attrition risk over the org
        chart: for the caller's scope only (a manager: their subtree). Default: the last 14 days."""
        p = _principal(request)
        end = end or datetime.now(UTC)
        return self.engine.monitor.dashboard_for(self.engine.scope(p), p.unit_id, start or end - timedelta(days=14),
                                                 end)

    @web.post("/monitoring/scan")
    def scan(self):
        """Scan the latest closed bucket for spikes now (the timer does this every bucket); admin only."""
        filed = self.engine.monitor.scan(force=True)
        return {"filed": len(filed), "warnings": [self.engine.warning_view(f.record) for f in filed]}

    @web.get("/effects/report")
    def effects_report(self, request: Request, department: Department,
                       quarter: Annotated[str, Query(min_length=6, max_length=6)]):
        """Quarterly review of a department: warnings, handling times, spikes, volume and measured effects."""
        return self.engine.monitor.report_for(self.engine.scope(_principal(request)), department, quarter)

    @web.get("/effects")
    def effects(self, request: Request, department: Optional[Department] = None,
                start: Annotated[Optional[datetime], Query(alias="from")] = None,
                end: Annotated[Optional[datetime], Query(alias="to")] = None):
        """Before/after effect of each resolved warning against matched control departments (效果评估)."""
        return self.engine.monitor.effects_for(self.engine.scope(_principal(request)), department, start, end)

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
for _method in Lossguard.apis.values():  # unknown top-level fields are refused like unknown fields inside
    _method.input_spec = strict_input(_method.input_spec)
metrics.set_routes((*BENTO_APIS, "/", "/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/schema.json"),
                   [("/static_content", r"/static_content/")], apps=[web])
metrics.install()
shape_overload_replies()
