"""Reading what people hand us: encodings, Excel, streaming in chunks, and writing CSV or Parquet by suffix."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from features.tables import TableWriter, detect_encoding, iter_table, read_table
from ingest.readers import read_source

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RNG = np.random.default_rng(3)
# Common characters of GBK, plus ones GBK lacks and GB18030 has (CJK Extension A 㐀-䶵 and the euro sign).
COMMON = "加班客服投诉公司年会产品质量部门经理员工离职薪酬满意度风险承受能力太低再也不买了"
GB18030_ONLY = "㐀㐁䶴€"


def _texts(n: int, alphabet: str) -> list[str]:
    return ["".join(RNG.choice(list(alphabet), int(RNG.integers(3, 30)))) for _ in range(n)]


@pytest.mark.parametrize("encoding,alphabet,expected", [
    ("utf-8", COMMON, "utf-8"), ("utf-8-sig", COMMON, "utf-8-sig"), ("gbk", COMMON, "gbk"),
    ("gb18030", COMMON + GB18030_ONLY, "gb18030")])
def test_encodings_are_detected_and_every_text_reads_back(tmp_path, encoding, alphabet, expected):
    texts = _texts(300, alphabet)
    frame = pd.DataFrame({"id": range(len(texts)), "text": texts})
    path = tmp_path / "posts.csv"
    path.write_bytes(frame.to_csv(index=False).encode(encoding))
    assert detect_encoding(path) == expected
    assert read_table(path, dtype=str)["text"].tolist() == texts
    assert [t for chunk in iter_table(path, 64) for t in chunk["text"]] == texts


def test_a_gbk_file_whose_first_megabyte_is_ascii_is_still_recognised(tmp_path):
    path = tmp_path / "late.csv"
    path.write_bytes(("text\n" + "ascii only\n" * 200_000 + "客服太差\n").encode("gbk"))
    assert detect_encoding(path) == "gbk"


def test_undecodable_bytes_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"text\n\x81\xff\xfe\x80\x80\n")
    with pytest.raises(InputError, match="binary.csv"):
        read_table(path)


def test_excel_fixture_keeps_cell_types_and_sheet():
    source = read_source(FIXTURES / "org_units.xlsx")
    assert source.encoding == "excel" and len(source.frame) == 10
    assert source.frame["成立日期"].map(lambda v: isinstance(v, datetime)).all()  # a date cell, not text
    assert list(source.rows) == list(range(10))


def test_gbk_fixture_reads_with_chinese_headers():
    source = read_source(FIXTURES / "complaints_gbk.csv")
    assert source.encoding == "gbk"
    assert list(source.frame.columns) == ["投诉编号", "内容", "渠道", "时间", "部门", "严重程度"]
    assert source.frame["严重程度"].dtype.kind == "i"  # numbers typed after reading as text
    assert source.frame["时间"].iloc[2] == "20240307"  # a compact date stays text for the date parser


def test_codes_with_leading_zeros_stay_text_and_na_tokens_are_empty(tmp_path):
    path = tmp_path / "employees.csv"
    path.write_text("employee_id,score,note\n007,1.5,N/A\n010,NA,x\n123,3,\n", encoding="utf-8")
    frame = read_source(path).frame
    assert frame["employee_id"].tolist() == ["007", "010", "123"]
    assert frame["score"].dtype.kind == "f" and frame["score"].isna().tolist() == [False, True, False]
    assert frame["note"].isna().tolist() == [True, False, True]


def test_a_line_with_too_many_fields_is_reported_and_later_rows_keep_their_numbers(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n8,9\n", encoding="utf-8")
    source = read_source(path, entity="posts")
    assert source.frame["a"].tolist() == [1, 6, 8]
    assert list(source.rows) == [0, 2, 3]
    assert [(p.row, p.field) for p in source.problems] == [(1, "*")] and "第 3 行" in source.problems[0].reason


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streaming_chunks_are_bounded_and_the_writer_appends_them(tmp_path, suffix):
    frame = pd.DataFrame({"text": _texts(1000, COMMON), "n": np.arange(1000)})
    source = tmp_path / f"in{suffix}"
    frame.to_parquet(source) if suffix == ".parquet" else frame.to_csv(source, index=False)
    sizes, target = [], tmp_path / f"out{suffix}"
    with TableWriter(target) as writer:
        for chunk in iter_table(source, 128):
            sizes.append(len(chunk))
            writer.write(chunk)
    assert max(sizes) == 128 and sum(sizes) == 1000
    back = read_table(target, dtype=str) if suffix == ".csv" else read_table(target)
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["n"].astype(int).tolist() == list(range(1000))


def test_a_failed_write_leaves_no_file_under_the_real_name(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), TableWriter(target) as writer:
        writer.write(pd.DataFrame({"a": [1]}))
        raise RuntimeError("scoring failed half way")
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_output_suffix_must_be_csv_or_parquet(tmp_path):
    with pytest.raises(InputError, match="csv"):
        TableWriter(tmp_path / "out.xlsx")
