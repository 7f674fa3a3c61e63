"""Series: counts of scored posts and complaints per time bucket, open complaint clusters, the scan cursor.

Aggregates, not events: one row per bucket and key (department, channel, loss type, keyword category, kind)
holding total and negative counts and the negative posts' audience. A batch of events is folded in memory into
one row per key and written with one upsert statement (INSERT ... ON CONFLICT DO UPDATE adds to the row), so the
/assess hot path pays one short write per batch, never one per event. Nothing here is audited: counts are not
decisions (the warnings they lead to are, in the audit chain), and rows older than the retention are deleted.

Complaint clusters live here too (the open ones are read, matched and written back in one write transaction, so
two workers cannot both open a cluster for one complaint), and so does the monitor's scan cursor: several
workers run the spike scan on a timer, the one that advances the cursor for a bucket scans it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from serving.db import make_engine, write_connection
from serving.monitoring.clusters import Cluster
from serving.store.schema import StoreError, _utc, metadata

SERIES_KEY = ("bucket_start", "department_id", "channel", "loss_type", "keyword_category", "kind")
SERIES_VALUES = ("total", "negative", "neg_reach")
CLUSTER_LOCK = 0x4C47_434C  # "LGCL": PostgreSQL advisory lock held while clusters are matched

series_table = sa.Table(
    "series_counts", metadata,
    sa.Column("bucket_start", sa.DateTime, primary_key=True),
    sa.Column("department_id", sa.String(64), primary_key=True),  # "" when the event names none
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("loss_type", sa.String(16), primary_key=True),
    sa.Column("keyword_category", sa.String(16), primary_key=True),  # the most severe hit's category, or none
    sa.Column("kind", sa.String(16), primary_key=True),  # post | complaint
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("negative", sa.BigInteger, nullable=False),
    sa.Column("neg_reach", sa.BigInteger, nullable=False),
    sa.Index("ix_series_department_bucket", "department_id", "bucket_start"),
)

clusters_table = sa.Table(
    "complaint_clusters", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("department_id", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("first_at", sa.DateTime, nullable=False),
    sa.Column("last_at", sa.DateTime, nullable=False),
    sa.Column("examples", sa.JSON, nullable=False),
    sa.Index("ix_clusters_department_last", "department_id", "last_at"),
)

monitor_state_table = sa.Table(
    "monitor_state", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("at", sa.DateTime, nullable=False),
)


class SeriesStore:
    """A mixin of WarningStore: it expects `self.engine` and `self.url`."""

    def _aggregate_connection(self) -> sa.Connection:
        return write_connection(self.aggregate_engine)

    @property
    def aggregate_engine(self) -> sa.Engine:
        """The engine counts and clusters are written through. They are aggregates: losing the last second of them
        to a power cut is acceptable, an fsync per /assess batch for them is not (on SQLite every commit waits for
        the disk while holding the one write lock, and a batch writes counts and clusters besides its warnings).
        SQLite: a connection of its own with synchronous=NORMAL (in WAL mode a commit then skips the fsync;
        the warnings keep FULL on theirs). PostgreSQL: synchronous_commit off for these transactions."""
        engine = getattr(self, "_aggregate_engine", None)
        if engine is None:
            engine = self.engine
            parsed = sa.make_url(self.url)
            if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
                engine = make_engine(self.url)
                sa.event.listen(engine, "connect",
                                lambda dbapi_connection, _: dbapi_connection.execute("PRAGMA synchronous = NORMAL"))
            self._aggregate_engine = engine
        return engine

    def _relaxed(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))

    def _upsert(self):
        """INSERT ... ON CONFLICT DO UPDATE adding to the stored counts (built once per store)."""
        if getattr(self, "_series_upsert", None) is not None:
            return self._series_upsert
        dialect = self.engine.dialect.name
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
        if insert is None:
            raise StoreError(f"计数序列需要 SQLite 或 PostgreSQL（当前 {dialect}）")
        statement = insert(series_table)
        self._series_upsert = statement.on_conflict_do_update(
            index_elements=list(SERIES_KEY),
            set_={name: series_table.c[name] + statement.excluded[name] for name in SERIES_VALUES})
        return self._series_upsert

    def add_counts(self, rows: Iterable[dict]) -> int:
        """Add counts (one dict per key: SERIES_KEY and SERIES_VALUES) to their buckets; one statement."""
        # In key order: concurrent upserts on PostgreSQL then lock rows in one order and cannot deadlock.
        rows = sorted((_series_row(row) for row in rows), key=lambda r: tuple(r[k] for k in SERIES_KEY))
        if not rows:
            return 0
        with self._aggregate_connection() as conn, conn.begin():
            self._relaxed(conn)
            conn.execute(self._upsert(), rows)
        return len(rows)

    def series_frame(self, start: datetime, end: datetime, *, departments: Iterable[str] | None = None,
                     by: tuple[str, ...] = ("department_id",), kind: str | None = None) -> pd.DataFrame:
        """Sums per bucket in [start, end) grouped by `by` (columns of the key), oldest first."""
        unknown = [name for name in by if name not in SERIES_KEY[1:]]
        if unknown:
            raise StoreError(f"by: 未知的序列维度 {unknown[0]!r}; 可用: {list(SERIES_KEY[1:])}")
        table = series_table
        columns = [table.c.bucket_start, *(table.c[name] for name in by)]
        query = sa.select(*columns, *(sa.func.sum(table.c[name]).label(name) for name in SERIES_VALUES)).where(
            table.c.bucket_start >= _utc(start), table.c.bucket_start < _utc(end))
        if departments is not None:
            query = query.where(table.c.department_id.in_(sorted(set(departments))))
        if kind is not None:
            query = query.where(table.c.kind == kind)
        query = query.group_by(*columns).order_by(table.c.bucket_start)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(),
                                 columns=["bucket_start", *by, *SERIES_VALUES])
        for name in SERIES_VALUES:
            frame[name] = frame[name].astype("int64")
        frame["bucket_start"] = pd.to_datetime(frame["bucket_start"])
        return frame

    def prune_series(self, before: datetime) -> int:
        """Delete counts of buckets before `before` and clusters closed before it (retention)."""
        with write_connection(self.engine) as conn, conn.begin():
            removed = conn.execute(sa.delete(series_table).where(series_table.c.bucket_start < _utc(before)))
            conn.execute(sa.delete(clusters_table).where(clusters_table.c.last_at < _utc(before)))
        return removed.rowcount or 0

    def claim_scan(self, name: str, at: datetime) -> bool:
        """Advance the cursor `name` to `at` if it is behind; True for the one caller that advanced it."""
        at = _utc(at)
        insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[self.engine.dialect.name]
        table = monitor_state_table
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(insert(table).values(name=name, at=datetime(1970, 1, 1))
                         .on_conflict_do_nothing(index_elements=["name"]))
            moved = conn.execute(sa.update(table).where(table.c.name == name, table.c.at < at).values(at=at))
            return moved.rowcount == 1

    def match_clusters(self, departments: Iterable[str], since: datetime,
                       match: Callable[[list[Cluster]], list[Cluster]], known: Mapping[int, int] | None = None,
                       max_examples: int = 5,
                       conflict: Callable[[list[Cluster], list[Cluster]], bool] | None = None) -> list[Cluster]:
        """Read the clusters of `departments` open since `since`, let `match` assign complaints to them (it may
        append new ones), write back the changed ones, and return what `match` returned with ids set.

        Optimistic: reading and matching happen outside the write lock (matching vectorises text), the write
        takes it briefly and adds sizes as increments, so concurrent workers lose no count. If another writer
        opened a cluster in these departments meanwhile (two workers seeing the first complaints of one issue),
        the batch is matched again under the lock, so one issue never splits into two clusters: when it opened
        clusters itself and `conflict(ours, theirs)` says one of them is about what another writer's is (without
        `conflict`, whenever it opened any).

        `known` maps cluster ids to how many examples the caller already holds for them: a cluster keeps its first
        `max_examples` complaints as examples, so when that count is min(size, max_examples) the examples are
        not read again (examples None). A busy department has many open clusters; mostly only sizes change."""
        departments = sorted({d or "" for d in departments})
        with self.engine.connect() as conn:
            open_clusters, newest = self._open_clusters(conn, departments, since, known or {}, max_examples)
        read = {c.id: (c.size, len(c.examples) if c.examples is not None else None) for c in open_clusters}
        chosen = match(open_clusters)
        with self._aggregate_connection() as conn, conn.begin():
            self._relaxed(conn)
            if conn.dialect.name == "postgresql":  # SQLite's writer already holds the database's write lock
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLUSTER_LOCK)))
            ours = [c for c in open_clusters if c.id is None]
            if ours and (self._newest_cluster(conn, departments) or 0) > (newest or 0) and (
                    conflict is None or conflict(ours, self._clusters_after(conn, departments, newest))):
                open_clusters, _ = self._open_clusters(conn, departments, since, known or {}, max_examples)
                read = {c.id: (c.size, len(c.examples) if c.examples is not None else None) for c in open_clusters}
                chosen = match(open_clusters)
            self._write_clusters(conn, open_clusters, read)
        return chosen

    @staticmethod
    def _newest_cluster(conn: sa.Connection, departments: list[str]) -> int | None:
        table = clusters_table
        return conn.execute(sa.select(sa.func.max(table.c.id)).where(table.c.department_id.in_(departments))).scalar()

    @staticmethod
    def _clusters_after(conn: sa.Connection, departments: list[str], newest: int | None) -> list[Cluster]:
        """Clusters other writers opened in `departments` since `newest` was the latest, with their examples."""
        table = clusters_table
        query = sa.select(table).where(table.c.department_id.in_(departments))
        if newest is not None:
            query = query.where(table.c.id > newest)
        return [Cluster(r["id"], r["department_id"], r["size"], r["first_at"], r["last_at"], list(r["examples"]))
                for r in conn.execute(query).mappings()]

    @staticmethod
    def _open_clusters(conn: sa.Connection, departments: list[str], since: datetime, known: Mapping[int, int],
                       max_examples: int) -> tuple[list[Cluster], int | None]:
        table = clusters_table
        light = [table.c.id, table.c.department_id, table.c.size, table.c.first_at, table.c.last_at]
        rows = conn.execute(sa.select(*light).where(table.c.department_id.in_(departments),
                                                    table.c.last_at >= _utc(since))).mappings().all()
        wanted = [r["id"] for r in rows if known.get(r["id"]) != min(r["size"], max_examples)]
        examples = dict(conn.execute(sa.select(table.c.id, table.c.examples).where(table.c.id.in_(wanted)))
                        .all()) if wanted else {}
        newest = max((r["id"] for r in rows), default=None)  # a newer cluster is open too, so it would be here
        return [Cluster(r["id"], r["department_id"], r["size"], r["first_at"], r["last_at"],
                        list(examples[r["id"]]) if r["id"] in examples else None) for r in rows], newest

    @staticmethod
    def _write_clusters(conn: sa.Connection, clusters: list[Cluster], read: dict) -> None:
        """New clusters inserted; existing ones grow by increments; examples are written only where nobody
        else changed the cluster since it was read (else they stay as the other writer left them)."""
        table = clusters_table
        for cluster in clusters:
            if not cluster.changed:
                continue
            if cluster.id is None:
                cluster.id = conn.execute(sa.insert(table).values(
                    department_id=cluster.department_id, size=cluster.size, first_at=_utc(cluster.first_at),
                    last_at=_utc(cluster.last_at), examples=cluster.examples or [])).inserted_primary_key[0]
            else:
                size, count = read[cluster.id]
                if count is not None and len(cluster.examples) != count:
                    conn.execute(sa.update(table).where(table.c.id == cluster.id, table.c.size == size)
                                 .values(examples=cluster.examples))
                conn.execute(sa.update(table).where(table.c.id == cluster.id).values(
                    size=table.c.size + (cluster.size - size),
                    last_at=sa.case((table.c.last_at < _utc(cluster.last_at), _utc(cluster.last_at)),
                                    else_=table.c.last_at)))
            cluster.changed = False

    def cluster(self, cluster_id: int) -> Cluster | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(clusters_table).where(clusters_table.c.id == cluster_id)).mappings().first()
        return None if r is None else Cluster(r["id"], r["department_id"], r["size"], r["first_at"], r["last_at"],
                                              list(r["examples"]))


def _series_row(row: dict) -> dict:
    missing = [name for name in SERIES_KEY + SERIES_VALUES if name not in row]
    if missing:
        raise StoreError(f"计数行缺少字段 {missing[0]}")
    out = {name: row[name] for name in SERIES_KEY + SERIES_VALUES}
    out["bucket_start"] = _utc(pd.Timestamp(out["bucket_start"]).to_pydatetime())
    out["department_id"] = out["department_id"] or ""
    for name in SERIES_VALUES:
        value = int(out[name])
        if value < 0:
            raise StoreError(f"{name}: 计数不能为负, 实为 {value}")
        out[name] = value
    return out
