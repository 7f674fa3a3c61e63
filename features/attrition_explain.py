"""Attrition explanations: each driver as a Chinese sentence a manager can act on, and team / department roll-ups.

Presentation of scored rows, kept apart from the model that scores them: AttritionModel.drivers words each row's
top drivers with reason_text, and the training report, the service's team view and the notebooks label and
roll up scores with FEATURE_ZH, rollup and department_of without loading a model.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

# ------------------------------------------------------------------------------------------ explanations
FEATURE_ZH: dict[str, tuple[str, str]] = {  # name -> (Chinese label, unit)
    "tenure_years": ("司龄", "年"), "log_tenure": ("司龄", ""), "years_since_promotion": ("距上次晋升", "年"),
    "promotion_gap_share": ("未晋升时长占司龄比例", "%"),
    "job_level": ("职级", "级"), "pay_vs_band": ("薪酬相对职级带宽中位值", "%"),
    "overtime_hours": ("近1个月加班时长", "小时"), "overtime_3m": ("近3个月平均加班时长", "小时/月"),
    "overtime_trend": ("近3个月加班较前3个月增加", "小时/月"), "performance_rating": ("绩效评分", "分"),
    "engagement_score": ("敬业度", "分"), "manager_changed_90d": ("近90天更换直属上级", ""),
    "neg_internal_posts_90d": ("近90天内部负面发帖", "条"), "internal_posts_90d": ("近90天内部发帖", "条"),
    "team_complaints_90d": ("近90天所在团队被投诉", "次"), "team_leavers_90d": ("近90天同团队离职", "人"),
    "role": ("岗位", ""), "department_id": ("部门", ""), "gender": ("性别", ""), "marital_status": ("婚姻状况", ""),
    "Age": ("年龄", "岁"), "MonthlyIncome": ("月收入", ""), "log_monthly_income": ("月收入", ""),
    "income_per_level": ("每职级月收入", ""), "NumCompaniesWorked": ("曾任职公司数", "家"),
    "TotalWorkingYears": ("总工作年限", "年"), "log_total_working_years": ("总工作年限", ""),
    "YearsInCurrentRole": ("现岗位年限", "年"), "YearsWithCurrManager": ("与现任上级共事", "年"),
    "TrainingTimesLastYear": ("去年培训次数", "次"), "DistanceFromHome": ("通勤距离", ""),
    "log_distance": ("通勤距离", ""), "tenure_share_of_career": ("司龄占总工作年限比例", "%"),
    "role_share_of_tenure": ("现岗位年限占司龄比例", "%"), "manager_share_of_tenure": ("与现任上级共事占司龄比例", "%"),
    "companies_per_year": ("平均每年换工作次数", ""), "age_at_hire": ("入职时年龄", "岁"),
    "age_under_25": ("年龄低于25岁", ""), "EnvironmentSatisfaction": ("环境满意度", "(1-4)"),
    "JobSatisfaction": ("工作满意度", "(1-4)"), "RelationshipSatisfaction": ("同事关系满意度", "(1-4)"),
    "WorkLifeBalance": ("工作生活平衡", "(1-4)"), "JobInvolvement": ("工作投入度", "(1-4)"),
    "StockOptionLevel": ("股票期权等级", "级"), "Education": ("学历等级", "级"), "BusinessTravel": ("出差频率", ""),
    "EducationField": ("专业领域", ""),
}
_FLAGS = {"manager_changed_90d": "近90天更换了直属上级", "age_under_25": "年龄低于25岁"}
# For raw-scale display, log features show their source column instead.
_DISPLAY_SOURCE = {"log_tenure": "tenure_years", "log_monthly_income": "MonthlyIncome",
                   "log_total_working_years": "TotalWorkingYears", "log_distance": "DistanceFromHome"}


def _fmt(name: str, value: float) -> str:
    unit = FEATURE_ZH.get(name, (name, ""))[1]
    if unit == "%":
        return f"{value:.0%}"
    text = f"{value:.1f}" if abs(value) < 10 and value != int(value) else f"{value:.0f}"
    return f"{text} {unit}".rstrip() if unit and not unit.startswith("(") else text


def _position(value: float, q: Sequence[float], scope: str) -> str:
    """Where a value sits in its reference distribution; empty when it is unremarkable (25%-75%)."""
    q10, q25, _, q75, q90 = q
    for limit, text in ((q90, "高于{}90%分位"), (q75, "高于{}75%分位")):
        if value > limit:
            return text.format(scope)
    for limit, text in ((q10, "低于{}10%分位"), (q25, "低于{}25%分位")):
        if value < limit:
            return text.format(scope)
    return ""


def reason_text(name: str, value, reference: Mapping[str, Mapping[str, Sequence[float]]],
                department: str | None) -> str:
    """One driver as a sentence a manager can act on, e.g. "近3个月平均加班时长 52 小时/月，高于部门90%分位（部门
    中位数 30 小时/月）". Numbers are placed against the employee's department when it has enough people."""
    shown = _DISPLAY_SOURCE.get(name, name)
    label = FEATURE_ZH.get(shown, (shown, ""))[0]
    if name in _FLAGS:
        return _FLAGS[name] if value == 1 else f"{label}: 否"
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return f"{label}数据缺失"
    if isinstance(value, str) or name not in reference:
        return f"{label}为「{value}」，该群体离职率较高"
    by_scope = reference[name]
    department = None if department is None or pd.isna(department) else str(department)
    scope, q = ("部门", by_scope[department]) if department in by_scope else ("公司", by_scope["__all__"])
    if shown != name:  # the log/ratio lives on in the model; speak in the source column's units
        value = float(np.expm1(value)) if name != "log_monthly_income" else float(np.exp(value))
        q = [float(np.expm1(v)) if name != "log_monthly_income" else float(np.exp(v)) for v in q]
    value = float(value)
    position = _position(value, q, scope)
    return f"{label} {_fmt(shown, value)}{'，' + position if position else ''}（{scope}中位数 {_fmt(shown, q[2])}）"


# ------------------------------------------------------------------------------------------------ rollups
def rollup(scored: pd.DataFrame, by: str = "department_id", top: int = 3) -> pd.DataFrame:
    """Team / department view: headcount, expected leavers (sum of propensities), share in the high band and the
    most frequent first drivers (feature names; FEATURE_ZH has the Chinese labels)."""
    rows = []
    for key, group in scored.groupby(by, dropna=False, sort=False):
        firsts = pd.Series([d[0] for d in group["driver_features"] if len(d)], dtype=object)
        rows.append({
            by: key, "headcount": len(group), "expected_leavers": float(group["propensity"].sum()),
            "high_share": float((group["band"] == "high").mean()),
            "top_drivers": list(firsts.value_counts().index[:top]),
            "top_drivers_zh": [FEATURE_ZH.get(f, (f, ""))[0] for f in firsts.value_counts().index[:top]],
        })
    return pd.DataFrame(rows).sort_values("expected_leavers", ascending=False).reset_index(drop=True)


def department_of(units: pd.Series, org_units: pd.DataFrame, level: int = 2) -> pd.Series:
    """The ancestor of each unit at `level` of the org chart (2 = department); a unit above it maps to itself."""
    parent = dict(zip(org_units["unit_id"], org_units["parent_id"], strict=True))
    depth = dict(zip(org_units["unit_id"], org_units["level"], strict=True))

    def climb(unit):
        node = unit
        while node in depth and depth[node] > level:
            node = parent[node]
        return node
    return units.map(climb)
