"""`lossguard monitor …`: batch import into the monitoring series, spike scans over a period, effects.

The service counts what comes through /assess; these commands count what comes in batches: posts or complaints
scored here with the champion models (`ingest`), or volume counts a social-listening tool exports (`import-series`,
the shape of the synthetic company's series.parquet). `scan` files the trend warnings the live scan would have
filed over a past period; `effects` prints the measured effect of resolved warnings.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from features.settings import settings

app = typer.Typer(help="监测：声量序列、异常检测、整改效果 (Monitoring over time).", no_args_is_help=True)
CHUNK = 5000


def _monitor(db: str | None):
    from serving.monitoring.monitor import Monitor
    from serving.owners import OrgChart
    from serving.policy import Policy
    from serving.roster import data_tables
    from serving.store import WarningStore

    policy = Policy.load()
    tables = data_tables()  # the imported chart under LOSSGUARD_SERVE_DATA_DIR, as the service uses
    chart = OrgChart.from_frame(tables["org_units"], tables["employees"])
    return Monitor(WarningStore(db or settings.warnings_db, policy=policy), policy, chart, background=False)


@app.command("import-series")
def import_series(
    path: Path = typer.Argument(..., help="Counts per bucket (Parquet/CSV): bucket_start, department_id, channel, "
                                         "loss_type, keyword_category, kind, total, negative, neg_reach."),
    align_now: bool = typer.Option(False, help="Shift by whole weeks so the last bucket falls in the past week "
                                               "(a demo of old data; the weekly rhythm is kept)."),
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Add volume counts (e.g. a social-listening export, or the synthetic company's series.parquet)."""
    import pandas as pd

    from features.tables import read_table

    frame = read_table(path)
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"])
    if align_now:
        weeks = (pd.Timestamp.now(tz="UTC").tz_localize(None) - frame["bucket_start"].max()) // pd.Timedelta(weeks=1)
        frame["bucket_start"] += pd.Timedelta(weeks=int(weeks))
    monitor = _monitor(db)
    records = frame.to_dict("records")
    for i in range(0, len(records), CHUNK):
        monitor.store.add_counts(records[i:i + CHUNK])
    typer.echo(f"{len(records)} 行计数 -> {monitor.store.url}  "
               f"({frame['bucket_start'].min()} ~ {frame['bucket_start'].max()})")


@app.command("ingest")
def ingest(
    path: Path = typer.Argument(..., help="Posts or complaints (Parquet/CSV) with text, channel, created_at and "
                                         "optionally department_id, author_followers; or a folder "
                                         "`lossguard data import` wrote (its posts and complaints)."),
    kind: str = typer.Option("post", help="post or complaint (a file); a folder says it per table"),
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Score texts with the champion models and add them to the counts (the batch path beside /assess)."""
    from features.errors import InputError

    if path.is_dir():
        tables = {k: path / f"{t}.parquet" for k, t in (("post", "posts"), ("complaint", "complaints"))}
        found = {k: p for k, p in tables.items() if p.is_file()}
        if not found:
            raise InputError(f"{path}: 没有 posts.parquet 或 complaints.parquet (先用 `lossguard data import`)")
        for table_kind, table in found.items():
            _ingest_file(table, table_kind, db)
        return
    _ingest_file(path, kind, db)


def _ingest_file(path: Path, kind: str, db: str | None) -> None:
    import pandas as pd

    from features.errors import InputError
    from features.keywords import KeywordLibrary
    from features.modelio import load_champion
    from features.tables import read_table, require_columns
    from features.text_batch import TextBatchScorer
    from serving.monitoring.series import SeriesEvent, fold, keyword_category

    if kind not in ("post", "complaint"):
        raise InputError(f"kind: 应为 post 或 complaint, 实为 {kind!r}")
    frame = read_table(path)
    require_columns(frame, ("text", "channel", "created_at"), path)
    monitor = _monitor(db)
    scorer = TextBatchScorer(*(load_champion(name).estimator for name in ("sentiment", "loss_type", "function")))
    keywords = KeywordLibrary.load(settings.keywords_path)
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None)
    total = 0
    for i in range(0, len(frame), CHUNK):
        part = frame.iloc[i:i + CHUNK]
        texts = part["text"].astype(str).tolist()
        scored = scorer.score(texts)  # the three text models' shared work done once, as in serving
        labels, losses = scored["label"].tolist(), scored["loss_type"].tolist()
        followers = part["author_followers"] if "author_followers" in part else pd.Series(0, index=part.index)
        departments = part["department_id"] if "department_id" in part else pd.Series(None, index=part.index)
        events = [SeriesEvent(c.to_pydatetime(), d if isinstance(d, str) else None, ch, loss,
                              keyword_category(keywords.find(t)), kind, label == "neg", int(f or 0))
                  for c, d, ch, loss, t, label, f in zip(created.iloc[i:i + CHUNK], departments, part["channel"],
                                                         losses, texts, labels, followers.fillna(0), strict=True)]
        total += monitor.store.add_counts(fold(events, monitor.config.bucket_minutes))
    typer.echo(f"{len(frame)} 条{'帖子' if kind == 'post' else '投诉'} -> {total} 行计数")


@app.command("scan")
def scan(
    start: datetime = typer.Option(..., "--from", help="First bucket to scan (UTC)."),
    end: datetime = typer.Option(..., "--to", help="Scan up to here (UTC)."),
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """File the trend warnings the live scan would have filed over [from, to)."""
    filed = _monitor(db).replay(start, end)
    warnings = {f.record.id: f.record for f in filed}
    typer.echo(f"{len(filed)} 次异常 -> {len(warnings)} 条声量预警")
    for record in warnings.values():
        typer.echo(f"  #{record.id} {record.grade} {record.department_id} {record.decision['reasons'][0]}")


@app.command("effects")
def effects(
    department: Optional[str] = typer.Option(None, help="Only this unit and below."),
    db: Optional[str] = typer.Option(None, help="Warning store URL; default LOSSGUARD_WARNINGS_DB."),
) -> None:
    """Print the measured effect (DiD against matched departments) of every resolved warning, as JSON lines."""
    for effect in _monitor(db).effects_for(None, department)["effects"]:
        effect.pop("chart", None)
        typer.echo(json.dumps(effect, ensure_ascii=False))
