"""`lossguard audit verify | checkpoint | rotate-key`: the audit chain (流程留痕) checked, anchored, re-keyed.

`verify` only reads: it opens the database read-only and never creates a file, a table, a key or a row, so a typo
in the path is an error (exit 3), not a fresh empty store reported intact; a chain that was tampered with exits 2.
"""
from __future__ import annotations

from typing import Optional

import typer

from cli.errors import fail
from features.settings import settings

app = typer.Typer(help="审计日志 (Audit log checks).", no_args_is_help=True)


@app.command("verify")
def verify(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
    anchors: Optional[str] = typer.Option(None, help="Anchor file; default the store's in audit_anchor_dir."),
) -> None:
    """Check the signed chain, its head and its anchors; names the first edited, inserted or deleted entry."""
    from serving.store import anchors_for, audit_keys, verify_store

    url = db or settings.warnings_db
    report = verify_store(url, audit_keys(create=False), anchors_for(url, anchors))
    if not report.ok:
        fail(f"审计日志被篡改: {report.problem}")
    if report.checked == 0:
        typer.secho("审计日志为空：库中还没有预警或静默规则，没有可校验的记录", fg=typer.colors.YELLOW)
        return
    keyed = report.checked - report.unkeyed
    detail = [f"{keyed} 条由审计密钥签名"]
    if report.unkeyed:
        detail.append(f"{report.unkeyed} 条为启用密钥前的 SHA-256 记录")
    detail.append(f"与 {report.anchors} 个锚点一致（最新至 #{report.anchored}）" if report.anchored is not None
                  else "没有锚点可对照（运行 lossguard audit checkpoint，或由服务每分钟写入）")
    typer.secho(f"审计日志完整: {report.checked} 条记录校验通过（{'，'.join(detail)}）", fg=typer.colors.GREEN)


@app.command("checkpoint")
def checkpoint(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Append a signed anchor of the chain head to the store's anchor file (the service does it every minute)."""
    from serving.store import WarningStore

    store = WarningStore(db or settings.warnings_db)
    anchor = store.checkpoint()
    store.close()
    if anchor is None:
        typer.echo("链头没有变化（或链为空）：无需新锚点")
    else:
        typer.echo(f"锚点 #{anchor['seq']} {anchor['hash'][:16]}… -> {store.anchors.path}")


@app.command("rotate-key")
def rotate_key() -> None:
    """Add a new audit key to the key file; it signs from the next write on (old keys stay, for verifying)."""
    from serving.store.sealing import rotate_key as rotate

    if settings.audit_keys.strip():
        fail("审计密钥来自 LOSSGUARD_AUDIT_KEYS：请在其末尾追加新密钥（openssl rand -hex 32），并重启所有副本")
    kid = rotate(settings.audit_key_file)
    typer.echo(f"新审计密钥 {kid} 已加入 {settings.audit_key_file}；旧密钥保留用于校验。重启服务后生效。")
