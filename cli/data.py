"""`lossguard data …`: the seeded synthetic company."""
from __future__ import annotations

from pathlib import Path

import typer

from features.settings import settings

app = typer.Typer(help="生成或检查数据 (Generate or check data).", no_args_is_help=True)


@app.command("generate")
def generate(
    employees: int = typer.Option(settings.employees, help="Number of employees in the synthetic company."),
    days: int = typer.Option(settings.days, help="Days of history to simulate."),
    seed: int = typer.Option(settings.seed, help="Random seed (same seed, same data)."),
    out: Path = typer.Option(settings.generated_dir, help="Output folder for the Parquet tables."),
) -> None:
    """Generate the seeded synthetic company (org, employees, posts, complaints, repost cascades)."""
    from features.errors import InputError
    from synthetic import generate as generate_company

    try:
        paths = generate_company(employees=employees, days=days, seed=seed, out_dir=out)
    except ValueError as exc:  # the generator names the argument that is out of range
        raise InputError(f"无法生成数据: {exc}") from None
    for table, path in paths.items():
        typer.echo(f"{table:12s} -> {path}")
