"""The remittance pages through a browser-like client: remittances list and detail (with the 835 download link and the
ledger link), posting exceptions, denials with filters and sorting, a claim's ledger page, the home page's cards and
the nav link, and who may see them. Data posted from the sandbox's real 835 (see tests/api/test_remittances_api.py)."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from sqlalchemy import select

from billing import ledger
from billing.models import ClaimLine, Deposit
from tenants.registry import get_practice
from tests.api.test_remittances_api import UNKNOWN_PCN, posted_practice
from tests.portal.test_portal import portal_login


def text(response) -> str:
    """The page's words: tags stripped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture(scope="module")
def posted(services, factory, tmp_path_factory):
    return posted_practice(services, factory, tmp_path_factory)


def _client(app, email: str):
    client = app.test_client()
    portal_login(client, email)
    return client


@pytest.fixture()
def biller(app, posted):
    client = _client(app, posted.bp.biller_email)
    # Work in this practice (the nav links and the home cards follow the selected practice).
    page = client.get("/home")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/practice", data={"practice": posted.bp.slug, "csrf_token": token})
    return client


def _usd(amount) -> str:
    amount = Decimal(amount)
    return f"−${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _urls(posted) -> list[str]:
    base = f"/practices/{posted.bp.slug}"
    return [
        f"{base}/remittances",
        f"{base}/remittances/{posted.deposit_id}",
        f"{base}/posting-exceptions",
        f"{base}/denials",
        f"{base}/denials?reason=CO-50",
        f"{base}/claims/{posted.paid_claim_id}/ledger",
    ]


def test_remittances_list_and_detail(services, posted, biller):
    page = biller.get(f"/practices/{posted.bp.slug}/remittances")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<h1>Remittances" in body and "<caption" in body and "REMITAPI01" in body
    assert 'aria-current="page">Remittances</a>' in body  # the nav link
    with services.db.tenant_session(posted.bp.slug) as s:
        amount = s.get(Deposit, posted.deposit_id).amount
    assert _usd(amount) in body

    detail = biller.get(f"/practices/{posted.bp.slug}/remittances/{posted.deposit_id}")
    html = detail.get_data(as_text=True)
    words = text(detail)
    assert detail.status_code == 200
    assert "Remittance REMITAPI01" in words and "Payment" in words and "Claims in this remittance" in words
    assert "Download the 835" in words and "era-8001.835" in html
    assert f"/practices/{posted.bp.slug}/claims/{posted.denied_claim_id}/ledger?remittance={posted.deposit_id}" in html
    assert "CO-50: These are non-covered services" in words and "N115: " in words
    assert "Not posted:" in words and UNKNOWN_PCN in words
    assert "Denied" in words and "Exception" in words


def test_posting_exceptions_page(posted, biller):
    page = biller.get(f"/practices/{posted.bp.slug}/posting-exceptions")
    words = text(page)
    assert page.status_code == 200
    assert "Posting exceptions" in words and UNKNOWN_PCN in words and "no claim" in words
    assert f"/practices/{posted.bp.slug}/remittances/{posted.deposit_id}" in page.get_data(as_text=True)


def test_denials_page_with_filters_and_sort(posted, biller):
    base = f"/practices/{posted.bp.slug}/denials"
    page = biller.get(base)
    html, words = page.get_data(as_text=True), text(page)
    assert page.status_code == 200
    assert "<h1>Denials" in html and "By reason" in words and "Denied lines" in words
    assert '<label class="field__label" for="reason">Reason</label>' in html
    assert '<label class="field__label" for="payer_id">Payer</label>' in html
    assert "CO-50: These are non-covered services" in words and "PI-204: " in words and "N130: " in words
    only = text(biller.get(f"{base}?reason=CO-50"))
    assert "Denied lines: CO-50" in only and "PI-204: This service" not in only.split("Denied lines: CO-50", 1)[1]
    by_amount = biller.get(f"{base}?sort=-amount").get_data(as_text=True)
    assert 'aria-sort="descending"' in by_amount and "sorted by amount, highest first" in by_amount
    charges = [
        Decimal(m.replace(",", ""))
        for m in re.findall(r'<td class="num">\$([\d,]+\.\d\d)</td>\s*<td class="reasons">', by_amount)
    ]  # noqa: E501
    assert charges == sorted(charges, reverse=True) and len(charges) >= 3
    nobody = text(biller.get(f"{base}?payer_id=999999"))
    assert "No denied line matches these filters" in nobody
    assert biller.get(f"{base}?reason=<script>&sort=bogus").status_code == 200


def test_claim_ledger_page_shows_the_ledger_figures(services, posted, biller):
    page = biller.get(f"/practices/{posted.bp.slug}/claims/{posted.line_denied_claim_id}/ledger")
    words = text(page)
    assert page.status_code == 200
    assert f"Ledger of claim {posted.line_denied_claim_id}" in words
    assert "Claim balance" in words and "Line balances" in words and "Entries" in words
    with services.db.tenant_session(posted.bp.slug) as s:
        balance = ledger.claim_balance(s, posted.line_denied_claim_id)
        lines = s.scalars(select(ClaimLine.id).where(ClaimLine.claim_id == posted.line_denied_claim_id)).all()
        line_balances = [ledger.line_balance(s, line_id) for line_id in lines]
    for amount in (balance.charges, balance.payments, balance.adjustments, balance.insurance, balance.patient):
        assert _usd(amount) in words
    for lb in line_balances:
        assert _usd(lb.charges) in words and _usd(lb.payments) in words
    assert "PI-204: " in words and "Insurance payment" in words
    assert biller.get(f"/practices/{posted.bp.slug}/claims/999999999/ledger").status_code == 404


def test_home_cards_count_denials_and_exceptions(posted, biller):
    body = text(biller.get("/home"))
    assert re.search(r"Denials .*? \d+ denied lines?", body)
    assert "1 remittance claim to resolve" in body


def test_other_companies_get_404_and_doctors_403(app, services, factory, world, posted):
    outsider = _client(app, world.users["biller_y"])
    for url in _urls(posted):
        response = outsider.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert "REMITAPI01" not in response.get_data(as_text=True)
    with services.db.shared_session() as s:
        practice = get_practice(s, posted.bp.slug)
    doctor = _client(app, factory.user("doctor", practice=practice))
    for url in _urls(posted):
        response = doctor.get(url)
        assert response.status_code == 403, (url, response.status_code)
        assert "REMITAPI01" not in response.get_data(as_text=True)
