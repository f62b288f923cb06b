"""The document pages through a browser-like client: a doctor reaches the practice's documents from the navigation,
filters them by kind, opens a claim's and a payment's documents and downloads an EOB, a patient statement and an
appeal letter (audited, then redirected to the file in S3); billers find the same links on the claim and remittance
pages; agencies and other tenants do not. Data: the sandbox's real 835, posted, with its EOBs rendered by the EOB job
function, an appeal letter of its denied claim (billing.appeals) and a statement run (billing.statements)."""

from __future__ import annotations

import io
import re
import urllib.request
from html import unescape

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing.models import Patient, Statement
from tenants.models import AuditEntry, Practice
from tenants.registry import get_practice
from tests.api.test_documents_api import documented_practice
from tests.api.test_remittances_api import posted_practice
from tests.portal.test_portal import portal_login


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.fixture(scope="module")
def posted(services, factory, tmp_path_factory):
    return documented_practice(services, factory, tmp_path_factory)


@pytest.fixture(scope="module")
def practice(services, posted):
    with services.db.shared_session() as s:
        found = get_practice(s, posted.bp.slug)
        s.expunge(found)
        return found


def _client(app, email: str):
    client = app.test_client()
    portal_login(client, email)
    return client


@pytest.fixture()
def doctor(app, factory, practice):
    client = _client(app, factory.user("doctor", practice=practice))
    assert client.get("/home").status_code == 200  # selects the doctor's practice for the navigation
    return client


@pytest.fixture()
def biller(app, posted):
    client = _client(app, posted.bp.biller_email)
    page = client.get("/home")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/practice", data={"practice": posted.bp.slug, "csrf_token": token})
    return client


def _downloads(services, slug: str) -> list[AuditEntry]:
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.practice_id == practice_id, AuditEntry.action == "download")
                .order_by(AuditEntry.id)
            )
        )


def test_doctor_reaches_documents_and_downloads_an_eob(services, posted, doctor):
    slug = posted.bp.slug
    home = doctor.get("/home").get_data(as_text=True)
    assert f'href="/practices/{slug}/documents"' in home  # the navigation
    page = doctor.get(f"/practices/{slug}/documents")
    html, words = page.get_data(as_text=True), text(page)
    assert page.status_code == 200
    assert "<h1>Documents" in html and 'aria-current="page">Documents</a>' in html
    assert "Payment EOB" in words and f"EOB of claim {posted.paid_claim_id}" in words and "REMITAPI01" in words
    eob = f"eob-{posted.deposit_id}-{posted.paid_claim_id}"
    link = f"/practices/{slug}/documents/{eob}/download"
    assert link in html
    assert f"/practices/{slug}/claims/{posted.paid_claim_id}/documents" in html
    assert f'/practices/{slug}/claims/{posted.paid_claim_id}"' not in html  # no claim page for a doctor

    before = len(_downloads(services, slug))
    response = doctor.get(link)
    assert response.status_code == 302
    with urllib.request.urlopen(response.headers["Location"], timeout=10) as fetched:  # noqa: S310 - test S3
        pdf = PdfReader(io.BytesIO(fetched.read()))
    assert str(posted.paid_claim_id) in " ".join(p.extract_text() for p in pdf.pages)
    after = _downloads(services, slug)
    assert len(after) == before + 1 and after[-1].object_id == eob and after[-1].object_type == "document"


def test_documents_filter_by_kind_and_pages(posted, doctor):
    only = text(doctor.get(f"/practices/{posted.bp.slug}/documents?kind=remittance_eob"))
    assert "Payment EOB" in only and f"EOB of claim {posted.paid_claim_id}" not in only
    assert "Showing 1–1 of 1 (Payment EOB only)" in only
    assert doctor.get(f"/practices/{posted.bp.slug}/documents?kind=<script>&page=x").status_code == 200


def test_claim_and_payment_documents_pages(posted, doctor):
    slug = posted.bp.slug
    claim = doctor.get(f"/practices/{slug}/claims/{posted.paid_claim_id}/documents")
    html, words = claim.get_data(as_text=True), text(claim)
    assert claim.status_code == 200 and f"Documents of claim {posted.paid_claim_id}" in words
    assert f"/documents/835-{posted.deposit_id}/download" in html and "835 remittance file" in words
    assert f"/documents/remittance_eob-{posted.deposit_id}/download" in html
    payment = doctor.get(f"/practices/{slug}/deposits/{posted.deposit_id}/documents")
    assert payment.status_code == 200 and "Documents of the payment REMITAPI01" in text(payment)
    assert f"/documents/eob-{posted.deposit_id}-{posted.denied_claim_id}/download" in payment.get_data(as_text=True)
    assert doctor.get(f"/practices/{slug}/claims/999999999/documents").status_code == 404
    assert doctor.get(f"/practices/{slug}/deposits/999999999/documents").status_code == 404
    assert doctor.get(f"/practices/{slug}/documents/eob-{posted.deposit_id}-999999/download").status_code == 404


def test_biller_finds_documents_on_claim_and_remittance_pages(posted, biller):
    slug = posted.bp.slug
    claim = biller.get(f"/practices/{slug}/claims/{posted.paid_claim_id}")
    html = claim.get_data(as_text=True)
    assert claim.status_code == 200 and 'id="documents-heading"' in html
    assert f"/practices/{slug}/documents/eob-{posted.deposit_id}-{posted.paid_claim_id}/download" in html
    assert f"/practices/{slug}/documents/835-{posted.deposit_id}/download" in html
    remittance = biller.get(f"/practices/{slug}/remittances/{posted.deposit_id}")
    html = remittance.get_data(as_text=True)
    assert f"/practices/{slug}/documents/remittance_eob-{posted.deposit_id}/download" in html
    assert f"/practices/{slug}/documents/eob-{posted.deposit_id}-{posted.line_denied_claim_id}/download" in html
    assert "Payment EOB" in text(remittance) and "Download the 835" in text(remittance)


def test_an_eob_not_rendered_yet_says_so(app, services, factory, tmp_path_factory):
    fresh = posted_practice(services, factory, tmp_path_factory)
    client = _client(app, fresh.bp.biller_email)
    response = client.get(f"/practices/{fresh.bp.slug}/documents/eob-{fresh.deposit_id}-{fresh.paid_claim_id}/download")
    assert response.status_code == 404 and "not ready yet" in text(response)


def test_agencies_and_other_tenants_are_refused(app, services, factory, world, posted):
    agency = factory.agency([posted.bp.slug])
    urls = [
        f"/practices/{posted.bp.slug}/documents",
        f"/practices/{posted.bp.slug}/claims/{posted.paid_claim_id}/documents",
        f"/practices/{posted.bp.slug}/deposits/{posted.deposit_id}/documents",
        f"/practices/{posted.bp.slug}/documents/eob-{posted.deposit_id}-{posted.paid_claim_id}/download",
    ]
    before = len(_downloads(services, posted.bp.slug))
    # An agency linked to the practice holds no documents:read (403); other tenants do not see the practice (404).
    refusals = [
        (factory.user("agency", agency=agency), 403),
        (world.users["biller_y"], 404),
        (world.users["doctor_a"], 404),
    ]
    for email, status in refusals:
        client = _client(app, email)
        for url in urls:
            response = client.get(url)
            assert response.status_code == status, (email, url, response.status_code)
            assert "REMITAPI01" not in response.get_data(as_text=True)
    assert len(_downloads(services, posted.bp.slug)) == before


def _pdf_at(location: str) -> str:
    with urllib.request.urlopen(location, timeout=10) as fetched:  # noqa: S310 - the test's S3
        return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(fetched.read())).pages).split())


def test_doctor_sees_and_downloads_statements_and_appeal_letters(services, posted, doctor):
    slug = posted.bp.slug
    with services.db.tenant_session(slug) as s:
        statement_id, account = s.execute(
            select(Statement.id, Patient.account_number)
            .join(Patient, Patient.id == Statement.patient_id)
            .where(Statement.patient_id == posted.owing_patient_id)
        ).one()
    letter = f"appeal-{posted.appeal_id}-{posted.denied_claim_id}"
    page = doctor.get(f"/practices/{slug}/documents")
    html, words = page.get_data(as_text=True), text(page)
    assert "Patient statement" in words and f"Appeal letter of claim {posted.denied_claim_id}" in words
    assert f"/practices/{slug}/documents/statement-{statement_id}/download" in html
    assert f"/practices/{slug}/documents/{letter}/download" in html
    assert '<option value="statement">Patient statement</option>' in html
    assert '<option value="appeal">Appeal letter</option>' in html

    only = doctor.get(f"/practices/{slug}/documents?kind=statement")
    words = text(only)
    assert f"Showing 1–{len(posted.statement_ids)} of {len(posted.statement_ids)} (Patient statement only)" in words
    assert account in words and "EOB of claim" not in words and "Appeal letter of claim" not in words
    only = text(doctor.get(f"/practices/{slug}/documents?kind=appeal"))
    assert "Showing 1–1 of 1 (Appeal letter only)" in only and "Patient statement" not in only.split("Showing")[-1]

    before = len(_downloads(services, slug))
    response = doctor.get(f"/practices/{slug}/documents/statement-{statement_id}/download")
    assert response.status_code == 302
    pdf = _pdf_at(response.headers["Location"])
    assert account in pdf and "Amount due" in pdf and "25.00" in pdf
    response = doctor.get(f"/practices/{slug}/documents/{letter}/download")
    assert response.status_code == 302
    assert f"claim {posted.denied_claim_id}" in _pdf_at(response.headers["Location"])
    after = _downloads(services, slug)[before:]
    assert [a.object_id for a in after] == [f"statement-{statement_id}", letter]


def test_a_claims_documents_show_its_appeal_letter(posted, doctor, biller):
    slug = posted.bp.slug
    letter = f"/practices/{slug}/documents/appeal-{posted.appeal_id}-{posted.denied_claim_id}/download"
    page = doctor.get(f"/practices/{slug}/claims/{posted.denied_claim_id}/documents")
    assert page.status_code == 200 and letter in page.get_data(as_text=True)
    assert f"Appeal letter of claim {posted.denied_claim_id}" in text(page)
    # The biller's claim page lists it in its Documents section; another claim's page does not.
    claim = biller.get(f"/practices/{slug}/claims/{posted.denied_claim_id}")
    html = claim.get_data(as_text=True)
    assert claim.status_code == 200 and 'id="documents-heading"' in html and letter in html
    assert letter not in biller.get(f"/practices/{slug}/claims/{posted.paid_claim_id}").get_data(as_text=True)


def test_statements_and_letters_are_refused_to_agencies_and_other_tenants(app, services, factory, world, posted):
    slug = posted.bp.slug
    agency = factory.agency([slug])
    urls = [
        f"/practices/{slug}/documents?kind=statement",
        f"/practices/{slug}/claims/{posted.denied_claim_id}/documents",
        f"/practices/{slug}/documents/statement-{posted.statement_ids[0]}/download",
        f"/practices/{slug}/documents/appeal-{posted.appeal_id}-{posted.denied_claim_id}/download",
    ]
    before = len(_downloads(services, slug))
    for email, status in [(factory.user("agency", agency=agency), 403), (world.users["doctor_a"], 404)]:
        client = _client(app, email)
        for url in urls:
            response = client.get(url)
            assert response.status_code == status, (email, url, response.status_code)
            assert "statement-" not in response.get_data(as_text=True)
    assert len(_downloads(services, slug)) == before
