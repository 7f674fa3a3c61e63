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
def check(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Tenant policy YAML (merged over the shipped "
                                                                       "default)."),
    keywords: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                            help="Keyword library whose sensitive-topic kinds the policy must define; "
                                                 "default LOSSGUARD_KEYWORDS_PATH."),
    tenant: str = typer.Option("default", help="Tenant of the keyword library."),
) -> None:
    """Validate a policy file; print its grades, rules, kinds, owners catalog, routes and integrations."""
    from features.keywords import KeywordLibrary
    from serving.policy import GRADE_ZH, Policy

    policy = Policy.load(file)  # a PolicyError names the key path and exits 2
    library_path = keywords or settings.keywords_path
    policy.check_keyword_kinds(KeywordLibrary.load(library_path, tenant).kinds(), f"关键词库 {library_path}")
    typer.secho(f"策略有效: {' + '.join(policy.sources)}", fg=typer.colors.GREEN)
    typer.echo("等级 (处理时限 / 再次提醒):")
    for grade, spec in policy.grades.items():
        rules = [rule.id for rule in policy.rules if rule.grade == grade]
        typer.echo(f"  {GRADE_ZH[grade]} {grade:6s} {spec.deadline_hours:g} 小时 / {spec.renotify_minutes:g} 分钟  "
                   f"规则 {len(rules)} 条: {', '.join(rules)}")
    listening = policy.listening
    typer.echo("舆情监测: " + (f"外部渠道负面帖子至少{GRADE_ZH[listening.grade]}色预警"
                              + (f" (负面概率 ≥ {listening.min_p_neg:g} 亦算负面)" if listening.min_p_neg else "")
                              if listening.warn_negative_external else "关闭"))
    typer.echo(f"敏感话题类别 ({len(policy.keyword_kinds)}; 关键词库 {library_path} 的类别均已定义):")
    for name, kind in policy.keyword_kinds.items():
        routes = [r.name for r in policy.co_owner_routes if name in r.match.keyword_kinds]
        owners = [s.name for r in policy.co_owner_routes if name in r.match.keyword_kinds for s in r.owners]
        rules = [r.id for r in policy.rules if name in r.applies_to.keyword_kinds]
        actions = sum(len(e.actions) for e in policy.playbook if name in e.match.keyword_kinds)
        typer.echo(f"  {name}: {kind.title} (严重度 ≥ {kind.severity} 起算)  路由 {', '.join(routes) or '—'} → "
                   f"{', '.join(dict.fromkeys(owners)) or '—'}; 规则 {', '.join(rules) or '—'}; 行动 {actions} 条")
    typer.echo(f"负责人目录 ({len(policy.owners)}):")
    used = ({spec.name for route in policy.routes for spec in route.owners} | {s.name for s in policy.default_owners}
            | {a.owner for entry in policy.playbook for a in entry.actions if a.owner})
    for name, spec in policy.owners.items():
        unused = "" if name in used else "  (未被任何路由或行动引用)"
        typer.echo(f"  {name}: {spec.title} (职能 {spec.function}, 范围 {spec.scope}){unused}")
    typer.echo(f"职能路由 (第一个匹配; 职能模型置信度 ≥ {policy.function_confidence:g} 时生效, 否则默认负责人: "
               f"{', '.join(s.name for s in policy.default_owners)}):")
    for route in policy.functional_routes:
        typer.echo(f"  {route.name}: 负责人 {', '.join(spec.name for spec in route.owners)}")
    typer.echo("协同路由 (每个匹配的路由都增派):")
    for route in policy.co_owner_routes:
        typer.echo(f"  {route.name}: 负责人 {', '.join(spec.name for spec in route.owners) or '—'}")
    configured = [name for name, url in policy.webhooks.items() if url]
    typer.echo(f"行动手册 {len(policy.playbook)} 条; 集成: {', '.join(policy.webhooks) or '—'} "
               f"(已配置地址: {', '.join(configured) or '无'})")


@app.command("test")
def test(
    event: Path = typer.Option(..., exists=True, dir_okay=False,
                               help="JSON of one event's risk inputs (RiskInput fields: subject, event_kind, "
                                    "text, p_neg, sentiment_label, loss_type, function, function_confidence, "
                                    "keyword_hits (with kind; found in `text` by the keyword library when "
                                    "absent), reach_p90, ...)."),
    policy_file: Optional[Path] = typer.Option(None, "--policy", exists=True, dir_okay=False,
                                               help="Tenant policy YAML; default LOSSGUARD_POLICY_PATH."),
    org: Optional[Path] = typer.Option(None, exists=True, file_okay=False,
                                       help="Folder with org_units.parquet (and employees.parquet) to name the "
                                            "people; without it the owners are listed as the policy names them."),
) -> None:
    """Print what the policy does with one event: rules fired, grade, routes, owners, actions and deadline."""
    from serving.rules import Policy, RiskInput, evaluate

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
    if "keyword_hits" not in raw and isinstance(raw.get("text"), str):  # as /assess does: the library finds them
        from features.keywords import KeywordLibrary

        raw["keyword_hits"] = KeywordLibrary.load(settings.keywords_path).find(raw["text"])
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
    if risk.keyword_hits:
        typer.echo("关键词: " + "、".join(f"{hit['term']}({hit.get('kind') or hit['category']} {hit['severity']})"
                                        for hit in risk.keyword_hits))
    if decision.keyword_kinds:
        kinds = policy.keyword_kinds
        typer.echo(f"敏感话题类别: {', '.join(f'{k} {kinds[k].title}' for k in decision.keyword_kinds)}")
    typer.echo(f"路由所依据的职能: {decision.function} (职能模型置信度 {risk.function_confidence:.2f}, "
               f"阈值 {policy.function_confidence:g})")
    typer.echo(f"匹配的路由: {', '.join(decision.routes) or '无 (默认负责人)'}")
    typer.echo("负责人:")
    for owner in decision.owners:
        role = "职能负责" if owner.role == "functional" else "协同负责"
        typer.echo(f"  {owner.spec.name}: {owner.spec.title} ({role}, 职能 {owner.spec.function}) — {owner.why}")
    for note in decision.notes:
        typer.echo(f"  注: {note}")
    if org is not None:
        _print_people(decision, risk, org)
    typer.echo("建议行动:")
    for action in decision.actions:
        system = f" [{action.system}]" if action.system else ""
        typer.echo(f"  - {action.text}{system} (负责: {action.owner_title}, {action.due_hours:g} 小时内)")


def _print_people(decision, risk, folder: Path) -> None:
    from features.tables import read_table
    from serving.owners import OrgChart, resolve_owners

    units = read_table(folder / "org_units.parquet")
    employees = read_table(folder / "employees.parquet") if (folder / "employees.parquet").exists() else None
    owners = resolve_owners(decision, risk, OrgChart.from_frame(units, employees))
    for label, people in (("职能负责人", owners.functional), ("协同负责人", owners.co_owners),
                          ("直接责任", owners.direct), ("管理责任", owners.management),
                          ("分管领导", [owners.executive] if owners.executive else [])):
        for person in people:
            typer.echo(f"  {label}: {person.employee_id} {person.role} ({person.unit_name}) — {person.why}")
    for note in owners.notes:
        if note not in decision.notes:
            typer.echo(f"  注: {note}")
