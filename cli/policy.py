"""`lossguard policy check | test`: the warning policy without starting the service (amtool's check-config and
routing test): is the file valid, and what would one event get — the rules that fire, the grade, the owners and
the actions."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from features.errors import InputError
from features.settings import settings

app = typer.Typer(help="预警策略 (Check a policy file; test what an event would get).", no_args_is_help=True)


@app.command("check")
def check(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Tenant policy YAML (merged over "
                                                                                   "the shipped default).")) -> None:
    """Validate a policy file; print its grades, rules, owners catalog, routes and integrations."""
    from serving.policy import GRADE_ZH, Policy

    policy = Policy.load(file)  # a PolicyError names the key path and exits 2
    typer.secho(f"策略有效: {' + '.join(policy.sources)}", fg=typer.colors.GREEN)
    typer.echo("等级 (处理时限 / 再次提醒):")
    for grade, spec in policy.grades.items():
        rules = [rule.id for rule in policy.rules if rule.grade == grade]
        typer.echo(f"  {GRADE_ZH[grade]} {grade:6s} {spec.deadline_hours:g} 小时 / {spec.renotify_minutes:g} 分钟  "
                   f"规则 {len(rules)} 条: {', '.join(rules)}")
    typer.echo(f"负责人目录 ({len(policy.owners)}):")
    used = {spec.name for route in policy.routes for spec in route.owners} | {s.name for s in policy.default_owners}
    for name, spec in policy.owners.items():
        unused = "" if name in used else "  (未被任何路由引用)"
        typer.echo(f"  {name}: {spec.title} (职能 {spec.function}, 范围 {spec.scope}){unused}")
    typer.echo(f"路由 ({len(policy.routes)}, 默认负责人: {', '.join(s.name for s in policy.default_owners)}):")
    for route in policy.routes:
        owners = ", ".join(spec.name for spec in route.owners) or "—"
        typer.echo(f"  {route.name}: 负责人 {owners}{'  (continue)' if route.continue_matching else ''}")
    configured = [name for name, url in policy.webhooks.items() if url]
    typer.echo(f"行动手册 {len(policy.playbook)} 条; 集成: {', '.join(policy.webhooks) or '—'} "
               f"(已配置地址: {', '.join(configured) or '无'})")


@app.command("test")
def test(
    event: Path = typer.Option(..., exists=True, dir_okay=False,
                               help="JSON of one event's risk inputs (RiskInput fields: subject, event_kind, "
                                    "p_neg, sentiment_label, loss_type, function, keyword_hits, reach_p90, ...)."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", exists=True, dir_okay=False,
                                               help="Tenant policy YAML; default LOSSGUARD_POLICY_PATH."),
    org: Optional[Path] = typer.Option(None, exists=True, file_okay=False,
                                       help="Folder with org_units.parquet (and employees.parquet) to name the "
                                            "people; without it the owners are listed as the policy names them."),
) -> None:
    """Print what the policy does with one event: rules fired, grade, routes, owners, actions and deadline."""
    from serving.policy import Policy
    from serving.rules import RiskInput, evaluate

    policy = Policy.load(policy_file or settings.policy_path)
    try:
        raw = json.loads(event.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{event}: 不是 UTF-8 的 JSON ({exc})", field=str(event)) from None
    if not isinstance(raw, dict):
        raise InputError(f"{event}: 应为一个 JSON 对象 (RiskInput 的字段)", field=str(event))
    unknown = sorted(set(raw) - set(RiskInput.__dataclass_fields__))
    if unknown:
        raise InputError(f"{unknown[0]}: 不是 RiskInput 的字段; 可用: {', '.join(RiskInput.__dataclass_fields__)}")
    raw.setdefault("subject", f"test:{event.stem}")
    if isinstance(raw.get("created_at"), str):
        try:
            raw["created_at"] = datetime.fromisoformat(raw["created_at"])
        except ValueError:
            raise InputError(f"created_at: 时间格式错误 {raw['created_at']!r} (应为 ISO 8601)") from None
    risk = RiskInput(**raw)
    decision = evaluate(risk, policy)
    if decision is None:
        typer.echo("没有规则触发: 不产生预警")
        return
    typer.secho(f"{decision.label}  处理时限 {decision.deadline_hours:g} 小时", bold=True)
    typer.echo("触发的规则:")
    for rule in decision.fired:
        typer.echo(f"  [{rule.grade}] {rule.id} {rule.name}")
    for reason in decision.reasons:
        typer.echo(f"  · {reason}")
    typer.echo(f"匹配的路由: {', '.join(decision.routes) or '无 (默认负责人)'}")
    typer.echo("负责人:")
    for spec in decision.owner_specs:
        typer.echo(f"  {spec.name}: {spec.title} (职能 {spec.function})")
    if org is not None:
        _print_people(decision, risk, org)
    typer.echo("建议行动:")
    for action in decision.actions:
        due = f", {action.due_hours:g} 小时内" if action.due_hours else ""
        system = f" [{action.system}]" if action.system else ""
        typer.echo(f"  - {action.text}{system}{due}")


def _print_people(decision, risk, folder: Path) -> None:
    from serving.owners import OrgChart, resolve_owners
    from features.tables import read_table

    units = read_table(folder / "org_units.parquet")
    employees = read_table(folder / "employees.parquet") if (folder / "employees.parquet").exists() else None
    owners = resolve_owners(decision, risk, OrgChart.from_frame(units, employees))
    for label, people in (("职能负责人", owners.functional), ("直接责任", owners.direct),
                          ("管理责任", owners.management), ("分管领导", [owners.executive] if owners.executive else [])):
        for person in people:
            typer.echo(f"  {label}: {person.employee_id} {person.role} ({person.unit_name})")
    for note in owners.notes:
        typer.echo(f"  注: {note}")
