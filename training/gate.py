"""Champion/challenger gate: a new version becomes `champion` only if it is better where it matters.

Better means: the primary metric improves (or ties) on the fixed evaluation set and no secondary metric gets
worse by more than its tolerance. Every decision, including a human `--force`, is logged to MLflow and tagged
on the model version, so the registry explains itself.

Same data: at training time the current champion is re-scored on the challenger's own evaluation set
(`rescore_champion`, through the model's registered evaluator), so the two are compared on the same rows with
the same metric code, not each on the data of its day. When the champion cannot be scored there at all (its
inputs are not in the new data: a model trained on the synthetic snapshot history needs post and history
features an HR export does not have; an IBM-export model needs export columns the history lacks), there is no
fair comparison, and the gate decides on purpose:
- the challenger was trained on a company's imported data (`--data`, recorded as `data_digest`) that differs
  from the champion's: it is promoted. This is the switch to the company's own data (its first own-data model,
  or a new export with other columns); keeping a model that cannot even read the company's data would help
  nobody. The reasons say that the comparison was impossible and why the switch was made;
- otherwise (e.g. a synthetic challenger against an own-data champion) the champion stays; `--force` overrides.
A champion that cannot even be loaded any more (its pickled code moved, its artifacts are gone) is replaced: the
service could not serve it either.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient

from features.errors import LossguardError, Unavailable
from features.model_specs import spec as model_spec
from features.modelio import load_model
from training.model_card import write_model_card
from training.registry import champion_version, set_champion, version_metrics


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    champion: str | None


@dataclass(frozen=True)
class Rescore:
    """The current champion on the challenger's evaluation set: its metrics, or why it could not be scored."""

    champion: str | None
    metrics: dict[str, float] | None
    note: str
    switch_data: bool = False  # unscorable, and the challenger brings different imported data: promote on purpose


def rescore_champion(name: str, version: str, score: Callable[[Any, Any, str], dict[str, float]], data: Any,
                     data_digest: str | None = None) -> Rescore:
    """Score the current champion with `score` (the model's Evaluator.score) on `data`, the evaluation set the
    challenger `version` was just scored on. `data_digest` is the challenger's imported data (None: not own
    data)."""
    current = champion_version(name)
    if current is None or current == str(version):
        return Rescore(current, None, "")
    client = MlflowClient()
    run_id = client.get_model_version(name, current).run_id
    champion_digest = client.get_run(run_id).data.params.get("data_digest")
    try:
        estimator = load_model(f"models:/{name}/{current}", name).estimator
    except Unavailable as exc:  # the champion itself is broken (its code moved, its artifacts are gone)
        return Rescore(current, None, f"champion v{current} 无法加载 ({exc}): 由新版本接替", switch_data=True)
    try:
        metrics = score(estimator, data, run_id)
    except (LossguardError, KeyError, ValueError, TypeError) as exc:  # inputs the new data does not have
        switch = data_digest is not None and data_digest != champion_digest
        return Rescore(current, None, f"champion v{current} 无法在新版本的评估数据上评分 ({exc})", switch)
    return Rescore(current, metrics, f"champion v{current} 已在新版本的评估数据上重新评分 (同一数据比较)")


def _unscorable(rescored: Rescore) -> Decision:
    if rescored.switch_data and "无法加载" in rescored.note:
        return Decision(True, [rescored.note], rescored.champion)
    if rescored.switch_data:
        reason = "新版本用本公司导入的数据训练, 与 champion 的数据不同且 champion 无法读取它: 按约定切换到新版本"
    else:
        reason = "两者无法在同一数据上比较: 保留 champion (确需切换请用 --force)"
    return Decision(rescored.switch_data, [rescored.note, reason], rescored.champion)


def compare(name: str, challenger: dict[str, float], champion: dict[str, float] | None) -> Decision:
    spec = model_spec(name).gate
    if champion is None:
        return Decision(True, ["尚无 champion, 新版本直接上线"], None)
    challenger, champion = spec.metrics(challenger), spec.metrics(champion)
    reasons, ok = [], True
    p = spec.primary
    if p.name not in challenger or p.name not in champion:
        return Decision(False, [f"缺少主指标 {p.name}, 无法比较"], None)
    delta = p.worse_by(challenger[p.name], champion[p.name])
    if delta > 0:
        ok = False
        reasons.append(f"主指标 {p.name} 变差: {challenger[p.name]:.4f} vs champion {champion[p.name]:.4f}")
    else:
        reasons.append(f"主指标 {p.name}: {challenger[p.name]:.4f} vs champion {champion[p.name]:.4f}")
    for m in spec.secondary:
        if m.name in challenger and m.name in champion:
            worse = m.worse_by(challenger[m.name], champion[m.name])
            if worse > m.tolerance:
                ok = False
                reasons.append(f"次指标 {m.name} 变差 {worse:.4f}, 超过容差 {m.tolerance}")
    return Decision(ok, reasons, None)


def maybe_promote(name: str, version: str, metrics: dict[str, float], *, promote: bool = True,
                  force: bool = False, champion_metrics: dict[str, float] | None = None,
                  champion_unscored: str | None = None, rescored: Rescore | None = None) -> bool:
    """Run the gate for a freshly registered version; log and tag the decision; return whether it won.

    The champion's figures on the same evaluation set as `metrics` come as `rescored` (trainers using
    `rescore_champion`: the decision for an unscorable champion follows the module docstring), or as
    `champion_metrics` (`lossguard promote`, the spread trainer); `champion_unscored` says why the spread trainer
    could not re-score the champion on the challenger's data (e.g. it predates the current features): figures from
    two different data sets compare nothing, so the challenger is promoted on purpose and the reason is recorded.
    With none of them, the champion's training-run metrics are used. Every call also (re)writes the version's
    model card, so each registered version has one that shows the latest decision.
    """
    current = champion_version(name)
    if rescored is not None and rescored.champion == current and current not in (None, str(version)):
        if rescored.metrics is None:
            decision = _unscorable(rescored)
        else:
            champion_metrics = rescored.metrics
            decision = compare(name, metrics, champion_metrics)
            decision.reasons.insert(0, rescored.note)
    else:
        if current is None or current == str(version):
            champion_metrics, champion_unscored = None, None
        elif champion_metrics is None and champion_unscored is None:
            champion_metrics = version_metrics(name, current)
        if champion_unscored is not None:
            decision = Decision(True, [f"champion v{current} 无法在新版本的测试集上重新评分 ({champion_unscored}); "
                                       "两个数据集上的指标不可比, 按设计上线新版本"], None)
        else:
            decision = compare(name, metrics, champion_metrics)
    decision.champion = current
    promoted = promote and (decision.promote or force)
    if force and not decision.promote:
        decision.reasons.append("人工强制上线 (--force)")
    client = MlflowClient()
    client.set_model_version_tag(name, str(version), "gate_decision", "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, str(version), "gate_reasons", " | ".join(decision.reasons)[:4900])
    with mlflow.start_run(run_name=f"gate-{name}-v{version}", nested=mlflow.active_run() is not None):
        mlflow.set_tags({"gate.model": name, "gate.challenger": str(version), "gate.champion": str(current),
                         "gate.forced": str(bool(force and not decision.promote)), "gate.promoted": str(promoted)})
        mlflow.log_dict({"reasons": decision.reasons, "challenger": metrics, "champion": champion_metrics},
                        "gate_decision.json")
    if promoted:
        set_champion(name, version)
    write_model_card(name, str(version))
    return promoted
