"""In a real browser: a collection agency's user opens a practice's collections page from the home page and downloads
an export file (from storage, through the portal's audited link); the file parses in the agency's own format and
holds the placed account. The placement and the export are made through the collections service first."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from billing import agency_formats, collections
from billing.models import AgencyExport, Patient
from tenants.models import CollectionAgency
from tests.billing.factories import billing_practice
from tests.browser.conftest import sign_in
from tests.portal.test_portal_collections import _placeable


def test_an_agency_downloads_its_export_file(page: Page, services, factory) -> None:
    bp = billing_practice(services, factory)
    agency = factory.agency([bp.slug])
    placed = _placeable(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        collections.approve(s, bp.access, placed, agency.id)
        s.commit()
        collections.export_agency(s, services.storage, bp.slug, agency.id)
        s.commit()
        export = s.scalar(select(AgencyExport).where(AgencyExport.agency_id == agency.id))
        account = s.get(Patient, placed).account_number
        terms = collections.terms_of(s, agency.id)
    with services.db.shared_session() as s:
        fmt = agency_formats.validate_format(collections.format_config(s.get(CollectionAgency, agency.id), terms))

    sign_in(page, factory.user("agency", agency=agency))
    expect(page.get_by_role("heading", level=1)).to_have_text("Placed accounts")
    page.get_by_role("link", name="Placed accounts and export files").first.click()
    expect(page.get_by_role("heading", name="Export files")).to_be_visible()
    expect(page.locator("main")).to_contain_text(account)
    with page.expect_download() as info:
        page.get_by_role("link", name=export.filename).click()
    download = info.value
    assert download.suggested_filename == export.filename
    data = Path(download.path()).read_bytes()
    records = agency_formats.parse(fmt, data)
    accounts = agency_formats.accounts_from_records(fmt, records)
    assert [a["account_number"] for a in accounts] == [account]
    assert len(records) == export.row_count

    # Returning an account cannot be undone: the browser sends nothing until the confirmation box is ticked.
    page.get_by_label("Reason").first.fill("cannot locate debtor")
    page.get_by_role("button", name="Return account").first.click()
    box = page.get_by_label("Return the account to the practice for good").first
    assert box.evaluate("el => el.validity.valueMissing")
    expect(page.locator("main")).to_contain_text(account)
    box.check()
    page.get_by_role("button", name="Return account").first.click()
    expect(page.locator(".flash")).to_contain_text("Account returned")
