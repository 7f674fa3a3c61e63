"""Reading and writing the tables people hand us (CSV, Parquet, Excel) with one clear error naming the file.

Every batch entry point (`lossguard predict …`, the HR export reader, `lossguard data import`) reads through
here, so an unreadable file, a wrong encoding or a missing column is reported the same way everywhere.

Encodings: Chinese exports arrive as UTF-8 (with or without the BOM Excel writes) or as GBK / GB18030 (what
Excel and most HR systems on Chinese Windows save). The encoding is decided by decoding the whole file
incrementally (a block at a time, so a 10 GB file costs one read, not 10 GB of memory): a GBK file whose first
megabyte happens to be ASCII is still recognised.

Streaming: `iter_table` yields bounded chunks (pandas' CSV chunks, Parquet record batches) and `TableWriter`
appends them to CSV or Parquet by the output's suffix, so scoring 10M texts never holds them all in memory.
"""
from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from features.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet", ".xlsx")
OUTPUT_SUFFIXES = (".csv", ".parquet")
UTF8_BOM = codecs.BOM_UTF8
# Tried in this order; GBK is a subset of GB18030, so GB18030 only wins when the file uses what GBK lacks.
ENCODINGS = ("utf-8", "gbk", "gb18030")
_BLOCK = 1 << 20


def detect_encoding(path: Path | str) -> str:
    """'utf-8-sig' (BOM), 'utf-8', 'gbk' or 'gb18030': the first that decodes the whole file; InputError if none.

    Each candidate is checked with an incremental decoder over 1 MiB blocks, so memory stays flat."""
    path = Path(path)
    with path.open("rb") as handle:
        if handle.read(len(UTF8_BOM)) == UTF8_BOM:
            return "utf-8-sig"
    problems = []
    for encoding in ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        try:
            with path.open("rb") as handle:
                while block := handle.read(_BLOCK):
                    decoder.decode(block)
                    offset += len(block)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError as exc:
            problems.append(f"{encoding}: 字节位置 {offset + exc.start}")
    raise InputError(f"{path}: 无法识别的文本编码 (已尝试 UTF-8、GBK、GB18030; {'; '.join(problems)})",
                     field=str(path))


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: 文件不存在", field=str(path))
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise InputError(f"{path}: 不支持旧版 Excel (.xls); 请在 Excel 中另存为 .xlsx 或 CSV", field=str(path))
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: 不支持的文件类型 {suffix or '(无后缀)'}; 支持 {', '.join(TABLE_SUFFIXES)}",
                         field=str(path))


def _unreadable(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, (pd.errors.ParserError, pd.errors.EmptyDataError)):
        return InputError(f"{path}: 无法解析为 CSV ({exc})", field=str(path))
    return InputError(f"{path}: 无法读取 ({type(exc).__name__}: {exc})", field=str(path))


def read_table(path: Path | str, *, dtype: type | None = None, keep_default_na: bool = True,
               sheet: str | int | None = None, encoding: str | None = None) -> pd.DataFrame:
    """A CSV (UTF-8 with or without BOM, GBK, GB18030), Parquet or Excel (.xlsx) file as a DataFrame.

    `dtype`/`keep_default_na` apply to CSV (str + False reads every cell verbatim); Excel cells keep the types
    Excel stored (numbers, dates, text), from `sheet` (name or 0-based position; default the first)."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".xlsx":
            return pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object, engine="openpyxl")
        return pd.read_csv(path, dtype=dtype, keep_default_na=keep_default_na,
                           encoding=encoding or detect_encoding(path))
    except InputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError, KeyError) as exc:
        # pyarrow: not a Parquet file, truncated footer; openpyxl: not a zip, missing sheet
        raise _unreadable(path, exc) from None


def count_rows(path: Path | str) -> int | None:
    """Rows in a Parquet file from its footer (free); None for CSV (it would take a full read)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None


def iter_table(path: Path | str, chunk_rows: int, *, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The table in chunks of at most `chunk_rows` rows, CSV cells as verbatim strings. Memory is bounded by one
    chunk: CSV is parsed `chunk_rows` at a time and Parquet read one record batch at a time. Excel files (at most
    ~1M rows by the format) are read whole and then sliced."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()
            return
        if suffix == ".xlsx":
            whole = read_table(path)
            for start in range(0, len(whole), chunk_rows):
                yield whole.iloc[start:start + chunk_rows].reset_index(drop=True)
            return
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=detect_encoding(path),
                             chunksize=chunk_rows, usecols=columns)
        with reader:
            yield from reader
    except InputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def check_output(path: Path | str) -> Path:
    """The output path if its suffix says CSV or Parquet, else InputError naming the choices."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"{path}: 输出文件须以 {' 或 '.join(OUTPUT_SUFFIXES)} 结尾", field="output")
    return path


class TableWriter:
    """Append DataFrame chunks to one CSV or Parquet file (chosen by the suffix); the first chunk fixes the
    columns and, for Parquet, the schema (later chunks are cast to it, so an all-empty column in one chunk does
    not change the file's types). Written to a temporary name and moved into place on success, so a failed run
    never leaves a half-written file under the real name."""

    def __init__(self, path: Path | str, *, encoding: str = "utf-8"):
        self.path = check_output(path)
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.encoding = encoding
        self.partial = self.path.with_name(self.path.name + ".partial")
        self._writer = None
        self._schema = None
        self._columns: list[str] | None = None
        self.rows = 0

    def __enter__(self) -> TableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, chunk: pd.DataFrame) -> None:
        if self._columns is None:
            self._columns = [str(c) for c in chunk.columns]
        chunk = chunk.set_axis([str(c) for c in chunk.columns], axis=1).reindex(columns=self._columns)
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if self._writer is None:
                self._schema = table.schema.remove_metadata()
                self._writer = pq.ParquetWriter(self.partial, self._schema)
            self._writer.write_table(table.cast(self._schema))
        else:
            first = self._writer is None
            if first:
                self._writer = self.partial.open("w", encoding=self.encoding, newline="")
            chunk.to_csv(self._writer, index=False, header=first, quoting=csv.QUOTE_MINIMAL)
        self.rows += len(chunk)

    def __exit__(self, kind, value, traceback) -> None:
        if self._writer is not None:
            self._writer.close()
        if kind is None:
            if self._writer is None:  # no chunk at all: an empty file with no columns
                self.partial.write_text("", encoding=self.encoding)
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: Path | str) -> None:
    """InputError naming the first missing column and the columns present."""
    for column in columns:
        if column not in frame.columns:
            raise InputError(f"{source}: 缺少列 {column!r}; 现有列: {list(map(str, frame.columns))}", field=column)
