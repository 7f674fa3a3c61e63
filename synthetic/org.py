"""The org chart: company -> divisions -> departments -> teams -> sub-teams, and the seats of the starting workforce.

The world the company lives in (its divisions, cities, roles and titles) is fixed here; only the sizes and the
permanently vacant units depend on the seed. Units are created in topological order, which the workforce
simulation relies on when it walks up the chart to find a manager.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------------- the world
COMPANY = "总裁办"
# division, function, city, departments: (name, function, headcount weight, team names)
SKELETON = (
    ("市场与品牌中心", "marketing", "上海", (
        ("市场部", "marketing", 3, ("品牌组", "数字营销组", "活动策划组", "市场调研组")),
        ("公关部", "marketing", 1, ("媒体关系组", "舆情监测组")))),
    ("客户服务中心", "customer_service", "成都", (
        ("客服部", "customer_service", 5, ("热线服务组", "在线客服组", "投诉处理组", "会员服务组")),
        ("售后服务部", "customer_service", 3, ("维修服务组", "退换货组", "安装服务组")))),
    ("人力资源中心", "hr", "北京", (
        ("人力资源部", "hr", 2, ("招聘组", "薪酬福利组", "培训发展组", "员工关系组")),
        ("企业文化部", "culture", 1, ("文化建设组", "内部传播组")))),
    ("研发中心", "rd", "深圳", (
        ("产品研发部", "rd", 6, ("前端组", "后端组", "移动端组", "测试组", "产品设计组")),
        ("平台技术部", "rd", 4, ("基础架构组", "数据平台组", "安全组", "运维组")),
        ("算法部", "rd", 2, ("推荐算法组", "视觉算法组", "语音组")))),
    ("法务合规中心", "legal", "北京", (
        ("法务部", "legal", 1, ("合同组", "诉讼组")),
        ("合规部", "legal", 1, ("合规审查组", "数据合规组")))),
    ("生产制造中心", "production", "苏州", (
        ("生产部", "production", 7, ("装配一组", "装配二组", "装配三组", "包装组", "设备维护组")),
        ("质量管理部", "production", 2, ("质检组", "品控组", "体系认证组")),
        ("供应链部", "production", 2, ("采购组", "物流组", "仓储组")))),
    ("销售中心", "sales", "广州", (
        ("华东销售部", "sales", 3, ("上海销售组", "杭州销售组", "南京销售组")),
        ("华南销售部", "sales", 3, ("广州销售组", "深圳销售组", "福州销售组")),
        ("华北销售部", "sales", 2, ("北京销售组", "天津销售组", "济南销售组")),
        ("大客户部", "sales", 1, ("政企客户组", "渠道合作组")))),
    ("综合管理中心", "management", "北京", (
        ("战略规划部", "management", 1, ("战略组", "投资组")),
        ("财务部", "management", 2, ("会计组", "资金组", "税务组")),
        ("行政部", "management", 1, ("行政组", "后勤组")))),
)
TEAM_SIZE, SUBTEAM_SPLIT_AT, SUBTEAM_SIZE = 40, 16, 10
VACANT_SHARE = 0.04                   # of team and sub-team units, permanently without a head
SUBTEAM_NAMES = ("第一小组", "第二小组", "第三小组", "第四小组", "第五小组", "第六小组", "第七小组", "第八小组")
HEAD_TITLES = ("首席执行官", "分管副总裁", "部门总监", "经理", "组长")
ROLES = {
    "marketing": ("市场专员", "品牌策划", "新媒体运营"), "customer_service": ("客服专员", "售后工程师", "投诉专员"),
    "hr": ("招聘专员", "薪酬专员", "培训专员", "HRBP"), "culture": ("企业文化专员", "内部传播专员"),
    "rd": ("软件工程师", "测试工程师", "算法工程师", "产品经理"), "legal": ("法务专员", "合规专员"),
    "production": ("生产操作员", "质检员", "采购专员", "工艺工程师"), "sales": ("销售代表", "大客户经理", "销售支持"),
    "management": ("战略分析师", "会计", "行政专员"),
}
STAFF_LEVEL_P = (0.18, 0.30, 0.25, 0.15, 0.08, 0.04)  # job levels 1..6
CITY_PROVINCE = {"北京": "北京", "上海": "上海", "深圳": "广东", "广州": "广东", "杭州": "浙江", "成都": "四川",
                 "武汉": "湖北", "南京": "江苏", "苏州": "江苏", "西安": "陕西"}


# ------------------------------------------------------------------------------------------------ org chart
@dataclass
class Org:
    """Units in creation (= topological) order with the seats (who sits where) of the starting workforce."""

    unit_ids: list[str]
    names: list[str]
    parent: np.ndarray      # -1 for the company
    level: np.ndarray
    function: list[str]
    department: np.ndarray  # level-2 ancestor (itself for a department, -1 above that level)
    city: list[str]
    vacant: np.ndarray      # bool: permanently without a head
    seat_unit: np.ndarray   # one entry per starting employee
    seat_head: np.ndarray   # bool: this seat heads seat_unit

    @property
    def leaves(self) -> np.ndarray:
        has_child = np.zeros(len(self.names), bool)
        has_child[self.parent[self.parent >= 0]] = True
        return ~has_child


def _allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Largest-remainder split of `total` in proportion to weights, each share at least `minimum`."""
    spare = total - minimum * len(weights)
    raw = spare * weights / weights.sum()
    out = np.floor(raw).astype(int)
    out[np.argsort(raw - out)[::-1][: spare - out.sum()]] += 1
    return out + minimum


def _id_list(prefix: str, n: int, width: int) -> list[str]:
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def build_org(employees: int, rng: np.random.Generator) -> Org:
    """Company -> divisions -> departments -> teams -> sub-teams, sized so the seats add up to `employees`."""
    names, parent, level, function, department, city = [], [], [], [], [], []

    def add(name, parent_idx, unit_level, unit_function, dept_idx, unit_city):
        names.append(name), parent.append(parent_idx), level.append(unit_level)
        function.append(unit_function), department.append(dept_idx), city.append(unit_city)
        return len(names) - 1

    departments = [(d, dept) for d in SKELETON for dept in d[3]]
    n_upper_heads = 1 + len(SKELETON) + len(departments)
    if employees < n_upper_heads * 3:
        raise ValueError(f"employees 至少 {n_upper_heads * 3} (组织架构需要 {n_upper_heads} 个中高层岗位)")
    staff = _allocate(employees - n_upper_heads, np.array([dept[2] for _, dept in departments], float), 2)

    seats_unit, seats_head = [], []
    company = add(COMPANY, -1, 0, "management", -1, "北京")
    seats_unit.append(company), seats_head.append(True)
    division_of = {}
    for division in SKELETON:
        division_of[division[0]] = add(division[0], company, 1, division[1], -1, division[2])
        seats_unit.append(division_of[division[0]]), seats_head.append(True)
    for (division, (dept_name, dept_function, _, team_names)), dept_staff in zip(departments, staff, strict=True):
        dept = add(dept_name, division_of[division[0]], 2, dept_function, -1, division[2])
        department[dept] = dept
        seats_unit.append(dept), seats_head.append(True)
        n_teams = int(np.clip(round(dept_staff / TEAM_SIZE), 1, len(team_names)))
        sizes = _allocate(dept_staff, np.ones(n_teams), 1)
        for team_name, team_staff in zip(team_names, sizes, strict=False):  # more names than teams
            team = add(team_name, dept, 3, dept_function, dept, division[2])
            if team_staff < SUBTEAM_SPLIT_AT:
                seats_unit += [team] * team_staff
                seats_head += [True] + [False] * (team_staff - 1)
                continue
            seats_unit.append(team), seats_head.append(True)
            n_sub = min(len(SUBTEAM_NAMES), -(-(team_staff - 1) // SUBTEAM_SIZE))
            for sub_name, sub_staff in zip(SUBTEAM_NAMES, _allocate(team_staff - 1, np.ones(n_sub), 1), strict=False):
                sub = add(f"{team_name}{sub_name}", team, 4, dept_function, dept, division[2])
                seats_unit += [sub] * sub_staff
                seats_head += [True] + [False] * (sub_staff - 1)

    level_arr = np.array(level)
    seat_unit, seat_head = np.array(seats_unit), np.array(seats_head)
    candidates = np.flatnonzero(level_arr >= 3)
    vacant = np.zeros(len(names), bool)
    vacant[rng.choice(candidates, max(2, round(VACANT_SHARE * len(candidates))), replace=False)] = True
    # a vacant unit's head seat becomes an ordinary seat (in its first sub-unit when it has sub-units)
    parent_arr = np.array(parent)
    for unit in np.flatnonzero(vacant):
        seat = np.flatnonzero((seat_unit == unit) & seat_head)[0]
        children = np.flatnonzero(parent_arr == unit)
        seat_head[seat] = False
        if len(children):
            seat_unit[seat] = children[0]
    return Org(_id_list("U", len(names), 3), names, parent_arr, level_arr, function, np.array(department), city,
               vacant, seat_unit, seat_head)
