"""`lossguard store backup | restore`: the warning store (warnings, audit chain, hashed API keys) in one file.

Backups run while the service writes (SQLite's online backup API; pg_dump on PostgreSQL). A restore writes into a
fresh store only, checks the restored audit chain read-only, and says how far behind the store's anchors it is.
The audit keys are not in the backup: keep them (settings.audit_key_file or LOSSGUARD_AUDIT_KEYS) apart from it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail
from features.settings import settings

app = typer.Typer(help="预警库备份与恢复 (Back up and restore the warning store).", no_args_is_help=True)


@app.command("backup")
def backup(
    to: Path = typer.Option(..., help="Backup file to write (mode 0600)."),
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
    force: bool = typer.Option(False, help="Overwrite an existing backup file."),
) -> None:
    """Back up the store while the service runs: a consistent snapshot of every table."""
    from serving.backup import backup as run

    typer.echo(run(db or settings.warnings_db, to, force=force))


@app.command("restore")
def restore(
    file: Path = typer.Argument(..., help="Backup file written by `lossguard store backup`."),
    db: Optional[str] = typer.Option(None, help="Store to restore into (a new SQLite file or an empty Postgres "
                                                "database); default LOSSGUARD_WARNINGS_DB."),
    force: bool = typer.Option(False, help="Replace an existing SQLite file (stop the service first)."),
) -> None:
    """Restore a backup into a fresh store, then check its audit chain."""
    from serving.backup import restore as run
    from serving.backup import set_aside_anchors
    from serving.store import anchors_for, audit_keys, verify_store

    url = db or settings.warnings_db
    typer.echo(run(file, url, force=force))
    anchors = anchors_for(url)
    previous = anchors.last()
    kept = set_aside_anchors(anchors.path)
    report = verify_store(url, audit_keys(create=False), anchors)
    if not report.ok:
        fail(f"恢复的库审计链校验失败: {report.problem}")
    typer.secho(f"恢复的库审计链完整: {report.checked} 条记录", fg=typer.colors.GREEN)
    if previous is not None and previous.get("seq", 0) > report.checked:
        typer.secho(f"注意: 原库的锚点（{previous.get('at')}）已记录到 #{previous['seq']}，备份只到 #{report.checked}："
                    "备份之后的记录已丢失。旧锚点保存在 " + str(kept), fg=typer.colors.YELLOW)
