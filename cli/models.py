"""`lossguard train | evaluate | promote`: the model lifecycle, driven by the model registry."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.errors import InputError
from features.model_specs import SPECS
from features.settings import settings

MODELS = ", ".join(SPECS)


def _known(model: str, allow_all: bool = False) -> str:
    """An unknown model name is a usage error (exit 2), named with the choices."""
    if model not in SPECS and not (allow_all and model == "all"):
        raise InputError(f"未知模型 {model!r}; 可选: {MODELS}{', all' if allow_all else ''}", field="model")
    return model


def train(
    model: str = typer.Argument("all", help=f"One of {MODELS} or all."),
    backend: str = typer.Option("linear", help="Sentiment backend: linear (fast CPU) or transformer."),
    base_model: Optional[str] = typer.Option(None, help="Transformer checkpoint: local path or hub id."),
    promote: bool = typer.Option(True, help="Run the champion/challenger gate after training."),
    force: bool = typer.Option(False, help="Promote even if the gate says no (recorded in MLflow)."),
    feedback: bool = typer.Option(True, help="First export resolved warnings from the store as extra labels."),
    data: Optional[Path] = typer.Option(
        None, "--data", file_okay=False,
        help="Training data folder: what `lossguard data import` wrote (a company's own data), or for spread any "
             "folder with posts.parquet + reposts.parquet; default per model (the synthetic company, real cascades)."),
) -> None:
    """Train one model (or all), log it to MLflow, register it and run the promotion gate."""
    from cli.feedback import export_feedback_from, store_exists
    from training.pipeline import train_models

    _known(model, allow_all=True)
    if feedback and store_exists(settings.warnings_db):
        typer.echo(export_feedback_from(settings.warnings_db, settings.generated_dir / "feedback"))
    for line in train_models(model, backend=backend, base_model=base_model, promote=promote, force=force,
                             data_dir=data):
        typer.echo(line)


def evaluate(
    model: str = typer.Argument(..., help=f"One of {MODELS}."),
    version: Optional[str] = typer.Option(None, help="Challenger version; default the latest registered."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate on this imported data folder."),
) -> None:
    """Re-score the champion and a challenger on the same held-out data and print them side by side."""
    from training.evaluate import compare_versions

    comparison = compare_versions(_known(model), version, data)
    typer.echo(comparison.table().to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))


def promote(
    model: str = typer.Argument(..., help=f"One of {MODELS}."),
    version: Optional[str] = typer.Option(None, help="Version to promote; default the latest registered."),
    force: bool = typer.Option(False, help="Promote even if the gate says no (recorded in MLflow)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Re-score both on this imported data folder."),
) -> None:
    """Re-score champion and challenger on the same data; the gate moves `champion` only if it is better."""
    from mlflow import MlflowClient

    from training.evaluate import promote as run_gate

    promoted, comparison = run_gate(_known(model), version, force=force, data_dir=data)
    typer.echo(comparison.table().to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))
    reasons = MlflowClient().get_model_version(model, comparison.challenger).tags.get("gate_reasons", "")
    verdict = "已上线为 champion" if promoted else "未上线, champion 不变"
    typer.secho(f"{model} v{comparison.challenger}: {verdict} ({reasons})",
                fg=typer.colors.GREEN if promoted else typer.colors.YELLOW)
