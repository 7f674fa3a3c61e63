"""`lossguard data import` / `data check`: a company's own files in, validated Parquet out, every dropped row named.

Fixtures: tests/fixtures (made by tests/fixtures/make_fixtures.py): an Excel org chart, a GBK complaint export
with Chinese headers and its mapping, an IBM-shaped HR export.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from features.imported import REPORT, load_imported
from ingest.run import run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ORG = FIXTURES / "org_units.xlsx"
COMPLAINTS = FIXTURES / "complaints_gbk.csv"
COMPLAINT_MAPPING = FIXTURES / "complaints_cn.yaml"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_excel_and_gbk_exports_import_with_every_dropped_row_named(tmp_path):
    out = tmp_path / "imported"
    result = invoke("data", "import", ORG, COMPLAINTS, "--mapping", COMPLAINT_MAPPING, "--out", out)
    assert result.exit_code == 0, result.output
    assert "保留 8 行, 丢弃 2 行" in result.output and "保留 5 行, 丢弃 2 行" in result.output
    tables = load_imported(out, "org_units", "complaints")
    units, complaints = tables["org_units"], tables["complaints"]
    assert "U400" not in set(units["unit_id"]) and "U510" not in set(units["unit_id"])  # finance; orphan
    assert units.set_index("unit_id")["level"].to_dict() == {"U000": 0, "U100": 1, "U110": 2, "U120": 2, "U200": 1,
                                                             "U210": 2, "U300": 1, "U310": 2}
    assert complaints["complaint_id"].tolist() == ["C001", "C002", "C003", "C004", "C007"]
    assert complaints["created_at"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-03-05 09:30", "2024-03-06 14:05", "2024-03-07 00:00", "2024-03-08 08:00", "2024-03-10 00:00"]
    assert complaints["channel"].tolist() == ["complaint_hotline", "online_chat", "weibo", "app_review", "app_review"]
    report = pd.read_csv(out / REPORT, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(report.columns) == ["entity", "file", "row", "field", "value", "reason"]
    named = set(zip(report["entity"], report["row"], report["field"], strict=True))
    assert named == {("org_units", "8", "function"), ("org_units", "9", "parent_id"),
                     ("complaints", "4", "created_at"), ("complaints", "5", "severity")}
    ambiguous = report[report["field"] == "created_at"].iloc[0]
    assert ambiguous["value"] == "03/05/2024" and "有歧义" in ambiguous["reason"]


def test_reimporting_the_same_files_gives_the_same_bytes_and_no_duplicates(tmp_path):
    out = tmp_path / "imported"
    args = ("data", "import", ORG, COMPLAINTS, "--mapping", COMPLAINT_MAPPING, "--out", out)
    assert invoke(*args).exit_code == 0
    first = digests(out)
    # the folder names the same two files again (read once), plus an export no mapping claims (reported)
    again = invoke("data", "import", ORG, FIXTURES, COMPLAINTS, "--mapping", COMPLAINT_MAPPING, "--out", out)
    assert again.exit_code == 0 and "ibm_like.csv" in again.output
    tables = ("org_units.parquet", "complaints.parquet")
    assert {k: digests(out)[k] for k in tables} == {k: first[k] for k in tables}
    assert len(pd.read_parquet(out / "complaints.parquet")) == 5
    assert invoke(*args).exit_code == 0
    assert digests(out) == first  # tables, manifest and report: byte for byte


def test_check_writes_nothing_and_its_exit_code_gates_a_pipeline(tmp_path):
    out = tmp_path / "imported"
    dirty = invoke("data", "check", ORG, COMPLAINTS, "--mapping", COMPLAINT_MAPPING)
    assert dirty.exit_code == 1 and "共 4 处问题" in dirty.output
    assert not out.exists() and not list(tmp_path.iterdir())
    assert invoke("data", "import", ORG, COMPLAINTS, "--mapping", COMPLAINT_MAPPING, "--out", out).exit_code == 0
    before = digests(out)
    clean = invoke("data", "check", out)  # what an import wrote passes the same checks
    assert clean.exit_code == 0, clean.output
    assert "全部通过" in clean.output and digests(out) == before
    report = tmp_path / "problems.csv"
    assert invoke("data", "check", COMPLAINTS, "--mapping", COMPLAINT_MAPPING, "--report", report).exit_code == 1
    assert len(pd.read_csv(report, encoding="utf-8-sig")) == 2  # without the org chart no department is checked


@pytest.mark.parametrize("args, named", [
    (("data", "check", "no/such/file.csv"), "no/such/file.csv"),
    (("data", "import", COMPLAINTS, "--mapping", "no_such_mapping"), "no_such_mapping"),
    (("data", "check", COMPLAINTS, "--mapping", "BROKEN"), "colums"),
])
def test_missing_files_and_broken_mappings_are_usage_errors(tmp_path, args, named):
    if "BROKEN" in args:
        broken = tmp_path / "broken.yaml"
        broken.write_text("entity: complaints\ncolums: {complaint_id: 投诉编号}\n", encoding="utf-8")
        args = tuple(str(broken) if a == "BROKEN" else a for a in args)
    result = invoke(*args)
    assert result.exit_code == 2 and named in result.output


def _posts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({
        "post_id": [f"P{i}" for i in range(n)], "text": [f"第{i}条: 加班太多" for i in range(n)],
        "channel": rng.choice(["weibo", "zhihu", "employee_forum"], n),
        "created_at": [f"2025/{m}/{d} 10:00" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n),
                                                              strict=True)],
        "author_followers": rng.integers(0, 5000, n), "internal": rng.choice(["是", "否"], n)})


@pytest.mark.parametrize("seed", range(3))
def test_bad_rows_never_stop_good_ones(tmp_path, seed):
    """Whatever share of rows is broken, every good row is kept and every bad one is reported once."""
    rng = np.random.default_rng(seed)
    posts = _posts(400, rng).astype(object)
    broken = rng.choice(400, int(rng.integers(20, 200)), replace=False)
    corruptions = [("channel", "facebook"), ("created_at", "05/03/2025"), ("author_followers", "-3"),
                   ("text", " "), ("internal", "maybe"), ("created_at", "2099-01-01")]
    for row in broken:
        field, value = corruptions[int(rng.integers(0, len(corruptions)))]
        posts.at[int(row), field] = value
    path = tmp_path / "posts_2025.csv"
    posts.to_csv(path, index=False)
    (tmp_path / "unreadable_posts.parquet").write_bytes(b"not parquet at all")
    outcome = run([path, tmp_path / "unreadable_posts.parquet"], [], tmp_path / "out")
    kept = pd.read_parquet(tmp_path / "out" / "posts.parquet")
    assert sorted(kept["post_id"]) == sorted(f"P{i}" for i in set(range(400)) - set(broken.tolist()))
    rows = [p.row for p in outcome.report.problems if p.row is not None]
    assert sorted(rows) == sorted(broken.tolist())
    assert any(p.row is None and "unreadable" in p.file for p in outcome.report.problems)


def test_org_cycles_orphan_reposts_and_unlabelled_texts_are_refused(tmp_path):
    pd.DataFrame({"unit_id": ["A", "B", "C", "D"], "name": ["甲", "乙", "丙", "丁"], "parent_id": [None, "C", "B", "A"],
                  "function": ["management", "sales", "sales", "hr"]}).to_csv(tmp_path / "org_units.csv", index=False)
    pd.DataFrame({"post_id": ["P1"], "text": ["好"], "channel": ["weibo"], "created_at": ["2025-01-01"],
                  "author_followers": [3], "internal": [False]}).to_csv(tmp_path / "posts.csv", index=False)
    pd.DataFrame({"post_id": ["P1", "P9"], "timestamp": ["2025-01-01 01:00", "2025-01-01 02:00"],
                  "user_followers": [5, 6]}).to_csv(tmp_path / "reposts.csv", index=False)
    pd.DataFrame({"text": ["加班太多", "年会", "食堂好吃"], "sentiment": ["neg", None, "pos"],
                  "loss_type": ["culture", None, None]}).to_csv(tmp_path / "labelled_texts.csv", index=False)
    outcome = run([tmp_path], [])
    named = {(p.entity, p.row, p.field) for p in outcome.report.problems}
    assert named == {("org_units", 1, "parent_id"), ("org_units", 2, "parent_id"), ("reposts", 1, "post_id"),
                     ("labelled_texts", 1, "sentiment")}
    assert "有环" in next(p.reason for p in outcome.report.problems if p.entity == "org_units")
    assert outcome.frames["org_units"]["unit_id"].tolist() == ["A", "D"]
    assert outcome.frames["labelled_texts"]["text"].tolist() == ["加班太多", "食堂好吃"]


def test_the_synthetic_companys_tables_import_clean(synthetic_dir, tmp_path):
    """The generator's tables are the contracts' own shape: imported as they are, nothing is dropped."""
    files = [synthetic_dir / f"{name}.parquet" for name in ("org_units", "snapshots", "posts", "complaints", "reposts")]
    outcome = run(files, [], tmp_path / "out")
    assert outcome.report.problems == []
    for name, source in (("employees", "snapshots"), ("posts", "posts"), ("reposts", "reposts")):
        assert len(outcome.frames[name]) == len(pd.read_parquet(synthetic_dir / f"{source}.parquet"))
    assert outcome.manifest["employees"]["design"] == "history"
