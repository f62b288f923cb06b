"""In a real browser: a biller starts the day on the home page, opens the denial work queue from its card, opens an
item and writes an appeal letter, then downloads the letter (a real PDF naming the claim); and replaces another
denied claim, landing on the new claim. The denials are posted from an 835 through the posting service first."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader
from sqlalchemy import select

from billing.models import Claim
from tests.billing.test_denials import denied_practice
from tests.browser.conftest import sign_in


@pytest.fixture(scope="module")
def denied(services, factory, tmp_path_factory):
    return denied_practice(services, factory, tmp_path_factory, st02="7501")


def _home_of(page: Page, denied) -> None:
    sign_in(page, denied.bp.biller_email)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Work queues")
    switcher = page.get_by_label("Practice", exact=True)
    if switcher.count():  # a biller of several practices picks this one
        switcher.select_option(denied.bp.slug)
        page.get_by_role("button", name="Switch").click()


def test_a_biller_works_a_denial_from_the_home_queue(page: Page, services, denied) -> None:
    _home_of(page, denied)
    card = page.locator("#queue-denials")
    expect(card).to_contain_text(re.compile(r"[1-9]\d* open items?"))
    card.get_by_role("link", name="Denials").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Denial work")
    row = page.locator("tbody tr").filter(has=page.locator(f'a.mono:text-is("{denied.medical_necessity_claim}")'))
    row.first.get_by_role("link", name=re.compile(r"^Denied line \d+")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"claim {denied.medical_necessity_claim}")

    # An empty argument is refused by the browser on the field itself (required), and nothing is sent.
    argument = page.get_by_label("Your argument")
    page.get_by_role("button", name="Write the appeal letter").click()
    assert argument.evaluate("el => el.validity.valueMissing")
    expect(page.get_by_text("No appeal yet.")).to_be_visible()
    argument.fill("The visit was medically necessary: see the enclosed chart notes.")
    page.get_by_role("button", name="Write the appeal letter").click()
    expect(page.locator(".flash--success")).to_contain_text("Appeal letter")
    link = page.get_by_role("link", name=re.compile(r"Download the letter \(PDF\)"))
    with page.expect_download() as info:
        link.first.click()
    pdf = PdfReader(io.BytesIO(open(info.value.path(), "rb").read()))
    letter = " ".join(p.extract_text() for p in pdf.pages)
    assert str(denied.medical_necessity_claim) in letter and "medically necessary" in letter

    # Another denied claim is corrected and resubmitted: the replacement claim opens.
    page.goto(f"/practices/{denied.bp.slug}/denial-work")
    row = page.locator("tbody tr").filter(has=page.locator(f'a.mono:text-is("{denied.missing_info_claim}")'))
    row.first.get_by_role("link", name=re.compile(r"^Denied line \d+")).click()
    page.get_by_label("What is corrected").fill("Added the missing referring provider")
    page.get_by_role("button", name=f"Create replacement of claim {denied.missing_info_claim}").click()
    with services.db.tenant_session(denied.bp.slug) as s:
        replacement = s.scalar(
            select(Claim.id).where(Claim.original_claim_id == denied.missing_info_claim).order_by(Claim.id.desc())
        )
    assert replacement is not None
    expect(page.locator(".flash--success")).to_contain_text(f"claim {replacement} created as a draft")
    page.goto(f"/practices/{denied.bp.slug}/claims/{replacement}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(str(replacement))
