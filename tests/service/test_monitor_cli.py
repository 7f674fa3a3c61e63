"""`lossguard monitor ingest`: the batch path into the monitoring series, from a file or an import folder.

Counts from a batch must equal what was sent, per kind, whether the texts come as one file or as the posts and
complaints a `lossguard data import` folder holds; a folder with neither is refused naming what is missing.
"""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli import app

pytestmark = pytest.mark.slow


def _counts(db: str) -> pd.DataFrame:
    with sa.create_engine(db).connect() as conn:
        return pd.read_sql(sa.text("SELECT kind, SUM(total) AS total, SUM(negative) AS negative "
                                   "FROM series_counts GROUP BY kind"), conn).set_index("kind")


def test_an_import_folder_is_counted_per_table(champions, company, tmp_path):
    posts = pd.read_parquet(company / "posts.parquet").head(400)
    complaints = pd.read_parquet(company / "complaints.parquet").head(150)
    folder = tmp_path / "import"
    folder.mkdir()
    posts[["text", "channel", "created_at", "department_id"]].to_parquet(folder / "posts.parquet")
    complaints[["text", "channel", "created_at", "department_id"]].to_parquet(folder / "complaints.parquet")
    db = f"sqlite:///{tmp_path / 'warnings.db'}"

    result = CliRunner().invoke(app, ["monitor", "ingest", str(folder), "--db", db])

    assert result.exit_code == 0, result.output
    counts = _counts(db)
    assert counts.at["post", "total"] == 400 and counts.at["complaint", "total"] == 150
    assert 0 < counts.at["post", "negative"] < 400  # scored, not all one class


def test_a_single_file_counts_as_the_kind_given(champions, company, tmp_path):
    posts = pd.read_parquet(company / "posts.parquet").head(120)[["text", "channel", "created_at"]]
    source = tmp_path / "posts.csv"
    posts.to_csv(source, index=False)
    db = f"sqlite:///{tmp_path / 'warnings.db'}"

    result = CliRunner().invoke(app, ["monitor", "ingest", str(source), "--kind", "post", "--db", db])

    assert result.exit_code == 0, result.output
    assert _counts(db).at["post", "total"] == 120


def test_a_folder_without_posts_or_complaints_is_refused(champions, tmp_path):
    result = CliRunner().invoke(app, ["monitor", "ingest", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'w.db'}"])

    assert result.exit_code == 2
    assert "posts.parquet" in result.output and "Traceback" not in result.output


def test_a_file_without_a_needed_column_is_refused_naming_it(champions, company, tmp_path):
    source = tmp_path / "posts.csv"
    pd.read_parquet(company / "posts.parquet").head(5)[["text", "created_at"]].to_csv(source, index=False)

    result = CliRunner().invoke(app, ["monitor", "ingest", str(source), "--db", f"sqlite:///{tmp_path / 'w.db'}"])

    assert result.exit_code == 2
    assert "'channel'" in result.output and "Traceback" not in result.output
