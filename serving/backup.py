"""Backups of the warning store (buyer's checklist): warnings, silences, the audit chain and the hashed API keys.

SQLite: SQLite's online backup API copies a consistent snapshot in one read transaction while the service keeps
writing (WAL: readers never block the writer). PostgreSQL: `pg_dump --format=custom` (a consistent snapshot too,
taken with REPEATABLE READ) and `pg_restore` into an empty database. Both write the backup readable by its owner
only: it holds everything the database does.

What a backup does not hold, and must be kept apart from it: the audit keys (settings.audit_key_file or
LOSSGUARD_AUDIT_KEYS; a restored chain verifies only with them) and the anchor files (they prove what existed
after the backup). A restore checks the restored chain and reports how far behind the store's own anchors it is:
whatever was acknowledged after the backup was taken is lost, and the restore says so instead of hiding it.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from features.errors import InputError, NotFound, Unavailable


def _sqlite_path(url: str) -> Path | None:
    parsed = sa.make_url(url)
    return Path(parsed.database) if parsed.drivername.startswith("sqlite") and parsed.database else None


def _private(path: Path) -> None:
    path.chmod(0o600)


def backup(url: str, target: Path, *, force: bool = False) -> str:
    """Write a backup of the store at `url` to `target`; returns what was done, in a line."""
    target = Path(target)
    if target.exists() and not force:
        raise InputError(f"--to: {target} 已存在（用 --force 覆盖）", field="to")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = _sqlite_path(url)
    if source is not None:
        if not source.is_file():
            raise NotFound(f"数据库文件不存在: {source}")
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
                closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)  # all pages in one step: one read snapshot, writers go on (WAL)
        _private(partial)
        partial.replace(target)
        return f"SQLite 在线备份 {source} -> {target}（{target.stat().st_size:,} 字节）"
    _run_pg("pg_dump", url, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}")
    _private(target)
    return f"pg_dump {sa.make_url(url).render_as_string(hide_password=True)} -> {target}"


def restore(source: Path, url: str, *, force: bool = False) -> str:
    """Restore a backup into the store at `url`: a fresh SQLite file, or an empty PostgreSQL database."""
    source = Path(source)
    if not source.is_file():
        raise NotFound(f"备份文件不存在: {source}")
    target = _sqlite_path(url)
    if target is not None:
        if target.exists() and not force:
            raise InputError(f"{target} 已存在：恢复只写入新库（确认要覆盖时用 --force，并先停止服务）", field="db")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
            try:
                known = src.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone()
            except sqlite3.DatabaseError:
                known = None
            if known is None:
                raise InputError(f"{source} 不是 Lossguard 预警库的备份（没有 audit_log 表）")
            with closing(sqlite3.connect(partial)) as dst:
                src.backup(dst)
        _private(partial)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        partial.replace(target)
        return f"已从 {source} 恢复到 {target}"
    engine = sa.create_engine(url)
    try:
        tables = sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise InputError(f"目标库已有表 {', '.join(sorted(tables)[:5])}：pg_restore 只写入空库", field="db")
    _run_pg("pg_restore", url, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(source))
    return f"pg_restore {source} -> {sa.make_url(url).render_as_string(hide_password=True)}"


def set_aside_anchors(anchor_file: Path) -> Path | None:
    """A restored store starts a new anchor history; the old file is kept under another name (it records what
    existed before the restore)."""
    if not anchor_file.exists():
        return None
    kept = anchor_file.with_name(f"{anchor_file.stem}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.jsonl")
    anchor_file.rename(kept)
    return kept


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: on PATH, else Debian's newest /usr/lib/postgresql/<major>/bin."""
    found = shutil.which(name)
    if found:
        return found
    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                    key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if debian:
        return str(debian[-1])
    raise Unavailable(f"找不到 {name}：请安装 PostgreSQL 客户端（Debian: postgresql-client）")


def _run_pg(tool: str, url: str, *args: str) -> None:
    parsed = sa.make_url(url)
    env = {**os.environ, **({"PGPASSWORD": parsed.password} if parsed.password else {})}
    plain = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    target = [f"--dbname={plain}"]
    done = subprocess.run([pg_tool(tool), *target, *args], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise Unavailable(f"{tool} 失败（退出码 {done.returncode}）: {done.stderr.strip()[-500:]}")
