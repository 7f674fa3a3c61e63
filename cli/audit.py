"""`lossguard audit verify`: the audit chain (流程留痕) checked end to end."""
from __future__ import annotations

from typing import Optional

import typer

from cli.errors import fail
from features.settings import settings

app = typer.Typer(help="审计日志 (Audit log checks).", no_args_is_help=True)


@app.command("verify")
def verify(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Check the hash chain of the audit log; names the first edited, inserted or deleted entry."""
    from serving.store import WarningStore

    report = WarningStore(db or settings.warnings_db).verify_audit()
    if report.ok:
        typer.secho(f"审计日志完整: {report.checked} 条记录校验通过", fg=typer.colors.GREEN)
    else:
        fail(f"审计日志被篡改: {report.problem}")
