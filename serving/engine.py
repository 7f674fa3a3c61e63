"""Everything the service does, without HTTP: score, forecast, grade, route, store, scope.

The BentoML service is a thin typed shell around one Engine, so the logic can be exercised in-process and the
HTTP tests only have to prove the wiring, the limits and the permissions. Inputs reaching the Engine are
already validated by the API models; the Engine still refuses what only it can check (unknown department,
assignee not on the roster, a warning outside the caller's org subtree).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import INTERNAL_CHANNELS, POST_CHANNELS, TEXT_FUNCTIONS, ContractError
from features.errors import LossguardError, NotFound, field_error
from features.model_specs import MODEL_NAMES
from features.modelio import LoadedModel, ModelNotFound, load_champion
from features.sanitize import text_problem, visible, visible_positions
from features.settings import settings
from features.text_batch import TextBatchScorer
from serving import views
from serving.auth import Principal
from serving.owners import OrgChart, resolve_owners
from serving.policy import Policy
from serving.roster import ORG_TABLES, check_data, data_tables, score_roster  # noqa: F401 - ORG_TABLES re-exported
from serving.rules import RiskInput, evaluate
from serving.store import WarningNotFound, WarningStore
from serving.views import BAND_ZH
from serving.webhooks import WebhookDispatcher

log = logging.getLogger("lossguard")
TEXT_MODELS = ("sentiment", "loss_type", "function")


@dataclass
class Engine:
    models: dict[str, LoadedModel]
    keywords: Any
    policy: Policy
    chart: OrgChart
    store: WarningStore
    roster: pd.DataFrame  # current employees, scored once at start: team views are a filter, not a model call
    roster_note: str | None = None  # why the roster is unscored, when the attrition model cannot read it
    max_reach: float = settings.max_reach  # the most people a post can plausibly reach (see _plausible_reach)
    anchor_sender: WebhookDispatcher | None = None  # audit anchors off the host (settings.audit_anchor_url)
    monitor: Any = None   # serving.monitoring.monitor.Monitor: counts, spikes, complaint clusters, effects

    def __post_init__(self) -> None:
        """The linear text models share normalizing and n-gram hashing: once per batch, not five times
        (features/text_batch.py, which asks other backends one by one)."""
        text = [self.models[n].estimator for n in TEXT_MODELS if n in self.models]
        self._text_scorer = TextBatchScorer(*text) if len(text) == 3 else None

    @staticmethod
    def preflight() -> None:
        """Fail fast, naming what is missing and how to fix it, when training or data generation has not run.
        Cheap (registry lookups, file checks): the service runs it once before starting its workers."""
        import mlflow

        from features.settings import configure_mlflow

        configure_mlflow()
        client = mlflow.MlflowClient()
        missing = []
        for name in MODEL_NAMES:
            try:
                client.get_model_version_by_alias(name, "champion")
            except Exception:  # noqa: BLE001 - MLflow raises several types for "no such model or alias"
                missing.append(name)
        if missing:
            raise ModelNotFound(
                f"缺少已注册的 champion 模型: {', '.join(missing)} (MLflow {settings.tracking_uri}); "
                "请先运行 `make train` (或 `lossguard train all`)")
        check_data()

    @staticmethod
    def data_tables() -> dict[str, pd.DataFrame | None]:
        """The org chart, people and event tables the service reads (serving/roster.py)."""
        return data_tables()

    @classmethod
    def from_settings(cls) -> Engine:
        """Load every champion once (the preflight's message if one cannot be loaded)."""
        from features.keywords import KeywordLibrary

        cls.preflight()
        models = {name: load_champion(name) for name in MODEL_NAMES}
        tables = cls.data_tables()
        policy = Policy.load(settings.policy_path)
        keywords = KeywordLibrary.load(settings.keywords_path)
        policy.check_keyword_kinds(keywords.kinds(), f"关键词库 {settings.keywords_path}")  # else hits route nowhere
        engine = cls(
            models=models,
            keywords=keywords,
            policy=policy,
            chart=OrgChart.from_frame(tables["org_units"], tables["employees"]),
            store=WarningStore(settings.warnings_db, policy=policy, webhooks=WebhookDispatcher.from_policy(policy)),
            roster=pd.DataFrame(),
            anchor_sender=WebhookDispatcher({"audit_anchor": settings.audit_anchor_url})
            if settings.audit_anchor_url else None,
        )
        engine.roster = engine.score_roster(tables)
        return engine

    # ---- models -------------------------------------------------------------------------------------------
    def versions(self) -> dict[str, str]:
        return {name: model.version for name, model in self.models.items()}

    def score_texts(self, texts: list[str]) -> list[dict]:
        """Sentiment, loss type, function and keyword hits for the whole batch at once (probabilities, not
        predict_frame's DataFrame, which costs more than the model on the small batches /assess sends). Invisible
        characters (bidi overrides, zero-width) are removed before scoring (features.sanitize); keyword offsets
        point into the text as sent."""
        cleaned = [visible_positions(text) for text in texts]
        visible_texts = [text for text, _ in cleaned]
        every = dict(zip(TEXT_MODELS, self._text_scorer.probabilities(visible_texts), strict=True))
        labels, loss_type, function = (self._labels(name, proba) for name, proba in every.items())
        probs = np.round(every["sentiment"], 4).tolist()
        function_confidence = np.round(every["function"].max(axis=1), 4).tolist()  # routing follows it when confident
        order = [self.models["sentiment"].estimator.labels.index(label) for label in ("neg", "neu", "pos")]
        return [
            {"label": labels[i], "scores": {"neg": probs[i][order[0]], "neu": probs[i][order[1]],
                                            "pos": probs[i][order[2]]},
             "loss_type": loss_type[i], "function": function[i], "function_confidence": function_confidence[i],
             "keyword_hits": _hits_in_raw(self.keywords.find(text), positions, len(texts[i]))}
            for i, (text, positions) in enumerate(cleaned)
        ]

    def _labels(self, name: str, proba: np.ndarray) -> list[str]:
        labels = self.models[name].estimator.labels
        return [labels[i] for i in proba.argmax(axis=1)]

    def score_employees(self, records: list[dict]) -> list[dict]:
        """Attrition for API records (already validated); precomputed signals in extra fields are used. A model
        trained on an export reads the export's own columns too (`request_inputs`, listed by GET /info): a record
        without them is refused naming the field, not scored on blanks."""
        loaded = self.models["attrition"]
        needed = loaded.estimator.request_inputs() if hasattr(loaded.estimator, "request_inputs") else []
        for i, record in enumerate(records):
            missing = [c for c in needed if record.get(c) is None]
            if missing:
                raise field_error(f"[{i}].{missing[0]}", f"attrition v{loaded.version} 按 {loaded.estimator.spec.name} "
                                  f"特征训练, 每条记录还需要 {missing} (完整列表见 GET /info)")
        scored = loaded.estimator.predict_frame(pd.DataFrame(records))
        return [
            {"employee_id": e, "propensity": round(float(p), 4), "band": b, "band_zh": BAND_ZH.get(b, b),
             "drivers": list(d)}
            for e, p, b, d in zip(scored["employee_id"].astype(str), scored["propensity"], scored["band"],
                                  scored["drivers"], strict=True)
        ]

    def score_roster(self, tables: dict[str, pd.DataFrame | None]) -> pd.DataFrame:
        """The current employees scored once (serving/roster.py); `roster_note` says why when they are not."""
        roster, self.roster_note = score_roster(self.models, tables)
        return roster

    def forecast(self, post: dict, reposts: list[dict], p_neg: float, loss_type: str) -> dict:
        """Spread forecast from the reposts seen so far; the window is the time elapsed since the post."""
        return self.forecast_many([(post, reposts, p_neg, loss_type)])[0]

    def forecast_many(self, items: list[tuple[dict, list[dict], float, str]]) -> list[dict]:
        """Forecast several posts with one model call, each over its own elapsed time (the boosters' per-call
        overhead, not the rows, is what one post costs). A bad repost raises ContractError for the whole call."""
        if not items:
            return []
        # Positions, not the callers' post ids, key the frames: one batch may hold the same post twice.
        now = datetime.now(UTC).replace(tzinfo=None)
        # Only what the features read: a string column costs more to build (Arrow-backed) than the model to run.
        # A count the caller did not send is unknown (NaN), never 0: the features flag it.
        columns = {name: [] for name in ("post_id", "channel", "created_at", "author_followers", "author_verified",
                                         "internal")}
        events = {name: [] for name in ("post_id", "timestamp", "user_followers", "region", "repost_id")}
        windows = []
        for i, (post, reposts, _, _) in enumerate(items):
            created = _naive_utc(post["created_at"])
            stamps = [_naive_utc(r["timestamp"]) for r in reposts]
            elapsed = (max([now, *stamps]) - created).total_seconds() / 60.0
            windows.append(min(max(elapsed, 1.0), settings.spread_horizon_hours * 60.0))
            for name, value in (("post_id", i), ("channel", post["channel"]), ("created_at", created),
                                ("author_followers", _count(post.get("author_followers"))),
                                ("author_verified", post.get("author_verified")),
                                ("internal", bool(post["internal"]))):
                columns[name].append(value)
            events["post_id"] += [i] * len(reposts)
            events["timestamp"] += stamps
            events["user_followers"] += [_count(r.get("user_followers")) for r in reposts]
            events["region"] += [r.get("region") for r in reposts]
            events["repost_id"] += [r.get("repost_id") for r in reposts]
        posts = pd.DataFrame(columns)
        events = pd.DataFrame({"post_id": np.array(events["post_id"], dtype=np.int64),
                               "timestamp": pd.to_datetime(events["timestamp"]) if events["timestamp"]
                               else pd.Series([], dtype="datetime64[ns]"),
                               "user_followers": np.array(events["user_followers"], dtype=float),
                               "region": pd.Series(events["region"], dtype=object),
                               "repost_id": pd.Series(events["repost_id"], dtype=object)})
        text_scores = pd.DataFrame({"post_id": range(len(items)), "p_neg": [item[2] for item in items],
                                    "loss_type": [item[3] for item in items]})
        windows = np.array(windows)
        model = self.models["spread"].estimator
        rows = model.forecast(posts, events, text_scores=text_scores, window_minutes=windows)
        values = {name: rows[name].to_numpy(dtype=float) for name in
                  ("p10", "p50", "p90", "observed", "time_to_threshold_min", "reach", "regions")}
        version, threshold = self.models["spread"].version, int(model.threshold)
        return [{
            "p10": round(float(values["p10"][i]), 1), "p50": round(float(values["p50"][i]), 1),
            "p90": round(float(values["p90"][i]), 1), "observed": int(values["observed"][i]),
            "window_minutes": round(float(windows[i]), 1),
            "time_to_threshold": None if np.isnan(values["time_to_threshold_min"][i])
            else round(float(values["time_to_threshold_min"][i]), 1),
            "threshold": threshold, **self._plausible_reach(values["reach"][i]),
            "regions": _known(values["regions"][i]), "model_version": version,
        } for i in range(len(items))]

    def _plausible_reach(self, reach: float) -> dict:
        """Reach past the audience a post can have (max_reach, settings) is a sign of implausible inputs (50,000
        reposts of accounts with 1e10 followers each gave 7.4e14): capped there, and the reply says so. Unknown
        (no follower counts sent) stays None."""
        if np.isnan(reach) or reach <= self.max_reach:
            return {"reach": _known(reach), "notes": []}
        return {"reach": round(self.max_reach, 1),
                "notes": [f"预计覆盖人数按平台可能的最大受众 {self.max_reach:,.0f} 人封顶（模型按输入的粉丝数估计为 "
                          f"{reach:,.3g} 人，超出任何平台的用户总数，请核对转发者粉丝数）"]}

    # ---- assess: predictions → rules → owners → store -----------------------------------------------------
    def assess(self, event: dict) -> dict:
        """Score one post or complaint end to end: predictions, then a graded warning (or None)."""
        result = self.assess_many([event])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def assess_many(self, events: list[dict]) -> list[dict | Exception]:
        """Assess several events with one call per model and one store transaction; each event succeeds or fails
        on its own (the result is its error), so one bad event never fails the others it was batched with."""
        results: list[dict | Exception | None] = [None] * len(events)
        prepared: dict[int, _Event] = {}
        for i, event in enumerate(events):
            try:
                prepared[i] = self._prepare(event)
            except LossguardError as exc:  # refused alone: the rest of the batch goes on
                results[i] = exc
        texts = [e.text for e in prepared.values()]
        scores = dict(zip(prepared, self.score_texts(texts), strict=True)) if prepared else {}
        clusters = self.monitor.intake(prepared, scores) if self.monitor is not None else {}  # counts, clusters
        spreads = self._spreads(prepared, scores, results)
        to_file: list[tuple[int, Any, RiskInput, Any]] = []
        for i, event in prepared.items():
            if results[i] is not None:
                continue
            try:
                risk = self._risk(event, scores[i], spreads.get(i))
                risk = self.monitor.clustered(risk, clusters[i]) if i in clusters else risk  # one warning per issue
                decision = evaluate(risk, self.policy)
                notes = tuple((spreads.get(i) or {}).get("notes", ()))
                if decision is not None and notes:  # the warning says why its reach is what it is
                    decision = dataclasses.replace(decision, reasons=decision.reasons + notes)
                if decision is not None:
                    to_file.append((i, decision, risk, resolve_owners(decision, risk, self.chart)))
                results[i] = self._answer(scores[i], spreads.get(i), None)
            except Exception as exc:  # noqa: BLE001 - returned, not swallowed: the caller answers for it
                results[i] = exc
        if to_file:
            try:
                filed = self.store.upsert_many([(d, r, o) for _, d, r, o in to_file])
            except Exception as exc:  # noqa: BLE001 - the batch's transaction failed: every event in it did
                filed = [exc] * len(to_file)
            for (i, _, _, _), outcome in zip(to_file, filed, strict=True):
                results[i] = outcome if isinstance(outcome, Exception) else \
                    self._answer(scores[i], spreads.get(i), self.warning_view(outcome.record))
        return results

    def _spreads(self, prepared: dict[int, _Event], scores: dict[int, dict],
                 results: list) -> dict[int, dict]:
        """Forecasts of the events that carry reposts, in one model call; if the batch holds a bad repost, each
        event is forecast alone so the error lands on the event that sent it."""
        wanted = [i for i, e in prepared.items() if e.reposts is not None and e.channel in POST_CHANNELS]
        items = {i: (self._post(prepared[i]), prepared[i].reposts, scores[i]["scores"]["neg"], scores[i]["loss_type"])
                 for i in wanted}
        try:
            return dict(zip(wanted, self.forecast_many(list(items.values())), strict=True))
        except ContractError:
            pass
        spreads = {}
        for i, item in items.items():
            try:
                spreads[i] = self.forecast_many([item])[0]
            except ContractError as exc:
                results[i] = field_error("event.reposts", "; ".join(str(e) for e in exc.errors[:5]))
        return spreads

    @staticmethod
    def _post(event: _Event) -> dict:
        """What forecast_many reads of a post."""
        return {"channel": event.channel, "created_at": event.created, "author_followers": event.author_followers,
                "internal": event.internal}

    def _answer(self, scores: dict, spread: dict | None, warning: dict | None) -> dict:
        return {"predictions": {"sentiment": scores, "spread": spread}, "warning": warning,
                "model_versions": self.versions()}

    def _prepare(self, event: dict) -> _Event:
        """The event as scored and stored: its text without invisible characters (the raw text is kept for the
        audit when it differed); control characters are refused here too, for callers other than the API."""
        kind, raw = event["kind"], event["text"]
        problem = text_problem(raw)
        if problem is not None:
            raise field_error("event.text", problem)
        text = visible(raw)
        identity = event.get("post_id") or event.get("complaint_id")
        internal = event.get("internal")
        return _Event(
            kind=kind, text=text, raw_text=raw if raw != text else None, channel=event["channel"],
            created=_naive_utc(event.get("created_at")) or _naive_utc(datetime.now(UTC)),
            internal=event["channel"] in INTERNAL_CHANNELS if internal is None else bool(internal),
            department_id=self._department(event), employee_id=event.get("employee_id"),
            subject=f"{kind}:{identity or hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}",
            author_followers=event.get("author_followers"),
            reposts=event.get("reposts"),
        )

    def _risk(self, event: _Event, scores: dict, spread: dict | None) -> RiskInput:
        velocity = None
        if event.reposts:
            first_hour = event.created + timedelta(hours=1)
            velocity = float(sum(_naive_utc(r["timestamp"]) <= first_hour for r in event.reposts))
        return RiskInput(
            subject=event.subject, event_kind=event.kind, text=event.text, raw_text=event.raw_text,
            channel=event.channel,
            internal=event.internal, created_at=event.created, department_id=event.department_id,
            employee_id=event.employee_id, sentiment_label=scores["label"], p_neg=scores["scores"]["neg"],
            loss_type=scores["loss_type"],
            function=scores["function"] if scores["function"] in TEXT_FUNCTIONS else "none",
            function_confidence=min(max(float(scores["function_confidence"]), 0.0), 1.0),
            keyword_hits=scores["keyword_hits"],
            reach_p50=spread["p50"] if spread else None, reach_p90=spread["p90"] if spread else None,
            velocity_per_hour=velocity,
            regions=int(round(spread["regions"])) if spread and spread["regions"] is not None else None,
        )

    def _department(self, event: dict) -> str | None:
        """The event's department: as given (must exist), else the linked employee's, so scoping works."""
        department = event.get("department_id")
        if department is not None:
            if department not in self.chart.units:
                raise field_error("event.department_id", f"未知部门 {department!r}")
            return department
        employees = self.chart.employees or {}
        person = employees.get(event.get("employee_id") or "")
        return person.department_id if person is not None else None

    def tick(self) -> None:
        """What the service's timer does each interval: muting follows its causes (expired silences, resolved
        inhibitors), then deadlines escalate and owners are reminded, then the audit chain's head is anchored
        outside the database (and sent off the host when an anchor URL is set)."""
        self.store.refresh_mutes()
        self.escalate_overdue()
        anchor = self.store.checkpoint()
        if anchor is not None and self.anchor_sender is not None:
            self.anchor_sender.send("audit_anchor", "checkpoint", anchor)

    def escalate_overdue(self) -> int:
        """Move unacknowledged warnings past their deadline up the chain and remind owners whose re-notify interval
        has passed; the service calls it on a timer."""
        escalated = len(self.store.escalate_overdue())
        self.store.renotify_due()
        return escalated

    # ---- warnings, scoped by the caller ---------------------------------------------------------------------
    def scope(self, principal: Principal) -> set[str] | None:
        """Units the caller may see (None: all). A manager whose unit left the chart sees nothing."""
        if principal.role != "manager":
            return None
        return self.chart.subtree(principal.unit_id) if principal.unit_id in self.chart.units else set()

    def warning_view(self, record, audit: Iterable | None = None) -> dict:
        """The warning as people read it (serving.views), with its audit trail when given."""
        return views.warning_view(record, self.policy, self.chart, audit)

    def _visible_record(self, warning_id: int, principal: Principal):
        try:
            record = self.store.get(warning_id)
        except WarningNotFound:
            raise NotFound(f"预警 #{warning_id} 不存在") from None
        units = self.scope(principal)
        if units is not None and record.department_id not in units:
            raise NotFound(f"预警 #{warning_id} 不存在")  # the same answer as missing: no probing other subtrees
        return record

    def get_warning(self, warning_id: int, principal: Principal) -> dict:
        record = self._visible_record(warning_id, principal)
        return self.warning_view(record, audit=self.store.audit_entries(warning_id))

    def list_warnings(self, principal: Principal, *, status=None, grade=None, loss_type: str | None = None,
                      limit: int = 100, offset: int = 0) -> list[dict]:
        records = self.store.list(status=status, grade=grade, loss_type=loss_type, units=self.scope(principal),
                                  limit=limit, offset=offset)
        return [self.warning_view(r) for r in records]

    def transition(self, warning_id: int, action: str, principal: Principal, **payload) -> dict:
        """ack / assign / resolve on a warning the caller may see; the store refuses illegal transitions."""
        record = self._visible_record(warning_id, principal)
        actor = f"{principal.name}({principal.role})"
        if action == "ack":
            record = self.store.acknowledge(warning_id, actor)
        elif action == "assign":
            assignee = payload["assignee"]
            self._check_assignee(record, assignee, principal)
            record = self.store.assign(warning_id, actor, assignee)
        else:
            record = self.store.resolve(warning_id, actor, payload["outcome"], payload.get("actual_spread"),
                                        payload.get("notes") or "", payload.get("corrected_labels"))
        return self.warning_view(record, audit=self.store.audit_entries(warning_id))

    def _check_assignee(self, record, assignee: str, principal: Principal) -> None:
        """Who may be handed a warning. Anyone on the roster who has not left, for the HR system and admins. A
        manager hands work to their own people (their org subtree) or to the people the warning itself names as
        owners (the functional owner in another department, the heads up the chain), never to someone else's
        team: scope covers what a manager may do, not only what they may read. Out of scope and unknown get the
        same answer, so the roster cannot be probed."""
        people = self.chart.employees
        person = people.get(assignee) if people is not None else None
        if people is not None and (person is None or not person.active) and principal.role != "manager":
            raise field_error("assignee", f"员工 {assignee!r} 不在员工名单中（或已离职）")
        units = self.scope(principal)
        if units is None:
            return
        named = {p.get("employee_id") for group in ("functional", "co_owners", "direct", "management", "escalation")
                 for p in (record.owners or {}).get(group, []) if isinstance(p, dict)}
        named.add(((record.owners or {}).get("executive") or {}).get("employee_id"))
        in_subtree = person is not None and person.active and person.department_id in units
        if not in_subtree and assignee not in named:
            raise field_error("assignee", f"员工 {assignee!r} 不在您可指派的范围内：经理只能指派本部门及下属团队"
                                          "的在职员工，或本预警列明的负责人")

    # ---- people risk ----------------------------------------------------------------------------------------
    def team_risk(self, unit_id: str, principal: Principal) -> dict:
        """Headcount, expected leavers and the riskiest people of a unit's subtree; masked by role."""
        units = self.scope(principal)
        if unit_id not in self.chart.units or (units is not None and unit_id not in units):
            raise NotFound(f"部门/团队 {unit_id} 不存在")
        members = self.roster[self.roster["department_id"].isin(self.chart.subtree(unit_id))]
        horizon = getattr(self.models["attrition"].estimator, "horizon_days", settings.attrition_horizon_days)
        return views.team_view(unit_id, self.chart.units[unit_id].name, members, principal,
                               horizon_days=int(horizon), model_version=self.models["attrition"].version,
                               note=self.roster_note)


@dataclass(frozen=True)
class _Event:
    """An /assess event after the checks only the Engine can make (department exists) and its defaults."""

    kind: str
    text: str
    raw_text: str | None  # as sent, when it held invisible characters (kept in the audit)
    channel: str
    created: datetime
    internal: bool
    department_id: str | None
    employee_id: str | None
    subject: str
    author_followers: int | None  # None: unknown
    reposts: list[dict] | None


def _hits_in_raw(hits: list[dict], positions: list[int], raw_length: int) -> list[dict]:
    """Keyword hits found in the visible text, with offsets mapped back into the text as sent."""
    if len(positions) == raw_length:
        return hits
    return [{**hit, "start": positions[hit["start"]], "end": positions[hit["end"] - 1] + 1} for hit in hits]


def _count(value) -> float:
    """A follower count the caller sent, or NaN for one it did not (unknown is not zero)."""
    return float("nan") if value is None else float(value)


def _known(value: float) -> float | None:
    """A forecast figure for JSON: None where the model cannot know it (reach without follower counts)."""
    return None if np.isnan(value) else round(float(value), 1)


def _naive_utc(value) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()
