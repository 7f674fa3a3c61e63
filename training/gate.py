"""Champion/challenger gate: a new version becomes `champion` only if it is better where it matters.

Better means: the primary metric improves (or ties) on the fixed evaluation set and no secondary metric gets
worse by more than its tolerance. Every decision, including a human `--force`, is logged to MLflow and tagged
on the model version, so the registry explains itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient

from features.model_specs import spec as model_spec
from training.model_card import write_model_card
from training.registry import champion_version, set_champion, version_metrics


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    champion: str | None


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
                  champion_unscored: str | None = None) -> bool:
    """Run the gate for a freshly registered version; log and tag the decision; return whether it won.

    `champion_metrics` are the champion's figures re-scored on the same evaluation set as `metrics` (`lossguard
    promote`, or the trainer itself); by default the champion's training-run metrics are used. `champion_unscored`
    says why the trainer could not re-score the champion on the challenger's data (e.g. it predates the current
    features): figures from two different data sets compare nothing, so the challenger is promoted on purpose and
    the reason is recorded. Every call also (re)writes the version's model card, so each registered version has
    one that shows the latest decision.
    """
    current = champion_version(name)
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
