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
from billing.edi_intake import intake, release_quarantined
from billing.models import BillingIdentity, ClaimLine, Deposit, Underpayment
from integrations.storage import company_key
from integrations.x12.remit835 import parse_835
from tenants.models import BillingCompany, UnmatchedEdiSet
from tenants.registry import get_practice
from tests.api.test_remittances_api import UNKNOWN_PCN, posted_practice
from tests.billing.factories import billing_practice, npi
from tests.billing.test_underpayments import submit_and_answer
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
    assert "Download the 835" in words and "835-REMITAPI01.835" in words
    assert f"/practices/{posted.bp.slug}/documents/835-{posted.deposit_id}/download" in html
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
    assert re.search(r"Denials .*? \d+ open items?", body)  # the denial work queue's open items
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


# --- underpayments --------------------------------------------------------------------------------------------------


def _underpayment(services, posted, claim_id: int, *, shortfall: str) -> int:
    with services.db.tenant_session(posted.bp.slug) as s:
        line = s.scalars(select(ClaimLine).where(ClaimLine.claim_id == claim_id)).first()
        row = Underpayment(
            claim_id=claim_id, claim_line_id=line.id, deposit_id=posted.deposit_id, payer_id=posted.bp.payer_id,
            procedure_code="99213", expected_allowed=Decimal("95.00"), paid=Decimal("50.00"),
            patient_responsibility=Decimal("20.00"), shortfall=Decimal(shortfall), tolerance=Decimal("1.00"),
        )  # fmt: skip
        s.add(row)
        s.commit()
        return row.id


def _token(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_underpayment_queue_page_and_resolve(services, posted, biller, app, factory):
    row_id = _underpayment(services, posted, posted.paid_claim_id, shortfall="25.00")
    url = f"/practices/{posted.bp.slug}/underpayments"
    page = biller.get(url)
    html, words = page.get_data(as_text=True), text(page)
    assert page.status_code == 200
    assert "<h1>Underpayments" in html and 'aria-current="page">Underpayments</a>' in html  # the tab
    assert "Expected" in words and "Shortfall" in words and "Acme Health Plan" in words and "REMITAPI01" in words
    assert "$95.00" in words and "$50.00" in words and "$25.00" in words
    assert f'id="underpayment-{row_id}"' in html
    assert re.search(rf'id="underpayment-{row_id}">.*?<td class="num">\d+</td>', html, re.S)  # the age in days
    assert re.search(r"Underpayments .*? \d+ underpaid lines?", text(biller.get("/home")))  # the home card
    assert text(biller.get(f"{url}?payer_id=999999")).count("No open underpayment for this payer") == 1

    resolve = f"{url}/{row_id}/resolve"
    assert biller.post(resolve, data={"note": "accepted"}).status_code == 400  # no CSRF token
    empty = biller.post(resolve, data={"note": "  ", "csrf_token": _token(page)})
    assert empty.status_code == 422 and "Say why the line leaves the queue" in text(empty)
    done = biller.post(resolve, data={"note": "Accepted: contract amended", "csrf_token": _token(page)})
    assert done.status_code == 302 and done.headers["Location"].endswith(url)
    after = biller.get(url)
    assert "resolved" in text(after) and f'id="underpayment-{row_id}"' not in after.get_data(as_text=True)
    with services.db.tenant_session(posted.bp.slug) as s:
        row = s.get(Underpayment, row_id)
        assert (row.status, row.note) == ("resolved", "Accepted: contract amended") and row.resolved_by_user_id
    again = biller.post(resolve, data={"note": "again", "csrf_token": _token(page)})
    assert again.status_code == 302 and "already resolved" in text(biller.get(url))
    assert biller.post(f"{url}/999999999/resolve", data={"note": "x", "csrf_token": _token(page)}).status_code == 404

    with services.db.shared_session() as s:
        practice = get_practice(s, posted.bp.slug)
    doctor = _client(app, factory.user("doctor", practice=practice))
    assert doctor.get(url).status_code == 403


# --- the unmatched EDI queue ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unmatched(services, factory, tmp_path_factory):
    """A practice whose billing NPI changed after its claims went out: its 835, uploaded, matches no practice."""
    bp = billing_practice(services, factory)
    _claims, era = submit_and_answer(services, bp, factory, tmp_path_factory.mktemp("unmatched"), visits=1)
    with services.db.tenant_session(bp.slug) as s:
        s.get(BillingIdentity, 1).group_npi = npi()
        s.commit()
    with services.db.shared_session() as s:
        company_id = s.scalar(select(BillingCompany.id).where(BillingCompany.slug == bp.company_slug))
    key = company_key(company_id, "edi", "inbound", "unmatched-test.x12")
    services.storage.put(key, era.encode(), content_type="application/edi-x12")
    report = intake(
        services.db, era.encode(), storage_key=key, slugs=[bp.slug], inline=False, dispatcher=services.dispatcher,
        company_id=company_id,
    )  # fmt: skip
    # A payee NPI of none of the company's practices is held for the operator, who releases it to the company: it
    # then waits in the company's unmatched queue.
    (held,) = report.quarantined
    released = release_quarantined(
        services.db, services.storage, held["quarantine_id"], bp.company_slug, dispatcher=services.dispatcher
    )
    (entry,) = released["unmatched"]
    return bp, entry["unmatched_id"], parse_835(era)[0]


def test_unmatched_edi_page_assigns_after_confirmation(app, services, world, unmatched):
    bp, unmatched_id, remittance = unmatched
    client = _client(app, bp.biller_email)
    home = text(client.get("/home"))
    assert "Unmatched EDI" in home and "1 set waiting" in home
    page = client.get("/edi/unmatched")
    html, words = page.get_data(as_text=True), text(page)
    assert page.status_code == 200 and "<h1>Unmatched EDI" in html
    assert f'id="unmatched-{unmatched_id}"' in html and remittance.trace_number in words
    assert remittance.payee_npi in words and "no practice with billing NPI" in words
    assert f'<option value="{bp.slug}">' in html

    confirm_url = f"/edi/unmatched/{unmatched_id}/assign?practice={bp.slug}"
    confirm = client.get(confirm_url)
    assert confirm.status_code == 200
    assert f"Assign this 835 set to Practice {bp.slug}?" in text(confirm) and remittance.trace_number in text(confirm)
    assert client.get(f"/edi/unmatched/{unmatched_id}/assign?practice={world.practices['C']}").status_code == 302
    post_url = f"/edi/unmatched/{unmatched_id}/assign"
    assert client.post(post_url, data={"practice": bp.slug}).status_code == 400  # no CSRF token

    # Another company's biller neither sees it nor can assign it; a doctor handles no EDI.
    outsider = _client(app, world.users["biller_y"])
    assert f'id="unmatched-{unmatched_id}"' not in outsider.get("/edi/unmatched").get_data(as_text=True)
    assert outsider.get(confirm_url).status_code == 404
    outsider_token = _token(outsider.get("/edi/unmatched"))
    assert outsider.post(post_url, data={"practice": bp.slug, "csrf_token": outsider_token}).status_code == 404
    assert _client(app, world.users["doctor_a"]).get("/edi/unmatched").status_code == 403

    done = client.post(post_url, data={"practice": bp.slug, "csrf_token": _token(confirm)})
    assert done.status_code == 302
    after = client.get("/edi/unmatched")
    words = text(after)
    assert f"The 835 set was queued for posting into Practice {bp.slug}" in words
    assert f'id="unmatched-{unmatched_id}"' not in after.get_data(as_text=True) and "Recently assigned" in words
    with services.db.shared_session() as s:
        row = s.get(UnmatchedEdiSet, unmatched_id)
        job_id = row.job_id
        assert row.assigned_at is not None and row.assigned_by is not None
    job = services.dispatcher.queue("posting").fetch_job(job_id)
    assert job is not None and job.args[0] == bp.slug
    job.delete()  # no worker runs here: leave the queue as it was
    again = client.post(post_url, data={"practice": bp.slug, "csrf_token": _token(confirm)})
    assert again.status_code == 302 and "already assigned" in text(client.get("/edi/unmatched"))
