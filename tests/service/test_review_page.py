"""The manager review page in Debian's headless Chromium: log in with a manager key, see the queue colored by
grade with the deadline counting down, open a warning, click 确认, and see the acknowledgement in 流程留痕;
then the team's attrition risk with pay masked."""
from __future__ import annotations

import pytest

from tests.service.browser import chromium

pytestmark = [pytest.mark.service, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(tmp_path):
    with chromium(tmp_path / "profile") as context:
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page


def test_manager_acknowledges_a_warning_and_sees_the_audit_entry(live, page):
    with live.client("hr") as client:
        warning = client.post("/assess", json=live.culture_event(30)).json()["warning"]
    page.goto(f"{live.url}/review/")
    page.fill("#api-key", live.keys["manager"])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#whoami:has-text('test-manager')")

    item = page.locator(f"#queue li[data-id='{warning['id']}']")
    item.wait_for()
    assert warning["grade"] in item.get_attribute("class")
    assert "剩余" in item.locator(".countdown").inner_text()
    assert warning["reasons"][0] in item.locator(".why").inner_text()
    assert "责任人" in item.locator(".meta").inner_text()
    item.click()

    detail = page.locator("#detail")
    detail.locator(".status", has_text="待确认").wait_for()
    assert "管理责任" in detail.locator(".owners").inner_text()
    assert "直接责任人的上级" in detail.locator(".owners").inner_text()  # why each person is there
    assert "负责:" in detail.locator(".actions").inner_text() and "截止" in detail.locator(".actions").inner_text()
    assert detail.locator(".reasons li").count() == len(warning["reasons"])
    page.click("#ack")

    entry = page.locator("#audit li", has_text="确认").filter(has_text="test-manager(manager)")
    entry.wait_for()
    assert "已确认" in entry.inner_text()
    detail.locator(".status", has_text="已确认").wait_for()
    assert page.locator("#ack").is_disabled()
    with live.client("admin") as admin:
        stored = admin.get(f"/warnings/{warning['id']}").json()
    assert stored["status"] == "acknowledged" and stored["acknowledged_by"] == "test-manager(manager)"


def test_team_risk_panel_masks_pay_for_a_manager(live, page):
    page.goto(f"{live.url}/review/")
    page.fill("#api-key", live.keys["manager"])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#whoami:has-text('test-manager')")
    assert page.input_value("#team-id") == live.org.unit
    page.click("#team-form button[type=submit]")
    rows = page.locator("#team tbody tr")
    rows.first.wait_for()
    assert "预计 180 天内离职" in page.inner_text("#team")
    cells = rows.first.locator("td")
    assert cells.nth(4).inner_text() == "***" and cells.nth(5).inner_text() == "***"
