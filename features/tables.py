"""Reading the tables people hand us (CSV or Parquet) with one clear error naming the file, never a traceback.

Every batch entry point (`lossguard predict …`, the HR export reader) reads through here, so an unreadable
file, a wrong encoding or a missing column is reported the same way everywhere.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from features.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet")


def read_table(path: Path | str, *, dtype: type | None = None, keep_default_na: bool = True) -> pd.DataFrame:
    """A CSV (UTF-8, with or without BOM) or Parquet file as a DataFrame; InputError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: 文件不存在", field=str(path))
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=dtype, keep_default_na=keep_default_na, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: 不是 UTF-8 编码的 CSV ({exc.reason}, 字节位置 {exc.start})",
                         field=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: 无法解析为 CSV ({exc})", field=str(path)) from None
    except (OSError, ValueError) as exc:  # pyarrow: not a Parquet file, truncated footer, ...
        raise InputError(f"{path}: 无法读取 ({type(exc).__name__}: {exc})", field=str(path)) from None


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: Path | str) -> None:
    """InputError naming the first missing column and the columns present."""
    for column in columns:
        if column not in frame.columns:
            raise InputError(f"{source}: 缺少列 {column!r}; 现有列: {list(map(str, frame.columns))}", field=column)
