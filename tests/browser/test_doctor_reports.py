"""In a real browser (the portal's CSP in force): a doctor signs in, sees the month's figures and the charts drawn
(matplotlib SVG images that decode, each beside the table of its figures)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from playwright.sync_api import Page, expect

from tests.api.test_reports_api import remitted, reported  # noqa: F401  (module fixtures)
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import login


def test_a_doctor_sees_the_months_figures_and_the_charts(page: Page, client, reported) -> None:  # noqa: F811
    r = reported
    headers = login(client, r.users["doctor"])
    figures = client.get(f"/api/v1/practices/{r.bp.slug}/reports/monthly-summary", headers=headers).get_json()[
        "figures"
    ]
    sign_in(page, r.users["doctor"])
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"monthly summary, {date.today():%B %Y}")
    charges = f"${Decimal(figures['charges']):,.2f}"
    expect(page.locator(".stat").filter(has_text="Charges").first).to_contain_text(charges)
    charts = page.locator("figure.chart img")
    expect(charts).to_have_count(3)
    for index in range(3):
        # A data: SVG the CSP refused or the browser could not decode would have no natural size.
        assert charts.nth(index).evaluate("img => img.complete && img.naturalWidth > 100"), index
    expect(page.get_by_role("table", name="Charges and payments of the last 12 months, oldest first")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "doctor_month_at_a_glance.png"), full_page=True)
    page.get_by_label("Month", exact=True).fill("2025-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("January 2025")
