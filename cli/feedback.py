"""`lossguard feedback export`: resolved warnings become labeled rows for the next training."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.settings import settings

app = typer.Typer(help="预警反馈 (Resolved warnings as labeled data for retraining).", no_args_is_help=True)


@app.command("export")
def export(
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
    out: Path = typer.Option(settings.generated_dir / "feedback", help="Folder the next `train` reads labels from."),
) -> None:
    """Write resolved warnings (outcome, actual spread, corrected labels, measured effect) as labeled rows."""
    typer.echo(export_feedback_from(db or settings.warnings_db, out))


def store_exists(url: str) -> bool:
    """An SQLite store that was never created has nothing to export (and must not be created by training)."""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def export_feedback_from(db: str, out: Path) -> str:
    import pandas as pd

    from serving.store import WarningStore
    from training.feedback import export_feedback

    store = WarningStore(db)
    path = export_feedback(store.export_feedback(effects=_effects(store)), out)
    counts = pd.read_csv(path)["label_source"].value_counts()
    return f"{counts.sum()} 条反馈 -> {path}  " + ", ".join(f"{k}: {v}" for k, v in counts.items())


def _effects(store) -> dict[int, dict] | None:
    """The measured effect of each resolved warning when the org chart is there to pick control departments."""
    import pandas as pd

    from serving.monitoring.monitor import Monitor
    from serving.owners import OrgChart

    folder = settings.generated_dir
    if not (folder / "org_units.parquet").exists():
        return None
    chart = OrgChart.from_frame(pd.read_parquet(folder / "org_units.parquet"))
    found = Monitor(store, store.policy, chart, background=False).effects_for(None)["effects"]
    return {effect["warning_id"]: effect for effect in found}
