"""`lossguard keys …`: API keys (hashed at rest) for HR systems, managers and admins."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.errors import InputError
from features.settings import settings

app = typer.Typer(help="API keys (hashed) for HR systems, managers and admins.", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Option(..., help="Who holds the key (a system or a person)."),
    role: str = typer.Option(..., help="hr_system, manager, monitor (/metrics only) or admin."),
    unit: Optional[str] = typer.Option(None, help="Org unit a manager may see (with everything below it)."),
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from serving.auth import KeyStore

    try:
        key = KeyStore(settings.warnings_db).create(name, role, unit)
    except ValueError as exc:  # the key store names the bad role or unit
        raise InputError(str(exc)) from None
    typer.echo(key)


@app.command("bootstrap")
def bootstrap(
    out: Path = typer.Option(settings.generated_dir / "api_keys.txt", help="Where to write the demo keys."),
) -> None:
    """First start: create an admin, an HR-system, a manager (scoped to one department) and a monitor key (for
    Prometheus: /metrics only) if none exist."""
    import pandas as pd

    from serving.auth import KeyStore

    if out.exists():
        typer.echo(f"API keys already created: {out}")
        return
    units = pd.read_parquet(settings.generated_dir / "org_units.parquet")
    department = units[units["level"] == 2].sort_values("unit_id").iloc[0]
    store = KeyStore(settings.warnings_db)
    lines = [f"admin {store.create('admin', 'admin')}",
             f"hr_system {store.create('hr-system', 'hr_system')}",
             f"manager {store.create('manager-' + department['unit_id'], 'manager', department['unit_id'])} "
             f"{department['unit_id']} {department['name']}",
             f"monitor {store.create('prometheus', 'monitor')}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.chmod(0o600)
    typer.echo("API keys (shown once, also in " + str(out) + "):")
    for line in lines:
        typer.echo("  " + line)
