"""Monitor: what the Engine calls for monitoring over time. Counts in, spikes and clusters out, as warnings.

- `record`: every scored post and complaint (from /assess or a batch import) is folded into counts per bucket
  and key; the fold happens in the caller's thread, the write in a background writer that merges whatever has
  queued into one upsert, so an /assess batch pays for a dict update, not a database round trip.
- `assign_clusters` / `clustered`: complaints join open clusters of their department; a clustered complaint's
  subject is its cluster, so the store's grouping files one warning per cluster, and its count is a signal.
- `scan`: on a timer, the latest closed bucket of every department is tested against its seasonal baseline
  (serving.monitoring.spikes); a spike becomes an event of kind `trend`, graded by the same rules, owned through
  the same routes, grouped into one open warning per series, audited like any warning.
- `replay`: the same scan over a past period (after a batch import), filing what the live scan would have.

Departments are rolled up to the org chart's level-2 unit (a team's posts count for its department), the unit
a manager is scoped to and owners are found from.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.contracts import INTERNAL_CHANNELS, TEXT_FUNCTIONS
from features.errors import NotFound, field_error
from features.settings import settings
from serving.monitoring.clusters import Cluster, Complaint, assign, centroids
from serving.monitoring.config import MonitoringConfig
from serving.monitoring.dashboard import Dashboard
from serving.monitoring.evaluation import Evaluator
from serving.monitoring.series import SeriesEvent, bucket_start, dense, fold, keyword_category
from serving.monitoring.spikes import bucket_of_week, scan
from serving.owners import OrgChart, resolve_owners
from serving.policy import Policy
from serving.rules import RiskInput, evaluate
from serving.store import UpsertResult, WarningStore
from serving.store.schema import _utc

log = logging.getLogger("lossguard")
SCAN_CURSOR = "trend_scan"
MAX_DASHBOARD_DAYS = 366
CENTROID_CACHE = 20_000  # cluster centroids kept per process (a few kB each)


class SeriesWriter:
    """Queues folded rows and writes them from one thread, merging what queued meanwhile into one statement: at
    most one write every `interval` seconds, however many /assess batches arrive (a batch's rows are already
    one per key; merging batches cuts the writes once more under load)."""

    def __init__(self, store: WarningStore, background: bool = True, interval: float = 0.5):
        self.store, self.background, self.interval = store, background, interval
        self._queue: queue.Queue = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        if background:
            threading.Thread(target=self._run, name="series-writer", daemon=True).start()

    def submit(self, rows: list[dict]) -> None:
        if not rows:
            return
        if not self.background:
            self.store.add_counts(rows)
            return
        self._idle.clear()
        self._queue.put(rows)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (tests, shutdown, before a scan)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            rows = list(self._queue.get())
            time.sleep(self.interval)  # let the batches of the next moment join this write
            while not self._queue.empty():
                rows += self._queue.get_nowait()
            merged: dict[tuple, dict] = {}
            for row in rows:
                key = tuple(row[k] for k in ("bucket_start", "department_id", "channel", "loss_type",
                                             "keyword_category", "kind"))
                if key in merged:
                    for name in ("total", "negative", "neg_reach"):
                        merged[key][name] += row[name]
                else:
                    merged[key] = dict(row)
            try:
                self.store.add_counts(list(merged.values()))
            except Exception:  # noqa: BLE001 - counts are kept for the next attempt, the service goes on
                log.exception("series write failed; retrying with the next batch")
                self._queue.put(list(merged.values()))
                threading.Event().wait(1.0)
            if self._queue.empty():
                self._idle.set()


class Monitor:
    def __init__(self, store: WarningStore, policy: Policy, chart: OrgChart, *, vectorize=None,
                 background: bool = True):
        self.store, self.policy, self.chart, self.vectorize = store, policy, chart, vectorize
        self.writer = SeriesWriter(store, background)
        self.department = {unit_id: self._level2(unit_id) for unit_id in chart.units}
        self.evaluator, self.dashboard = Evaluator(self), Dashboard(self)
        self._pruned: datetime | None = None
        # cluster id -> (centroid, examples) as last seen here, so busy departments' open clusters are matched
        # without reading and vectorising their examples on every batch
        self._centroids: OrderedDict[int, tuple] = OrderedDict()
        self._cluster_lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine, employees: pd.DataFrame | None = None) -> Monitor:
        """The service's monitor: clusters compare texts in the sentiment model's own feature space, effects
        read leavers from the HR table (settings.generated_dir, unless given) and risk from the scored roster."""
        if employees is None and (settings.generated_dir / "employees.parquet").exists():
            employees = pd.read_parquet(settings.generated_dir / "employees.parquet")
        model = engine.models["sentiment"].estimator
        vectorize = None
        if hasattr(model, "featurizer") and hasattr(model, "normalizer"):
            def vectorize(texts):
                return model.featurizer.transform(model.normalizer.batch(list(texts)))
        monitor = cls(engine.store, engine.policy, engine.chart, vectorize=vectorize)
        people = None
        if employees is not None and {"leave_date", "hire_date", "department_id"} <= set(employees.columns):
            people = employees[["employee_id", "department_id", "hire_date", "leave_date"]]
        monitor.evaluator = Evaluator(monitor, people, engine.roster)
        monitor.dashboard = Dashboard(monitor, engine.roster)
        return monitor

    @property
    def config(self) -> MonitoringConfig:
        return self.policy.monitoring

    def _level2(self, unit_id: str) -> str:
        chain = self.chart.ancestors(unit_id)
        return next((u.unit_id for u in chain if u.level == 2), chain[0].unit_id)

    def rollup(self, unit_id: str | None) -> str:
        return self.department.get(unit_id or "", unit_id or "")

    # ---- intake ------------------------------------------------------------------------------------------
    def record(self, events: list, scores: list[dict], reach: list[int] | None = None) -> None:
        """Fold scored events (objects with kind, channel, created, department_id, author_followers) into counts."""
        if not self.config.enabled or not events:
            return
        reach = reach or [int(getattr(e, "author_followers", 0) or 0) for e in events]
        rows = fold((SeriesEvent(e.created, e.department_id, e.channel, s["loss_type"],
                                 keyword_category(s["keyword_hits"]), e.kind, s["label"] == "neg", r)
                     for e, s, r in zip(events, scores, reach, strict=True)), self.config.bucket_minutes)
        self.writer.submit(rows)

    def assign_clusters(self, complaints: dict[int, Complaint]) -> dict[int, Cluster]:
        """The cluster of each complaint (by the caller's index); nothing when clustering has no vectorizer."""
        if not (self.config.enabled and self.config.clusters.enabled) or not complaints or self.vectorize is None:
            return {}
        keys = list(complaints)
        items = [complaints[k] for k in keys]
        since = min(c.at for c in items) - timedelta(hours=self.config.clusters.window_hours)
        config, cache = self.config.clusters, self._centroids

        def match(open_clusters: list[Cluster]) -> list[Cluster]:
            for cluster in open_clusters:  # examples not read: the cached ones (and their centroid) are current
                if cluster.examples is None:
                    centroid, examples = cache[cluster.id]
                    cluster.centroid, cluster.examples = centroid, list(examples)
            return assign(items, open_clusters, self.vectorize, config)

        with self._cluster_lock:  # the cache is shared by the batcher's threads
            known = {cid: len(examples) for cid, (_, examples) in cache.items()}
            chosen = self.store.match_clusters({c.department_id or "" for c in items}, since, match, known,
                                               config.max_examples, self._conflict)
            for cluster in chosen:
                cache[cluster.id] = (cluster.centroid, tuple(cluster.examples))
                cache.move_to_end(cluster.id)
            while len(cache) > CENTROID_CACHE:
                cache.popitem(last=False)
        return dict(zip(keys, chosen, strict=True))

    def intake(self, prepared: dict, scores: dict) -> dict[int, Cluster]:
        """An /assess batch, once scored: count every event (folded here, written by the writer thread) and
        return the clusters of its complaints, by the batch's index."""
        self.record(list(prepared.values()), [scores[i] for i in prepared])
        return self.assign_clusters({i: Complaint(e.text, e.department_id, e.created, e.subject)
                                     for i, e in prepared.items() if e.kind == "complaint"})

    def _conflict(self, ours: list[Cluster], theirs: list[Cluster]) -> bool:
        """Whether a cluster this batch opened is about what another worker opened one for meanwhile."""
        theirs = [c for c in theirs if c.examples and c.department_id in {o.department_id for o in ours}]
        if not theirs:
            return False
        rows = centroids(self.vectorize([e["text"] for c in theirs for e in c.examples]),
                         [k for k, c in enumerate(theirs) for _ in c.examples])
        for cluster in ours:
            same = [k for k, c in enumerate(theirs) if c.department_id == cluster.department_id]
            if cluster.centroid is not None and same and \
                    (rows[same] @ cluster.centroid.T).max() >= self.config.clusters.threshold:
                return True
        return False

    @staticmethod
    def clustered(risk: RiskInput, cluster: Cluster) -> RiskInput:
        """The complaint filed under its cluster: one subject (one warning), the count and examples attached."""
        return replace(risk, subject=f"cluster:{cluster.id}", monitoring={
            "cluster_id": cluster.id, "cluster_size": cluster.size, "first_at": cluster.first_at.isoformat(),
            "examples": [e["text"] for e in cluster.examples]})

    # ---- spikes ------------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[UpsertResult]:
        """The service's timer: scan the latest closed bucket (once across workers); prune counts past the
        retention about once a day."""
        now = _utc(now)
        filed = self.scan(now)
        if self._pruned is None or now - self._pruned > timedelta(days=1):
            self.store.prune_series(now - timedelta(days=self.config.retention_days))
            self._pruned = now
        return filed

    def scan(self, now: datetime | None = None, *, force: bool = False) -> list[UpsertResult]:
        """Test the latest closed bucket of every department that had posts lately; file spikes as trend events.
        Several workers call this on a timer: the one that advances the scan cursor scans (unless `force`)."""
        if not self.config.enabled:
            return []
        minutes = self.config.bucket_minutes
        end = bucket_start(_utc(now), minutes)
        if not force and not self.store.claim_scan(SCAN_CURSOR, end):
            return []
        self.writer.flush()
        return self._detect(end - timedelta(minutes=minutes), end)

    def replay(self, start: datetime, end: datetime) -> list[UpsertResult]:
        """Scan every bucket in [start, end) as the live scan would have, filing in time order."""
        minutes = self.config.bucket_minutes
        return self._detect(bucket_start(_utc(start), minutes), bucket_start(_utc(end), minutes))

    def _detect(self, first: datetime, end: datetime) -> list[UpsertResult]:
        config, minutes = self.config.spikes, self.config.bucket_minutes
        span = config.history_buckets + (config.level_hours + 1) * config.buckets_per_hour + config.guard_buckets
        history = timedelta(minutes=minutes * span)
        start = bucket_start(first - history, 60)
        frame = self.store.series_frame(start, end, by=("department_id",))
        if frame.empty:
            return []
        frame["department_id"] = frame["department_id"].map(self.rollup)
        # Counting started at the first stored bucket: before it there is no history, not a history of zeros.
        start = max(start, frame["bucket_start"].min().to_pydatetime())
        keys, negative = dense(frame, start, end, minutes, "department_id")
        since = max(int((first - start) / timedelta(minutes=minutes)), 0)
        found = []
        for key, counts in zip(keys, negative, strict=True):
            if not key or counts[max(since - max(config.windows), 0):].sum() < config.min_count:
                continue
            result = scan(counts, config, bucket_of_week(start, minutes))
            found += [(int(t), key, result) for t in np.flatnonzero(result.alarm[since:]) + since]
        items = []
        for t, key, result in sorted(found, key=lambda f: (f[0], f[1])):
            at = start + timedelta(minutes=minutes * (t + 1))  # the bucket's end: when the scan can see it
            items.append((at, self._trend(key, t, result, start, frame)))
        filed = []
        for at, (decision, risk, owners) in items:  # in time order, so grouping sees them as the live scan would
            if decision is not None:
                filed += self.store.upsert_many([(decision, risk, owners)], now=at)
        return [f for f in filed if isinstance(f, UpsertResult)]

    def _trend(self, department: str, t: int, result, start: datetime, frame):
        """The trend event of one alarmed bucket: risk (what rose, by how much, against what), decision, owners."""
        minutes = self.config.bucket_minutes
        window = int(result.window[t])
        window_start = start + timedelta(minutes=minutes * (t + 1 - window))
        window_end = start + timedelta(minutes=minutes * (t + 1))
        detail = self.store.series_frame(window_start, window_end, departments=self._units_of(department),
                                         by=("channel", "loss_type"))
        negative = detail[detail["negative"] > 0]
        channel = negative.groupby("channel")["negative"].sum().idxmax() if len(negative) else "weibo"
        loss = negative.groupby("loss_type")["negative"].sum() if len(negative) else None
        loss_type = loss.drop("none", errors="ignore").idxmax() if loss is not None and len(loss.drop(
            "none", errors="ignore")) else "none"
        total, neg, reach = (int(detail[c].sum()) for c in ("total", "negative", "neg_reach"))
        observed, expected = float(result.observed[t]), float(result.expected[t])
        unit = self.chart.units.get(department)
        name = unit.name if unit else department
        weeks = int(result.weeks_used[t])
        basis = (f"过去 {weeks} 周同一时段均值 {result.baseline[t]:.2f} 条/{minutes} 分钟，按近 "
                 f"{self.config.spikes.level_hours} 小时水平校正 ×{result.level[t]:.2f}" if weeks else
                 f"尚无完整一周的历史，按近 {self.config.spikes.level_hours} 小时的平均水平")
        summary = (f"【声量异常】{name}最近 {window * minutes} 分钟负面内容 {observed:.0f} 条，基线 {expected:.1f} 条"
                   f"（{basis}），为基线的 {observed / max(expected, 1e-9):.1f} 倍；窗口内负面占比 "
                   f"{neg / max(total, 1):.0%}，作者粉丝合计 {reach:,}；显著性 p={result.p_value[t]:.1e}")
        function = unit.function if unit and unit.function in TEXT_FUNCTIONS else "none"
        risk = RiskInput(
            subject=f"trend:{department}", event_kind="trend", text=summary, channel=channel,
            internal=channel in INTERNAL_CHANNELS, created_at=window_end, department_id=department,
            sentiment_label="neg", p_neg=round(neg / max(total, 1), 4), loss_type=loss_type, function=function,
            monitoring={"ratio": round(observed / max(expected, 1e-9), 3), "excess": round(observed - expected, 2),
                        "negative_share": round(neg / max(total, 1), 4), "reach": reach, "observed": observed,
                        "expected": round(expected, 3), "window_minutes": window * minutes,
                        "window_start": window_start.isoformat(), "window_end": window_end.isoformat(),
                        "baseline_per_bucket": round(float(result.baseline[t]), 4), "weeks": weeks,
                        "level": round(float(result.level[t]), 3), "p_value": float(result.p_value[t])})
        decision = evaluate(risk, self.policy)
        if decision is None:  # a tenant policy without trend rules: nothing to file
            return None, risk, None
        decision = replace(decision, reasons=(summary,) + decision.reasons)
        return decision, risk, resolve_owners(decision, risk, self.chart)

    def _units_of(self, department: str) -> list[str]:
        return [u for u, d in self.department.items() if d == department] or [department]

    # ---- what the API returns, cut to the caller's units (None: everything) --------------------------------------
    def _records(self, units: set[str] | None, department: str | None) -> list:
        if department is not None:
            if department not in self.chart.units or (units is not None and department not in units):
                raise NotFound(f"部门/团队 {department} 不存在")
            units = self.chart.subtree(department)
        return self.store.list(units=units, limit=1_000_000)

    def effects_for(self, units: set[str] | None, department: str | None = None, start: datetime | None = None,
                    end: datetime | None = None, now: datetime | None = None) -> dict:
        """Effects of the warnings resolved in [start, end) that the caller may see."""
        start = _moment(start, "from") if start is not None else None
        end = _moment(end, "to") if end is not None else None
        records = [r for r in self._records(units, department) if r.status == "resolved" and r.resolved_at
                   and (start is None or r.resolved_at >= start) and (end is None or r.resolved_at < end)]
        resolved = self.store.list(status="resolved", limit=1_000_000)
        items = self.evaluator.effects(records, resolved, now)
        return {"effects": items, "count": len(items), "window_days": self.config.effects.window_days,
                "level": self.config.effects.level}

    def report_for(self, units: set[str] | None, department: str, quarter: str, now: datetime | None = None) -> dict:
        """The quarterly report of a department the caller may see; `quarter` like 2026Q4."""
        year, _, number = quarter.upper().partition("Q")
        if not (year.isdigit() and 2000 <= int(year) <= 2100 and number in ("1", "2", "3", "4")):
            raise field_error("quarter", f"应形如 2026Q4（2000–2100 年）, 实为 {quarter!r}")
        records = self._records(units, department)
        resolved = self.store.list(status="resolved", limit=1_000_000)
        return self.evaluator.quarterly(department, int(year), int(number), records, resolved, now)

    def dashboard_for(self, units: set[str] | None, root: str | None, start: datetime, end: datetime) -> dict:
        start, end = _moment(start, "from"), _moment(end, "to")
        if not start < end:
            raise field_error("from", "起始时间应早于结束时间")
        if end - start > timedelta(days=MAX_DASHBOARD_DAYS):
            raise field_error("from", f"时间范围最长 {MAX_DASHBOARD_DAYS} 天")
        return self.dashboard.data(units, root, start, end, self._records(units, None))


def _moment(value: datetime, name: str) -> datetime:
    """A query time as naive UTC; one that cannot be (year 1 with an offset) is the caller's error."""
    try:
        return _utc(value)
    except (OverflowError, ValueError):
        raise field_error(name, f"无法换算为 UTC 时间: {value!r}") from None
