"""Report pages on the portal show the API's figures: the doctor's home (the month at a glance with month over month,
charts with their tables, A/R aging, provider allocation, a month picker, read-only), the billers' report pages
(summary, aging with drill-down links to claim pages, allocation, deposits, company overview) and their CSV
downloads, which are the API's CSV. Charts are images (matplotlib SVG) with a table of the same figures."""

from __future__ import annotations

import base64
import re
from datetime import date
from decimal import Decimal
from html import unescape

import pytest

from billing import reports
from tests.api.test_reports_api import Reported, base, remitted, reported  # noqa: F401  (module fixtures)
from tests.conftest import login
from tests.portal.test_portal import portal_login


def words(response) -> str:
    """The page's words: tags stripped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def usd(amount) -> str:
    amount = Decimal(amount)
    return f"−${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _portal(app, email: str):
    client = app.test_client()
    portal_login(client, email)
    return client


@pytest.fixture()
def doctor(app, reported):  # noqa: F811
    return _portal(app, reported.users["doctor"])


@pytest.fixture()
def biller(app, reported):  # noqa: F811
    client = _portal(app, reported.users["biller"])
    page = client.get("/home")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/practice", data={"practice": reported.bp.slug, "csrf_token": token})
    return client


def _api(client, r: Reported, email: str, path: str, **query) -> dict:
    response = client.get(f"/api/v1/practices/{r.bp.slug}/{path}", headers=login(client, email), query_string=query)
    assert response.status_code == 200
    return response.get_json()


def _svgs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]


def test_the_doctors_home_shows_the_month_with_charts_and_their_tables(app, client, doctor, reported):  # noqa: F811
    r = reported
    page = doctor.get("/home")
    assert page.status_code == 200
    html, text = page.get_data(as_text=True), words(page)
    summary = _api(client, r, r.users["doctor"], "reports/monthly-summary")
    figures = summary["figures"]
    assert f"{date.today():%B %Y}" in text
    # The headline figures with their change from the month before (nothing then: the change is the month itself).
    for key in ("charges", "payments", "ar_end"):
        assert usd(figures[key]) in text
    assert f"Charges {usd(figures['charges'])} up {usd(figures['charges'])} on the month before" in text
    assert f"Net collection rate {figures['net_collection_rate']}%" in text
    # Three charts, each an SVG image made by matplotlib, each followed by the table of its figures.
    svgs = _svgs(html)
    assert len(svgs) == 3 and all(b"Matplotlib" in svg or b"matplotlib" in svg for svg in svgs)
    assert html.count('<figure class="chart">') == 3 and html.count("aria-describedby=") >= 3
    for month in summary["months"]:
        assert date.fromisoformat(month["month"] + "-01").strftime("%B %Y") in text
    aging = _api(client, r, r.users["doctor"], "reports/ar-aging")
    for row in aging["rows"]:
        cells = " ".join(usd(row["buckets"][b]) for b in aging["buckets"])
        assert f"{row['label']} {cells} {usd(row['total'])}" in text
    allocation = _api(client, r, r.users["doctor"], "reports/provider-allocation")
    assert f"Reyes, Ana {usd(allocation['total'])} Total {usd(allocation['total'])}" in text
    # Read-only: nothing to post, and no link into claims (a doctor does not work claims).
    assert (
        '<form method="post"' not in html.replace('action="/logout"', "").split("<main")[1].split("practice-select")[0]
    )
    assert "/claims/" not in html
    # A month picker with a label, and headings and captions for every table.
    assert '<label class="field__label" for="month">Month</label>' in html and 'type="month"' in html
    assert html.count("<caption") == html.count("<table") >= 4


def test_the_month_picker_shows_that_month(doctor, reported):  # noqa: F811
    page = doctor.get("/home", query_string={"month": "2025-01"})
    text = words(page)
    # Nothing was billed or owed then (the practice's activity is this month's).
    assert "January 2025" in text and "No figures for January 2025" in text and "Next month" in text
    assert "No figures for" not in words(doctor.get("/home", query_string={"month": f"{date.today():%Y-%m}"}))
    assert "Next month" in text
    assert doctor.get("/home", query_string={"month": "garbage"}).status_code == 200


def test_biller_report_pages_show_the_api_figures(app, client, biller, reported):  # noqa: F811
    r = reported
    slug = r.bp.slug
    summary = words(biller.get(f"/practices/{slug}/reports/summary"))
    figures = _api(client, r, r.users["biller"], "reports/monthly-summary")["figures"]
    assert f"Charges {usd(figures['charges'])}" in summary and "Download CSV" in summary
    aging_page = biller.get(f"/practices/{slug}/reports/aging")
    html = aging_page.get_data(as_text=True)
    aging = _api(client, r, r.users["biller"], "reports/ar-aging")
    payer = next(row for row in aging["rows"] if row["kind"] == "payer")
    bucket = next(b for b, amount in payer["buckets"].items() if amount != "0.00")
    query = f"as_of={date.today().isoformat()}&amp;row=payer:{r.bp.payer_id}&amp;bucket={bucket}"
    assert f"/practices/{slug}/reports/aging/claims?{query}" in html, re.findall(r'href="[^"]*aging/claims[^"]*"', html)
    drill = biller.get(f"/practices/{slug}/reports/aging/claims",
                       query_string={"row": payer["key"], "bucket": bucket})  # fmt: skip
    assert drill.status_code == 200
    assert f'href="/practices/{slug}/claims/{r.open_claim_id}"' in drill.get_data(as_text=True)
    assert usd(payer["buckets"][bucket]) in words(drill)
    allocation = words(biller.get(f"/practices/{slug}/reports/allocation"))
    total = _api(client, r, r.users["biller"], "reports/provider-allocation")["total"]
    assert f"Total {usd(total)}" in allocation
    deposits = biller.get(f"/practices/{slug}/reports/deposits")
    assert "Every deposit reconciles." in words(deposits)
    assert r.remittance.trace_number in words(deposits)
    assert biller.get(f"/practices/{slug}/reports/deposits", query_string={"sort": "-amount"}).status_code == 200
    overview = biller.get("/reports/company-overview")
    text = words(overview)
    api_overview = client.get("/api/v1/reports/company-overview", headers=login(client, r.users["biller"])).get_json()
    mine = next(p for p in api_overview["practices"] if p["slug"] == slug)
    assert f"{mine['name']} {usd(mine['ar_total'])}" in text
    for queue in reports.WORK_QUEUES.values():
        assert queue.label in text


@pytest.mark.parametrize(
    ("page", "api"),
    [
        ("reports/summary", "reports/monthly-summary"),
        ("reports/aging", "reports/ar-aging"),
        ("reports/allocation", "reports/provider-allocation"),
        ("reports/deposits", "reports/deposits"),
    ],
)
def test_the_portals_csv_is_the_apis(client, biller, reported, page, api):  # noqa: F811
    r = reported
    got = biller.get(f"/practices/{r.bp.slug}/{page}", query_string={"format": "csv"})
    assert got.status_code == 200 and got.mimetype == "text/csv"
    expected = client.get(f"{base(r)}/{api.removeprefix('reports/')}", headers=login(client, r.users["biller"]),
                          query_string={"format": "csv"})  # fmt: skip
    assert got.get_data(as_text=True) == expected.get_data(as_text=True)
    assert got.get_data(as_text=True).splitlines()[0].startswith(("month", "key", "deposit_id"))


def test_who_sees_which_report_page(app, reported):  # noqa: F811
    r = reported
    doctor = _portal(app, r.users["doctor"])
    slug = r.bp.slug
    assert doctor.get(f"/practices/{slug}/reports/summary").status_code == 200
    # The claims behind a figure name patients: billers' work, not the doctor's.
    drill = doctor.get(f"/practices/{slug}/reports/aging/claims", query_string={"row": "patients", "bucket": "0-30"})
    assert drill.status_code == 403
    assert doctor.get("/reports/company-overview").status_code == 403
    other = _portal(app, r.users["other_doctor"])
    assert other.get(f"/practices/{slug}/reports/summary").status_code == 404
    foreign = _portal(app, r.users["foreign_biller"])
    assert foreign.get(f"/practices/{slug}/reports/aging").status_code == 404
    agency = _portal(app, r.users["agency"])
    assert agency.get(f"/practices/{slug}/reports/summary").status_code in (403, 404)
    assert (
        doctor.get(f"/practices/{slug}/reports/monthly-summary.pdf", query_string={"month": "2020-01"}).status_code
        == 404
    )
