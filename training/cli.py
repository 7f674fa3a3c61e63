"""`lossguard` command line: data generation, training, batch scoring, promotion, audit checks.

Each command imports its module lazily so that `lossguard --help` stays fast and one broken model does not
take the whole CLI down.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.settings import settings

app = typer.Typer(help="Lossguard: 声誉/文化/潜在利益 隐性损失预警", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="生成或检查数据 (Generate or check data).", no_args_is_help=True)
predict_app = typer.Typer(help="批量打分 (Batch scoring with the registered champion).", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志 (Audit log checks).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (hashed) for HR systems, managers and admins.", no_args_is_help=True)
feedback_app = typer.Typer(help="预警反馈 (Resolved warnings as labeled data for retraining).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(predict_app, name="predict")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")

TRAINABLE = ("sentiment", "loss_type", "function", "attrition", "spread")


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@data_app.command("generate")
def data_generate(
    employees: int = typer.Option(settings.employees, help="Number of employees in the synthetic company."),
    days: int = typer.Option(settings.days, help="Days of history to simulate."),
    seed: int = typer.Option(settings.seed, help="Random seed (same seed, same data)."),
    out: Path = typer.Option(settings.generated_dir, help="Output folder for the Parquet tables."),
) -> None:
    """Generate the seeded synthetic company (org, employees, posts, complaints, repost cascades)."""
    from synthetic import generate

    try:
        paths = generate(employees=employees, days=days, seed=seed, out_dir=out)
    except ValueError as exc:  # the generator names the argument that is out of range
        _fail(f"无法生成数据: {exc}")
    for table, path in paths.items():
        typer.echo(f"{table:12s} -> {path}")


@app.command("train")
def train(
    model: str = typer.Argument("all", help=f"One of {', '.join(TRAINABLE)} or all."),
    backend: str = typer.Option("linear", help="Sentiment backend: linear (fast CPU) or transformer."),
    base_model: Optional[str] = typer.Option(None, help="Transformer checkpoint: local path or hub id."),
    promote: bool = typer.Option(True, help="Run the champion/challenger gate after training."),
    force: bool = typer.Option(False, help="Promote even if the gate says no (recorded in MLflow)."),
    feedback: bool = typer.Option(True, help="First export resolved warnings from the store as extra labels."),
) -> None:
    """Train one model (or all), log it to MLflow, register it and run the promotion gate."""
    if model not in TRAINABLE + ("all",):
        _fail(f"未知模型 {model!r}; 可选: {', '.join(TRAINABLE)}, all")
    from training.pipeline import train_models

    if feedback and _store_exists(settings.warnings_db):
        typer.echo(_export_feedback(settings.warnings_db, settings.generated_dir / "feedback"))
    for line in train_models(model, backend=backend, base_model=base_model, promote=promote, force=force):
        typer.echo(line)


@app.command("evaluate")
def evaluate(
    model: str = typer.Argument(..., help=f"One of {', '.join(TRAINABLE)}."),
    version: Optional[str] = typer.Option(None, help="Challenger version; default the latest registered."),
) -> None:
    """Re-score the champion and a challenger on the same held-out data and print them side by side."""
    from training.evaluate import compare_versions

    try:
        comparison = compare_versions(model, version)
    except LookupError as exc:  # unknown model or nothing registered
        _fail(str(exc.args[0]))
    typer.echo(comparison.table().to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))


@app.command("promote")
def promote(
    model: str = typer.Argument(..., help=f"One of {', '.join(TRAINABLE)}."),
    version: Optional[str] = typer.Option(None, help="Version to promote; default the latest registered."),
    force: bool = typer.Option(False, help="Promote even if the gate says no (recorded in MLflow)."),
) -> None:
    """Re-score champion and challenger on the same data; the gate moves `champion` only if it is better."""
    from mlflow import MlflowClient

    from training.evaluate import promote as run_gate

    try:
        promoted, comparison = run_gate(model, version, force=force)
    except LookupError as exc:  # unknown model or nothing registered
        _fail(str(exc.args[0]))
    typer.echo(comparison.table().to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    reasons = MlflowClient().get_model_version(model, comparison.challenger).tags.get("gate_reasons", "")
    verdict = "已上线为 champion" if promoted else "未上线, champion 不变"
    typer.secho(f"{model} v{comparison.challenger}: {verdict} ({reasons})",
                fg=typer.colors.GREEN if promoted else typer.colors.YELLOW)


@feedback_app.command("export")
def feedback_export(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
    out: Path = typer.Option(settings.generated_dir / "feedback", help="Folder the next `train` reads labels from."),
) -> None:
    """Write resolved warnings (outcome, actual spread, corrected labels) as labeled rows for retraining."""
    typer.echo(_export_feedback(db or settings.warnings_db, out))


def _store_exists(url: str) -> bool:
    """An SQLite store that was never created has nothing to export (and must not be created by training)."""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def _export_feedback(db: str, out: Path) -> str:
    import pandas as pd

    from serving.store import WarningStore
    from training.feedback import export_feedback

    path = export_feedback(WarningStore(db).export_feedback(), out)
    counts = pd.read_csv(path)["label_source"].value_counts()
    return f"{counts.sum()} 条反馈 -> {path}  " + ", ".join(f"{k}: {v}" for k, v in counts.items())


@predict_app.command("sentiment")
def predict_sentiment(
    input: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV file with a text column."),
    output: Path = typer.Option(..., help="CSV file to write."),
    text_column: str = typer.Option("text", help="Name of the text column."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
) -> None:
    """Add label, p_neg, p_neu, p_pos, loss_type, function columns to a CSV of texts."""
    from training.sentiment import predict_file

    predict_file(input, output, text_column=text_column, model_uri=model_uri)


@predict_app.command("attrition")
def predict_attrition(
    input: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV export of employees."),
    output: Path = typer.Option(..., help="CSV file to write."),
    mapping: Optional[str] = typer.Option(None, help="Column mapping: ibm, or a YAML file path."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
) -> None:
    """Score attrition propensity with band and top 3 drivers per employee."""
    from training.attrition import predict_file

    predict_file(input, output, mapping=mapping, model_uri=model_uri)


@predict_app.command("spread")
def predict_spread(
    posts: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV/Parquet of posts."),
    reposts: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV/Parquet of repost events."),
    output: Path = typer.Option(..., help="CSV file to write."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
) -> None:
    """Forecast final reposts (P10/P50/P90), time to threshold, reach and regions per post."""
    from training.spread import predict_file

    predict_file(posts, reposts, output, model_uri=model_uri)


@audit_app.command("verify")
def audit_verify(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Check the hash chain of the audit log; names the first edited, inserted or deleted entry."""
    from serving.store import WarningStore  # the CLI is the app shell; training modules never import serving

    report = WarningStore(db or settings.warnings_db).verify_audit()
    if report.ok:
        typer.secho(f"审计日志完整: {report.checked} 条记录校验通过", fg=typer.colors.GREEN)
    else:
        _fail(f"审计日志被篡改: {report.problem}")


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="Who holds the key (a system or a person)."),
    role: str = typer.Option(..., help="hr_system, manager or admin."),
    unit: Optional[str] = typer.Option(None, help="Org unit a manager may see (with everything below it)."),
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from serving.auth import KeyStore

    try:
        key = KeyStore(settings.warnings_db).create(name, role, unit)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(key)


@keys_app.command("bootstrap")
def keys_bootstrap(
    out: Path = typer.Option(settings.generated_dir / "api_keys.txt", help="Where to write the demo keys."),
) -> None:
    """First start: create an admin, an HR-system and a manager key (scoped to one department) if none exist."""
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
             f"{department['unit_id']} {department['name']}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.chmod(0o600)
    typer.echo("API keys (shown once, also in " + str(out) + "):")
    for line in lines:
        typer.echo("  " + line)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
