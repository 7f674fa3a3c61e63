"""`lossguard data …`: the seeded synthetic company, and a company's own data in (import) or only checked."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.settings import settings

app = typer.Typer(help="生成、导入或检查数据 (Generate, import or check data).", no_args_is_help=True)

SOURCES_HELP = "Files (CSV, Parquet, Excel .xlsx) or folders of them."
MAPPING_HELP = ("Column mapping YAML (one per entity; repeatable), or a shipped name such as ibm. Files named after "
                "an entity (employees.csv, posts.parquet, ...) with the contract's columns need none.")


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


@app.command("import")
def import_(
    sources: list[Path] = typer.Argument(..., help=SOURCES_HELP),
    mapping: Optional[list[str]] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    out: Path = typer.Option(settings.imported_dir, help="Folder for <entity>.parquet, the manifest and the report."),
) -> None:
    """Validate a company's own exports and write one Parquet per entity (employees, org_units, posts, complaints,
    reposts, labelled_texts). Bad rows are reported (screen + import_report.csv) and left out; re-importing the
    same files gives the same files."""
    from features.imported import REPORT
    from ingest.run import run

    outcome = run(sources, mapping or [], out)
    typer.echo(outcome.report.summary(out / REPORT))
    if not outcome.frames:
        raise typer.Exit(code=1)


@app.command("check")
def check(
    sources: list[Path] = typer.Argument(..., help=SOURCES_HELP + " An import folder checks its Parquet files."),
    mapping: Optional[list[str]] = typer.Option(None, "--mapping", "-m", help=MAPPING_HELP),
    report: Optional[Path] = typer.Option(None, help="Also write the problems to this CSV file."),
) -> None:
    """The same validation as `import`, writing nothing: exit 0 when every row passes, 1 when any row or file
    has a problem (a pipeline can gate on it), 2 for a broken mapping or a missing file."""
    from ingest.run import run

    outcome = run(sources, mapping or [])
    if report is not None:
        outcome.report.write_csv(report)
    typer.echo(outcome.report.summary(report))
    raise typer.Exit(code=0 if outcome.report.ok else 1)
