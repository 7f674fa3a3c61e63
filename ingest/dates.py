"""Dates as Chinese HR systems, Excel and social-media feeds write them, read strictly.

Accepted: year first with `-`, `/`, `.` or 年月日 between the parts (`2024-03-05`, `2024/3/5`, `2024.3.5`,
`2024年3月5日`), the compact `20240305`, each optionally followed by a time (`2024-03-05 14:30`, `…T14:30:05.123`,
`2024年3月5日 14:30`) and a zone (`Z`, `+08:00`, `+0800`; converted to UTC like the contracts do), plus values a
reader already typed (Excel date cells, Parquet timestamps).

Refused, naming the row and field: a day and a month before the year (`03/05/2024`, `5/3/24`, `24/3/5`) — 5 March
in China, 3 May in an American export, and nothing in the text says which — and anything else that is not a date
(`2025-02-30`, `last tuesday`, an Excel serial number such as 45356). Guessing a date is how a leave date lands a
month off and a label silently flips.

Parsing is vectorised over the distinct values (HR columns repeat a few hundred dates over many rows): one regex
pass and one `to_datetime` over the components, no Python loop per row.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_SEP = r"\s*(?:[-/.]|年)\s*"
_YMD = (rf"(?P<y>\d{{4}}){_SEP}(?P<m>\d{{1,2}})\s*(?:[-/.]|月)\s*(?P<d>\d{{1,2}})\s*日?"
        r"|(?P<cy>\d{4})(?P<cm>\d{2})(?P<cd>\d{2})")
_TIME = r"(?:(?:\s+|T)(?P<H>\d{1,2})[:：](?P<M>\d{2})(?:[:：](?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
_ZONE = r"\s*(?P<z>Z|[+-]\d{2}:?\d{2})?"
DATE_PATTERN = rf"^\s*(?:{_YMD}){_TIME}{_ZONE}\s*$"
# day and month before the year, or a two-digit year first: the order of the parts cannot be known
AMBIGUOUS_PATTERN = r"^\s*(?:\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{2}[-/.]\d{1,2}[-/.]\d{1,2})(?:[\sT].*)?$"
EXAMPLE = "2024-03-05"


def ambiguous_message(value: str) -> str:
    return f"日期 {value!r} 有歧义 (无法确定月、日的顺序), 请写成 年-月-日, 如 {EXAMPLE}"


def _field(parts, name: str) -> np.ndarray:
    """One regex group as floats (NaN where the group or the whole match is absent)."""
    values = pc.struct_field(parts, name)
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)


def _parse_strings(texts: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(timestamps, error message or None) for distinct strings; the regex runs in Arrow (RE2), not per row."""
    arrow = pa.array(texts.to_numpy(dtype=object), type=pa.string())
    parts = pc.extract_regex(arrow, DATE_PATTERN)
    year, compact_year = _field(parts, "y"), _field(parts, "cy")
    components = pd.DataFrame({
        "year": np.where(np.isnan(year), compact_year, year),
        "month": np.where(np.isnan(year), _field(parts, "cm"), _field(parts, "m")),
        "day": np.where(np.isnan(year), _field(parts, "cd"), _field(parts, "d")),
        "hour": np.nan_to_num(_field(parts, "H")), "minute": np.nan_to_num(_field(parts, "M")),
        "second": np.nan_to_num(_field(parts, "S"))}, index=texts.index)
    valid = components[["year", "month", "day"]].notna().all(axis=1) & components["hour"].le(23) & \
        components["minute"].le(59) & components["second"].le(59)
    stamps = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[us]")
    if valid.any():
        stamps[valid] = pd.to_datetime(components[valid], errors="coerce").astype("datetime64[us]")
        fraction = pd.Series(pc.struct_field(parts, "f").to_pandas().to_numpy(), index=texts.index)[valid]
        fraction = fraction[fraction.notna() & (fraction != "")]
        if len(fraction):
            micros = pd.to_numeric(fraction.str.ljust(6, "0").str[:6])
            stamps[fraction.index] += pd.to_timedelta(micros, unit="us")
        zone = pd.Series(pc.struct_field(parts, "z").to_pandas().to_numpy(), index=texts.index)[valid]
        signed = zone[zone.notna() & (zone != "") & (zone != "Z")].str.replace(":", "", regex=False)  # Z is UTC
        if len(signed):
            sign = np.where(signed.str[0] == "-", -1, 1)
            minutes = sign * (signed.str[1:3].astype(int) * 60 + signed.str[3:5].astype(int))
            stamps[signed.index] -= pd.to_timedelta(minutes, unit="min")
    errors = pd.Series(None, index=texts.index, dtype=object)
    bad = stamps.isna().to_numpy()
    if bad.any():
        refused = texts[bad]
        ambiguous = pc.match_substring_regex(pa.array(refused.to_numpy(dtype=object), type=pa.string()),
                                             AMBIGUOUS_PATTERN).to_numpy(zero_copy_only=False)
        errors[bad] = [ambiguous_message(t) if a else f"无法解析的日期 {t!r}" for t, a in zip(refused, ambiguous,
                                                                                             strict=True)]
    return stamps, errors


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Naive UTC timestamps (datetime64[us]) and, per value, None or the reason it was refused. Empty cells
    (None, NaN, NaT, blank text) come back as NaT without an error: whether empty is allowed is the contract's
    call. Aligned with `values`' index."""
    values = pd.Series(values)
    errors = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values
        return stamps.astype("datetime64[us]"), errors
    stamps = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    if pd.api.types.is_string_dtype(values) and values.dtype != object:  # text from a CSV: no per-cell type checks
        strings = values[values.notna() & values.str.strip().ne("")]
        if len(strings):
            codes, uniques = pd.factorize(strings)
            parsed, problems = _parse_strings(pd.Series(uniques, dtype=object))
            stamps[strings.index] = parsed.to_numpy()[codes]
            errors[strings.index] = problems.to_numpy()[codes]
        return stamps, errors
    objects = values.astype(object)
    typed = objects.map(lambda v: isinstance(v, (dt.date, np.datetime64)) and not pd.isna(v))
    if typed.any():
        converted = pd.to_datetime(objects[typed].map(pd.Timestamp).map(
            lambda t: t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t))
        stamps[typed] = converted.astype("datetime64[us]")
    texts = objects[~typed]
    present = texts.map(lambda v: not (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                                       or (isinstance(v, str) and not v.strip())))
    texts = texts[present]
    numbers = texts.map(lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    # A number is a date only as the compact 20240305 form; an Excel serial (45356) or a float is refused.
    compact = texts[numbers].map(lambda v: str(int(v)) if float(v).is_integer() and 19000101 <= v <= 29991231
                                 else None)
    for index, value in texts[numbers][compact.isna()].items():
        errors[index] = f"应为日期, 实为数字 {value!r} (Excel 日期请设为日期格式, 或写成 {EXAMPLE})"
    strings = pd.concat([texts[~numbers].map(str), compact.dropna()])
    if len(strings):
        codes, uniques = pd.factorize(strings)
        parsed, problems = _parse_strings(pd.Series(uniques, dtype=object).astype(str))
        stamps[strings.index] = parsed.to_numpy()[codes]
        errors[strings.index] = problems.to_numpy()[codes]
    return stamps, errors
