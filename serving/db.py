"""The one database the warning store and the API keys share: how to open it and how to create its tables.

SQLite (one host): WAL, a long busy timeout, and writers that take the write lock up front (BEGIN IMMEDIATE). The
file is created 0600, like api_keys.txt: it holds the warnings, the audit log and the hashed keys (SQLite gives its
-wal and -shm files the database's mode).
PostgreSQL (several replicas): a plain pooled engine; creating tables holds an advisory lock, because replicas
that start together on an empty database would otherwise race each other's CREATE TABLE.
Columns added by a later release (the audit chain's key_id) are added to existing tables on start, rows kept.
`read_only_engine` is for checks (`lossguard audit verify`): it never creates a file, a table or a row.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
import time
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from features.errors import NotFound, Unavailable

log = logging.getLogger("lossguard")
SCHEMA_LOCK = 0x4C47_5343  # "LGSC": the advisory lock key held while tables are created


def make_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return sa.create_engine(parsed, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        engine = sa.create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        _private_file(Path(parsed.database))
        engine = sa.create_engine(parsed, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        dbapi_connection.execute("PRAGMA busy_timeout = 60000")
        if not in_memory:
            _use_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers take the write lock up front: no lock upgrade, so no deadlock between concurrent writers.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writer") else "BEGIN")

    return engine


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only; say so when an existing one is readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s is readable by other users (mode %o): chmod 600 it", path, mode)


def read_only_engine(url: str) -> sa.Engine:
    """An engine that can only read: SQLite opened with mode=ro (a missing file is NotFound, not created), Postgres
    sessions with default_transaction_read_only. Connecting is tried once, so a missing database says so."""
    parsed = sa.make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database in (None, "", ":memory:"):
            raise NotFound("内存中的 SQLite 库无法从外部校验")
        path = Path(parsed.database)
        if not path.is_file():
            raise NotFound(f"数据库文件不存在: {path}（路径是否写错？）")
        engine = sa.create_engine(f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true")
    else:
        engine = sa.create_engine(parsed, connect_args={"options": "-c default_transaction_read_only=on"})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:
        engine.dispose()
        reason = str(error.orig or error).strip().splitlines()[0]
        if "does not exist" in reason:
            raise NotFound(f"数据库不存在: {parsed.render_as_string(hide_password=True)}（{reason}）") from None
        raise Unavailable(f"无法连接数据库 {parsed.render_as_string(hide_password=True)}: {reason}") from None
    return engine


def _use_wal(dbapi_connection, attempts: int = 100) -> None:
    """Switch a new database file to WAL (the mode is stored in the file, so later connections find it set).

    Switching needs an exclusive lock and SQLite answers "database is locked" at once rather than waiting out the
    busy timeout, so processes opening a fresh file together retry for a few seconds.
    """
    for attempt in range(attempts):
        try:
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


def write_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose transactions write (on SQLite they take the write lock at BEGIN)."""
    return engine.connect().execution_options(writer=True)


def create_schema(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Create missing tables inside the caller's write transaction, one process at a time."""
    if conn.dialect.name == "postgresql":  # released at commit; DDL is transactional there, so waiters see the tables
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
    metadata.create_all(conn)
    _add_missing_columns(conn, metadata)
    if conn.dialect.name == "postgresql":
        _widen_integer_columns(conn, metadata)


def _add_missing_columns(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Tables from an older release lack the columns added since (all nullable): add them, rows kept."""
    inspector = sa.inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in metadata.tables.values():
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table.name)} "
                                     f"ADD COLUMN {preparer.quote(column.name)} {kind}"))


def _widen_integer_columns(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Tables created by an older release keep 32-bit columns that are BIGINT now (warnings.actual_spread): widen
    them in place, rows kept. SQLite needs nothing: its INTEGER is 64-bit."""
    wanted = {(table.name, column.name) for table in metadata.tables.values() for column in table.columns
              if isinstance(column.type, sa.BigInteger)}
    if not wanted:
        return
    narrow = conn.execute(sa.text(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type = 'integer'")).all()
    preparer = conn.dialect.identifier_preparer
    for table_name, column_name in narrow:
        if (table_name, column_name) in wanted:
            conn.execute(sa.text(f"ALTER TABLE {preparer.quote(table_name)} "
                                 f"ALTER COLUMN {preparer.quote(column_name)} TYPE BIGINT"))
