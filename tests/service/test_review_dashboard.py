"""The dashboard on the review page, in Debian's headless Chromium against the real server: the synthetic
company's planted feed (shifted to the last weeks) and fixes are in the store; a manager sees the four charts
with their own subtree's data only, an admin sees the whole company; Chinese renders in a CJK font; the page runs
under the server's strict Content-Security-Policy without a single violation. Screenshots are saved for people to
look at (the session folder's screenshots/, printed at the end of each test)."""
from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pandas as pd
import pytest

from features.settings import settings
from tests.service.browser import CHROMIUM, chromium

pytestmark = [pytest.mark.service, pytest.mark.browser, pytest.mark.slow]

WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture(scope="module")
def monitored(live, company):
    """Six weeks of the planted feed at 10 minutes (older weeks hourly) for the manager's department, another one
    and the departments with planted fixes, shifted by whole weeks to end in the past week; the last two weeks
    scanned for spikes; the planted fixes (and one in the manager's department) filed and resolved."""
    from serving.monitoring.monitor import Monitor
    from serving.owners import OrgChart, resolve_owners
    from serving.policy import Policy
    from serving.rules import RiskInput, evaluate
    from serving.store import WarningStore

    series = pd.read_parquet(company / "series.parquet")
    truth = json.loads((company / "truth.json").read_text(encoding="utf-8"))["monitoring"]
    fixes = truth["effects"]
    departments = {live.org.unit, live.org.other} | {f["department_id"] for f in fixes}
    level2 = pd.read_parquet(company / "org_units.parquet").query("level == 2")["unit_id"]
    departments |= set(sorted(set(level2) - departments)[: max(0, 10 - len(departments))])
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    shift = pd.Timedelta(weeks=int((now - series["bucket_start"].max()) // pd.Timedelta(weeks=1)))
    rows = series[series["department_id"].isin(departments)].assign(bucket_start=lambda f: f["bucket_start"] + shift)
    recent = rows["bucket_start"] >= rows["bucket_start"].max() - pd.Timedelta(weeks=6)
    key = ["bucket_start", "department_id", "channel", "loss_type", "keyword_category", "kind"]
    older = rows[~recent].assign(bucket_start=lambda f: f["bucket_start"].dt.floor("h")).groupby(
        key, as_index=False)[["total", "negative", "neg_reach"]].sum()
    policy = Policy.load()
    store = WarningStore(settings.warnings_db, policy=policy)
    store.add_counts(older.to_dict("records"))
    store.add_counts(rows[recent].to_dict("records"))
    chart = OrgChart.from_frame(pd.read_parquet(company / "org_units.parquet"),
                                pd.read_parquet(company / "employees.parquet"))
    end = rows["bucket_start"].max().to_pydatetime() + timedelta(minutes=10)
    trends = Monitor(store, policy, chart, background=False).replay(end - timedelta(days=14), end)
    mine = {"department_id": live.org.unit, "created_at": (end - timedelta(days=20)).isoformat(),
            "resolved_at": (end - timedelta(days=18)).isoformat()}
    filed = []
    for number, fix in enumerate([*fixes, mine]):
        created = pd.Timestamp(fix["created_at"]).to_pydatetime() + (shift if fix is not mine else timedelta())
        resolved = pd.Timestamp(fix["resolved_at"]).to_pydatetime() + (shift if fix is not mine else timedelta())
        risk = RiskInput(subject=f"post:dashboard-fix-{number}", event_kind="post", text="不买就落伍，负面评论很多",
                         channel="weibo", department_id=fix["department_id"], sentiment_label="neg", p_neg=0.95,
                         loss_type="reputation", keyword_hits=[{"term": "星启", "category": "company", "severity": 1}])
        decision = evaluate(risk, policy)
        record = store.upsert_from_decision(decision, risk, resolve_owners(decision, risk, chart), now=created).record
        store.acknowledge(record.id, "tester", now=created + timedelta(minutes=5))
        filed.append(store.resolve(record.id, "tester", "true_alarm", now=resolved).id)
    return {"departments": departments, "trends": trends, "fixes": filed, "chart": chart}


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "profile", viewport={"width": 1400, "height": 1000}) as context:
        yield context


def _open(context, live, who: str):
    """The page as the server sends it (with its strict Content-Security-Policy), logged in."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.add_init_script(WATCH_CSP)
    response = page.goto(f"{live.url}/review/")
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
    page.fill("#api-key", live.keys[who])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#trend-section[data-loaded='1']")
    return page


def _data(page, chart: str, name: str):
    return json.loads(page.get_attribute(f"#{chart}", f"data-{name}") or "null")


def _screenshot(page, session_dir, name: str) -> None:
    folder = session_dir / "screenshots"
    folder.mkdir(exist_ok=True)
    page.locator("#trend-section").screenshot(path=str(folder / f"{name}.png"))
    print(f"screenshot: {folder / f'{name}.png'}")


def test_a_manager_sees_the_charts_of_their_subtree_only(live, monitored, browser, session_dir):
    page = _open(browser, live, "manager")
    scope = monitored["chart"].subtree(live.org.unit)
    shown = _data(page, "chart-volume", "departments")
    assert shown and set(shown) <= scope
    units = _data(page, "chart-heatmap", "units")
    assert set(units) <= scope and live.org.unit in units
    effects = _data(page, "chart-effects", "warnings")
    with live.client("admin") as admin:
        for warning_id in effects:
            assert admin.get(f"/warnings/{warning_id}").json()["department_id"] in scope
    assert monitored["fixes"][-1] in effects  # the fix filed in the manager's department is measured
    assert page.get_attribute("#chart-effect", "data-warning")
    assert len(page.locator("#effect-summary li").all()) >= 1
    assert page.locator("#report-box").is_visible()
    page.click("#report-form button[type=submit]")
    page.locator("#report li").first.wait_for()
    assert "预警" in page.locator("#report li").first.inner_text()
    page.hover("#chart-volume canvas")  # a tooltip, drawn on canvas
    _screenshot(page, session_dir, "dashboard-manager")
    assert page.evaluate("window.__violations") == []


def test_an_admin_sees_the_company_with_spikes_and_fixes_marked(live, monitored, browser, session_dir):
    page = _open(browser, live, "admin")
    shown = set(_data(page, "chart-volume", "departments"))
    assert live.org.other in shown or len(shown) == 8  # the busiest eight departments are drawn
    spikes = _data(page, "chart-volume", "spikes")
    trend_ids = {f.record.id for f in monitored["trends"]}
    assert trend_ids and set(spikes) & trend_ids
    since = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(days=14)  # the page's default range
    recent = {f.record.id for f in monitored["trends"] if f.record.created_at >= since}
    assert _data(page, "chart-grades", "total") >= len(recent)
    assert set(monitored["fixes"]) & set(_data(page, "chart-effects", "warnings"))
    assert not page.locator("#report-box").is_hidden() and page.evaluate("window.__violations") == []
    _screenshot(page, session_dir, "dashboard-admin")


def test_an_hr_system_key_cannot_read_the_quarterly_report(live, monitored):
    with live.client("hr") as client:
        assert client.get("/effects/report", params={"department": live.org.unit, "quarter": "2026Q4"}
                          ).status_code == 403
    with live.client("other_manager") as client:
        assert client.get("/effects/report", params={"department": live.org.unit, "quarter": "2026Q4"}
                          ).status_code == 404
        assert client.get("/effects", params={"department": live.org.unit}).status_code == 404
    with live.client("manager") as client:
        report = client.get("/effects/report", params={"department": live.org.unit, "quarter": "2026Q4"}).json()
        assert report["department_id"] == live.org.unit and report["summary_zh"]


def test_chinese_is_drawn_in_a_cjk_font():
    """`make test` installs one (Debian fonts-wqy-zenhei); without it every chart label would be boxes."""
    if not CHROMIUM.exists():
        pytest.skip("Debian Chromium not installed")
    family = subprocess.run(["fc-match", "-f", "%{family}", ":lang=zh-cn"], capture_output=True, text=True).stdout
    assert any(name in family for name in ("WenQuanYi", "Noto Sans CJK", "Noto Serif CJK", "Source Han")), family
