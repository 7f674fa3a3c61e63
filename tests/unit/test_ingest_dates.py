"""Dates are read when their order is certain and refused, naming the problem, when it is not.

Each rule is judged over many generated dates (every spelling of ~600 random days, including days ≤ 12 where day
and month could swap), not one example.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ingest.dates import parse_dates

RNG = np.random.default_rng(7)
DAYS = [dt.date(1990, 1, 1) + dt.timedelta(days=int(d)) for d in RNG.integers(0, 365 * 45, 600)]
ACCEPTED = {
    "iso": lambda d: d.strftime("%Y-%m-%d"),
    "slash unpadded": lambda d: f"{d.year}/{d.month}/{d.day}",
    "dots": lambda d: f"{d.year}.{d.month:02d}.{d.day}",
    "chinese": lambda d: f"{d.year}年{d.month}月{d.day}日",
    "chinese spaced": lambda d: f" {d.year} 年 {d.month} 月 {d.day} 日 ",
    "compact": lambda d: d.strftime("%Y%m%d"),
}
AMBIGUOUS = {
    "month/day/year": lambda d: d.strftime("%m/%d/%Y"),
    "day/month/year": lambda d: f"{d.day}/{d.month}/{d.year}",
    "day.month.2-digit year": lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",
    "2-digit year first": lambda d: f"{d.year % 100:02d}/{d.month}/{d.day}",
}


@pytest.mark.parametrize("spelling", sorted(ACCEPTED))
def test_every_unambiguous_spelling_reads_the_same_day(spelling):
    stamps, errors = parse_dates(pd.Series([ACCEPTED[spelling](d) for d in DAYS], dtype="str"))
    assert errors.isna().all()
    assert [t.date() for t in stamps] == DAYS


@pytest.mark.parametrize("spelling", sorted(AMBIGUOUS))
def test_day_month_orders_are_refused_not_guessed(spelling):
    values = [AMBIGUOUS[spelling](d) for d in DAYS]
    stamps, errors = parse_dates(pd.Series(values, dtype="str"))
    assert stamps.isna().all()
    assert errors.str.contains("有歧义").all()
    assert all(value in message for value, message in zip(values, errors, strict=True))  # names the value


def test_times_and_zones_become_naive_utc():
    days = DAYS[:200]
    hours = RNG.integers(0, 24, len(days))
    minutes = RNG.integers(0, 60, len(days))
    local = [f"{d:%Y-%m-%d}T{h:02d}:{m:02d}:07+08:00" for d, h, m in zip(days, hours, minutes, strict=True)]
    chinese = [f"{d.year}年{d.month}月{d.day}日 {h}:{m:02d}" for d, h, m in zip(days, hours, minutes, strict=True)]
    utc, errors = parse_dates(pd.Series(local, dtype="str"))
    naive, more = parse_dates(pd.Series(chinese, dtype="str"))
    assert errors.isna().all() and more.isna().all()
    expected = [pd.Timestamp(d) + pd.Timedelta(hours=int(h), minutes=int(m)) for d, h, m in zip(days, hours, minutes,
                                                                                              strict=True)]
    assert list(naive) == expected
    assert list(utc) == [t - pd.Timedelta(hours=8) + pd.Timedelta(seconds=7) for t in expected]


def test_impossible_days_and_non_dates_are_refused():
    impossible = [f"{y}-02-{d}" for y in range(2001, 2100, 4) for d in (30, 31)] + \
        [f"2024-{m}-01" for m in (0, 13, 20)] + ["2024-03-05 25:00", "last tuesday", "2024", "03-2024"]
    stamps, errors = parse_dates(pd.Series(impossible, dtype="str"))
    assert stamps.isna().all() and errors.notna().all()


def test_typed_cells_pass_and_numbers_are_not_guessed_as_dates():
    cells = pd.Series([dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 9, 30), pd.Timestamp("2024-03-05"),
                       20240305, 45356, 3.5, None, "  "], dtype=object)
    stamps, errors = parse_dates(cells)
    assert [str(t) for t in stamps[:4]] == ["2024-03-05 00:00:00", "2024-03-05 09:30:00", "2024-03-05 00:00:00",
                                           "2024-03-05 00:00:00"]
    assert errors[4:6].str.contains("应为日期").all()  # an Excel serial number, a float
    assert stamps[6:].isna().all() and errors[6:].isna().all()  # empty: the contract decides
