"""`lossguard predict …`: batch scoring with the registered champion (or any model URI)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from features.model_specs import BatchResult

app = typer.Typer(help="批量打分 (Batch scoring with the registered champion).", no_args_is_help=True)


def _report(model: str, result: BatchResult) -> None:
    refused = f", 拒绝 {result.errors} 行 (原因见输出的 error 列)" if result.errors else ""
    typer.echo(f"[{model}] 已打分 {result.scored} 行{refused} -> {result.output}", err=True)


@app.command("sentiment")
def sentiment(
    input: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV, Parquet or .xlsx file with a text column."),
    output: Path = typer.Option(..., help="File to write: .csv or .parquet (by the suffix)."),
    text_column: str = typer.Option("text", help="Name of the text column."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
    workers: Optional[int] = typer.Option(None, help="Scoring processes; default one per CPU but one "
                                          "(LOSSGUARD_PREDICT_WORKERS); 0 scores in this process."),
    chunk_rows: int = typer.Option(20_000, help="Rows read, scored and written at a time (memory stays flat)."),
) -> None:
    """Add label, p_neg, p_neu, p_pos, loss_type, function columns to a table of texts, streaming it in chunks."""
    from training.predict_text import predict_file

    _report("sentiment", predict_file(input, output, text_column=text_column, model_uri=model_uri, workers=workers,
                                      chunk_rows=chunk_rows))


@app.command("attrition")
def attrition(
    input: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV, Parquet or .xlsx export of employees."),
    output: Path = typer.Option(..., help="File to write: .csv or .parquet (by the suffix)."),
    mapping: Optional[str] = typer.Option(None, help="Column mapping: ibm, or a YAML file path."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
) -> None:
    """Score attrition propensity with band and top 3 drivers per employee."""
    from training.attrition import predict_file

    _report("attrition", predict_file(input, output, mapping=mapping, model_uri=model_uri))


@app.command("spread")
def spread(
    posts: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV/Parquet of posts."),
    reposts: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV/Parquet of repost events."),
    output: Path = typer.Option(..., help="File to write: .csv or .parquet (by the suffix)."),
    model_uri: Optional[str] = typer.Option(None, help="Model URI; default the registered champion."),
) -> None:
    """Forecast final reposts (P10/P50/P90), time to threshold, reach and regions per post."""
    from training.spread import predict_file

    _report("spread", predict_file(posts, reposts, output, model_uri=model_uri))
