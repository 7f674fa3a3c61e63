"""Model cards: one markdown page per registered version, rendered from what its MLflow run recorded.

Reviewers and auditors read the card, not the run: it says what data went in, how the version scores overall and
per slice/corpus, what it is for, where it is known to fail, and which fairness gaps were measured. Everything
numeric comes from the run (params, metrics, JSON artifacts), so the card cannot drift from what was trained; the
prose (intended use, limits) is per model and kept here, next to the code that renders it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from features.model_specs import SPECS
from features.settings import settings

CARD_ARTIFACT = "model_card.md"

_BASE_METRICS = ("macro_f1", "micro_f1", "f1", "accuracy", "precision", "recall", "roc_auc", "pr_auc", "brier", "ece",
                 "top_decile_lift", "false_alarm", "neutral_to_neg", "fail_rate", "log_loss", "mae", "msle", "coverage",
                 "base_rate", "n")
_DATA_PARAM = re.compile(r"(data|corpus|rows|^n_|_n$|months|share|source|text_features|feedback|split|seed|windows)")
_FAIRNESS_METRIC = re.compile(r"(gap|fairness|parity|disparity)")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def split_metric(name: str) -> tuple[str, str]:
    """(slice, metric) for a logged metric name: `workplace_macro_f1` -> (workplace, macro_f1),
    `coverage_T60` -> (T60, coverage); anything else is an overall figure."""
    if name in _BASE_METRICS:
        return "overall", name
    for base in sorted(_BASE_METRICS, key=len, reverse=True):
        if name.endswith("_" + base):
            return name[: -len(base) - 1], base
    window = re.fullmatch(r"(.+)_(T\d+)", name)
    if window:
        return window.group(2), window.group(1)
    return "overall", name


def _metric_sections(name: str, metrics: dict[str, float]) -> list[str]:
    lines: list[str] = []
    spec = SPECS[name].gate if name in SPECS else None
    if spec:
        gate_metrics = spec.metrics(metrics)
        lines += ["### 上线门槛指标 (gate)", ""]
        rows = []
        for role, metric in [("主指标", spec.primary)] + [("次指标", m) for m in spec.secondary]:
            rows.append((role, metric.name, "越高越好" if metric.higher_is_better else "越低越好",
                         metric.tolerance if role == "次指标" else "不得变差", gate_metrics.get(metric.name, "未记录")))
        lines += _table(("角色", "指标", "方向", "容差", "本版本"), rows) + [""]
    grouped: dict[str, dict[str, float]] = {}
    for metric_name, value in sorted(metrics.items()):
        if _FAIRNESS_METRIC.search(metric_name):
            continue
        slice_name, metric = split_metric(metric_name)
        grouped.setdefault(slice_name, {})[metric] = value
    columns = sorted({m for values in grouped.values() for m in values})
    lines += ["### 分切片 / 语料指标 (per slice and corpus)", ""]
    if len(grouped) > 1:
        lines += _table(["切片"] + columns, [[s] + [grouped[s].get(c, "") for c in columns] for s in sorted(grouped)])
    else:
        lines += _table(("指标", "值"), sorted(metrics.items()))
    return lines + [""]


def _json_artifacts(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """Top-level JSON artifacts of the run (reports, calibration), parsed; unreadable ones are skipped."""
    out = {}
    for item in client.list_artifacts(run_id):
        if item.is_dir or not item.path.endswith(".json"):
            continue
        try:
            out[item.path] = json.loads(Path(client.download_artifacts(run_id, item.path)).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def _fairness_sections(metrics: dict[str, float], artifacts: dict[str, Any]) -> list[str]:
    lines = ["## 公平性差距 (fairness gaps)", ""]
    gaps = {k: v for k, v in sorted(metrics.items()) if _FAIRNESS_METRIC.search(k)}
    tables = {path: report["fairness"] for path, report in artifacts.items()
              if isinstance(report, dict) and isinstance(report.get("fairness"), dict)}
    if not gaps and not tables:
        return lines + ["本版本的训练运行没有记录公平性指标。", ""]
    if gaps:
        lines += _table(("指标", "差距"), gaps.items()) + [""]
    for path, by_attribute in tables.items():
        for attribute, records in by_attribute.items():
            if records:
                lines += [f"**{attribute}** (来自 `{path}`)", ""]
                lines += _table(records[0].keys(), (r.values() for r in records)) + [""]
    return lines


def render_model_card(name: str, version: str, client: MlflowClient | None = None) -> str:
    """Markdown for one registered version, from its run's params, metrics, tags and JSON artifacts."""
    client = client or MlflowClient()
    model_version = client.get_model_version(name, str(version))
    run = client.get_run(model_version.run_id)
    params, metrics = dict(run.data.params), dict(run.data.metrics)
    card = SPECS[name].card if name in SPECS else None
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, tz=UTC)
    lines = [f"# 模型卡片: {name} v{version}", "",
             f"- 任务: {card.task if card else name}",
             f"- 注册时间: {created:%Y-%m-%d %H:%M} UTC; MLflow run `{run.info.run_id}` ({run.info.run_name})",
             f"- 上线判定: {model_version.tags.get('gate_decision', '尚未判定')}"
             + (f" ({model_version.tags['gate_reasons']})" if model_version.tags.get("gate_reasons") else ""),
             "", "## 预期用途 (intended use)", "", card.intended_use if card else "未填写", "",
             "## 使用的数据 (data used)", "", card.data if card else "未填写", ""]
    data_params = {k: v for k, v in params.items() if _DATA_PARAM.search(k)}
    datasets = [(d.dataset.name, d.dataset.digest, d.dataset.source_type) for d in run.inputs.dataset_inputs]
    if data_params:
        lines += _table(("参数", "值"), sorted(data_params.items())) + [""]
    if datasets:
        lines += _table(("数据集", "digest", "来源"), datasets) + [""]
    lines += ["## 指标 (metrics)", ""] + _metric_sections(name, metrics)
    lines += _fairness_sections(metrics, _json_artifacts(client, run.info.run_id))
    lines += ["## 已知局限 (known limits)", ""] + [f"- {limit}" for limit in (card.limits if card else ["未填写"])]
    lines += [""]
    if card and card.design:
        lines += ["## 设计选择及其实测 (design choices, measured when made)", ""]
        lines += [f"- {choice}" for choice in card.design] + [""]
    other = {k: v for k, v in params.items() if k not in data_params}
    if other:
        lines += ["## 训练参数 (parameters)", ""] + _table(("参数", "值"), sorted(other.items())) + [""]
    return "\n".join(lines)


def write_model_card(name: str, version: str) -> Path:
    """Render the card, keep a copy under models/cards, log it as `model_card.md` of the version's run and tag
    the version with where it is, so the registry UI links every version to its card."""
    client = MlflowClient()
    text = render_model_card(name, str(version), client)
    path = settings.models_dir / "cards" / f"{name}-v{version}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    run_id = client.get_model_version(name, str(version)).run_id
    client.log_text(run_id, text, CARD_ARTIFACT)
    client.set_model_version_tag(name, str(version), "model_card", f"runs:/{run_id}/{CARD_ARTIFACT}")
    return path
