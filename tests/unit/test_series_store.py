"""The store's series concern on SQLite and PostgreSQL: counts add up under concurrent writers with one statement
per batch, read back grouped, are pruned past the retention; the scan cursor lets exactly one worker scan a
bucket; complaint clusters persist between batches; the audit chain is untouched by counts."""
from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from serving.monitoring.clusters import Complaint, assign
from serving.monitoring.series import SeriesEvent, fold
from serving.store import StoreError, WarningStore

T0 = datetime(2026, 11, 23, 9, 0)


def _events(rng: random.Random, n: int) -> list[SeriesEvent]:
    return [SeriesEvent(T0 + timedelta(minutes=rng.randrange(0, 180)), rng.choice(["U010", "U011", None]),
                        rng.choice(["weibo", "douyin"]), rng.choice(["reputation", "none"]),
                        rng.choice(["none", "value"]), rng.choice(["post", "complaint"]), rng.random() < 0.4,
                        rng.randrange(0, 5000)) for _ in range(n)]


def test_concurrent_batches_add_up_exactly_one_statement_each(db_url):
    store = WarningStore(db_url)
    statements: list[str] = []
    for engine in {store.engine, store.aggregate_engine}:
        sa.event.listen(engine, "before_cursor_execute",
                        lambda conn, cursor, statement, *rest: statements.append(statement))
    rng = random.Random(7)
    batches = [_events(rng, rng.randrange(1, 60)) for _ in range(40)]
    errors: list[Exception] = []

    def write(batch):
        try:
            store.add_counts(fold(batch, 10))
        except Exception as exc:  # noqa: BLE001 - collected: a thread's exception must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []  # on PostgreSQL, rows written in key order: concurrent upserts never deadlock
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO SERIES_COUNTS")]
    assert len(inserts) == len(batches)
    events = [e for batch in batches for e in batch]
    frame = store.series_frame(T0, T0 + timedelta(hours=4), by=("department_id", "kind"))
    assert frame["total"].sum() == len(events)
    assert frame["negative"].sum() == sum(e.negative for e in events)
    assert frame["neg_reach"].sum() == sum(e.reach for e in events if e.negative)
    u010 = frame[(frame["department_id"] == "U010") & (frame["kind"] == "post")]["total"].sum()
    assert u010 == sum(1 for e in events if e.department_id == "U010" and e.kind == "post")
    assert store.verify_audit().ok and store.audit_entries() == []


def test_series_are_read_by_bucket_and_pruned_past_the_retention(db_url):
    store = WarningStore(db_url)
    events = [SeriesEvent(T0 - timedelta(days=d, minutes=m), "U010", "weibo", "reputation", "none", "post", m % 2 == 0,
                          10) for d in (0, 30, 500) for m in range(0, 60, 7)]
    store.add_counts(fold(events, 10))
    frame = store.series_frame(T0 - timedelta(days=600), T0 + timedelta(days=1), departments=["U010"])
    assert list(frame["bucket_start"]) == sorted(frame["bucket_start"])
    assert all(stamp.minute % 10 == 0 for stamp in frame["bucket_start"])
    store.prune_series(T0 - timedelta(days=400))
    left = store.series_frame(T0 - timedelta(days=600), T0 + timedelta(days=1))
    assert left["bucket_start"].min() >= T0 - timedelta(days=400) and left["total"].sum() == 2 * 9
    with pytest.raises(StoreError, match="by"):
        store.series_frame(T0, T0, by=("nope",))
    with pytest.raises(StoreError, match="negative"):
        store.add_counts([{**fold(events[:1], 10)[0], "negative": -1}])


def test_exactly_one_worker_claims_each_scan(db_url):
    stores = [WarningStore(db_url) for _ in range(4)]
    won: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for k in range(6):
            try:
                claimed = stores[n].claim_scan("trend_scan", T0 + timedelta(minutes=10 * k))
            except Exception as exc:  # noqa: BLE001 - collected: a thread's exception must fail the test
                errors.append(exc)
                continue
            if claimed:
                with lock:
                    won.append(k)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(won) == list(range(6))
    assert not stores[0].claim_scan("trend_scan", T0)  # a bucket already scanned is not scanned again


def test_clusters_persist_between_batches(db_url):
    store = WarningStore(db_url)

    def vectorize(texts):
        from scipy import sparse

        rows = [[1.0, 0.0] if "耳机" in t else [0.0, 1.0] for t in texts]
        return sparse.csr_matrix(rows)

    def run(items):
        return store.match_clusters({c.department_id for c in items}, T0 - timedelta(days=1),
                                    lambda open_clusters: assign(items, open_clusters, vectorize))

    first = run([Complaint("耳机坏了", "U010", T0, "c1"), Complaint("发货慢", "U010", T0, "c2")])
    second = run([Complaint("耳机没声音", "U010", T0 + timedelta(hours=1), "c3")])
    assert first[0].id is not None and second[0].id == first[0].id and second[0].size == 2
    assert first[1].id != first[0].id
    stored = store.cluster(first[0].id)
    assert stored.size == 2 and [e["ref"] for e in stored.examples] == ["c1", "c3"]
