"""The one database the warning store and the API keys share: how to open it and how to create its tables.

SQLite (one host): WAL, a long busy timeout, and writers that take the write lock up front (BEGIN IMMEDIATE).
PostgreSQL (several replicas): a plain pooled engine; creating tables holds an advisory lock, because replicas
that start together on an empty database would otherwise race each other's CREATE TABLE.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

SCHEMA_LOCK = 0x4C47_5343  # "LGSC": the advisory lock key held while tables are created


def make_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return sa.create_engine(parsed, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        dbapi_connection.execute("PRAGMA busy_timeout = 60000")
        if not in_memory:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers take the write lock up front: no lock upgrade, so no deadlock between concurrent writers.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writer") else "BEGIN")

    return engine


def write_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose transactions write (on SQLite they take the write lock at BEGIN)."""
    return engine.connect().execution_options(writer=True)


def create_schema(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Create missing tables inside the caller's write transaction, one process at a time."""
    if conn.dialect.name == "postgresql":  # released at commit; DDL is transactional there, so waiters see the tables
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
    metadata.create_all(conn)
