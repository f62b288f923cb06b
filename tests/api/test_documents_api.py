"""Documents over HTTP: a claim's and a deposit's documents (EOBs, the 835, a claim's appeal letters) and the practice
documents list (EOBs, patient statements, appeal letters), for every role that may read documents (doctors included)
and refused to agencies and other tenants; every download is audited and lands on the file's bytes (an S3 presigned
URL here; the app's signed file link with local storage); the 835 handed out is the deposit's own transaction set,
never the whole file it came in. EOBs are rendered by the real EOB job function, in this process, into the test's S3;
the appeal letter is written by billing.appeals on the item billing.denials derived from the posted 835, and the
statements by a billing.statements run."""

from __future__ import annotations

import dataclasses
import io
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

import jobs.eob
from billing import appeals, denials, documents, statements
from billing.models import Appeal, Claim, DenialItem, Deposit, InboundFile, Patient, Payer, RemittanceClaim, Statement
from integrations.x12.remit835 import parse_835
from jobs.runtime import Runtime
from medbill.errors import NotFound
from tenants.models import AuditEntry, BillingCompany, Practice
from tenants.registry import get_practice
from tests.api.test_remittances_api import Posted, _measure, posted_practice
from tests.billing.factories import insured_patient
from tests.billing.test_patient_payments import owed_visit
from tests.conftest import login

ARGUMENT = "The extended visit and the ECG were medically necessary: the HbA1c was 9.4 on the day of the visit."


@contextmanager
def _runtime_of(services):
    """Run a job function in this process against the test's database and storage."""
    rt = Runtime(settings=services.settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs.eob, "runtime", lambda: rt)
        yield


def render_eobs(services, slug: str, deposit_id: int) -> dict:
    with _runtime_of(services):
        result = jobs.eob.render_eobs(slug, deposit_id)
    assert result.get("claim_eobs"), result
    return result


@dataclass
class Documented(Posted):
    appeal_id: int = 0  # the appeal letter of the denied claim
    owing_patient_id: int = 0  # owes 25.00 after insurance: statemented by the run
    statement_ids: tuple[int, ...] = ()  # every statement of the run


def documented_practice(services, factory, tmp_path_factory) -> Documented:
    """A posted practice with its EOBs rendered, an appeal letter of the denied claim (billing.appeals, on the work
    item billing.denials derived from the 835) and a statement run (billing.statements) that bills a patient who owes
    25.00 after insurance (and whoever else the 835 left owing)."""
    p = posted_practice(services, factory, tmp_path_factory)
    render_eobs(services, p.bp.slug, p.deposit_id)
    owing = insured_patient(services, p.bp, factory)
    owed_visit(services, p.bp, owing, days_ago=40, owes=("20.00", "5.00"))
    with services.db.tenant_session(p.bp.slug) as s:
        denials.sync(s)
        item = s.scalars(
            select(DenialItem)
            .where(DenialItem.claim_id == p.denied_claim_id, DenialItem.kind == "denial")
            .order_by(DenialItem.id)
        ).first()
        appeal = appeals.create_appeal(s, p.bp.access, item.id, argument=ARGUMENT, storage=services.storage)
        run, created = statements.start_run(s, p.bp.access)
        s.commit()
        assert created
        statements.execute_run(s, run.id, practice_slug=p.bp.slug, storage=services.storage)
        s.commit()
        statement_ids = tuple(sorted(s.scalars(select(Statement.id).where(Statement.run_id == run.id))))
        assert s.scalar(select(Statement.id).where(Statement.patient_id == owing)) in statement_ids
        fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(Posted)}
        return Documented(**fields, appeal_id=appeal.id, owing_patient_id=owing, statement_ids=statement_ids)


@pytest.fixture(scope="module")
def posted(services, factory, tmp_path_factory) -> Documented:
    return documented_practice(services, factory, tmp_path_factory)


@pytest.fixture(scope="module")
def roles(services, factory, posted):
    """Emails of a doctor of the practice, and of an agency linked to it (with an account placed there)."""
    with services.db.shared_session() as s:
        practice = get_practice(s, posted.bp.slug)
        s.expunge(practice)
    agency = factory.agency([posted.bp.slug])
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == posted.bp.company_slug))
        s.expunge(company)
    return {
        "doctor": factory.user("doctor", practice=practice),
        "admin": factory.user("company_admin", company=company),
        "agency": factory.user("agency", agency=agency),
    }


def _base(posted) -> str:
    return f"/api/v1/practices/{posted.bp.slug}"


def _posted_claims(services, posted) -> list[int]:
    with services.db.tenant_session(posted.bp.slug) as s:
        return sorted(
            s.scalars(
                select(RemittanceClaim.claim_id).where(
                    RemittanceClaim.deposit_id == posted.deposit_id, RemittanceClaim.outcome == "posted"
                )
            )
        )


def _audits(services, slug: str, action: str) -> list[AuditEntry]:
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.practice_id == practice_id, AuditEntry.action == action)
                .order_by(AuditEntry.id)
            )
        )


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the test's own S3 server
        return response.read()


def _pdf_text(data: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


# --- tests ----------------------------------------------------------------------------------------------------------


def test_a_claims_documents_for_doctor_and_biller(client, services, posted, roles):
    url = f"{_base(posted)}/claims/{posted.paid_claim_id}/documents"
    for email in (roles["doctor"], posted.bp.biller_email, roles["admin"]):
        response = client.get(url, headers=login(client, email))
        assert response.status_code == 200, response.get_json()
        items = response.get_json()["items"]
        assert {i["kind"] for i in items} == {"eob", "remittance_eob", "835"}
        by_kind = {i["kind"]: i for i in items}
        eob = by_kind["eob"]
        assert eob["id"] == f"eob-{posted.deposit_id}-{posted.paid_claim_id}"
        assert eob["claim_id"] == posted.paid_claim_id and eob["deposit_id"] == posted.deposit_id
        assert eob["reference"] == "REMITAPI01" and eob["content_type"] == "application/pdf"
        assert eob["download_url"] == f"{_base(posted)}/documents/{eob['id']}/download"
        assert by_kind["835"]["id"] == f"835-{posted.deposit_id}" and by_kind["835"]["filename"].endswith(".835")
        assert by_kind["remittance_eob"]["claim_id"] is None
    listed = [a for a in _audits(services, posted.bp.slug, "list") if a.object_type == "claim"]
    assert listed and listed[-1].object_id == str(posted.paid_claim_id)
    assert (
        client.get(f"{_base(posted)}/claims/999999999/documents", headers=login(client, roles["doctor"])).status_code
        == 404
    )


def test_a_deposits_documents(client, services, posted, roles):
    response = client.get(
        f"{_base(posted)}/deposits/{posted.deposit_id}/documents", headers=login(client, roles["doctor"])
    )
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    claims = sorted(i["claim_id"] for i in items if i["kind"] == "eob")
    assert claims == _posted_claims(services, posted)  # the exception (no claim) has no EOB
    assert (
        sum(1 for i in items if i["kind"] == "remittance_eob") == 1 and sum(1 for i in items if i["kind"] == "835") == 1
    )
    assert all(i["deposit_id"] == posted.deposit_id for i in items)
    headers = login(client, posted.bp.biller_email)
    assert client.get(f"{_base(posted)}/deposits/999999999/documents", headers=headers).status_code == 404


def test_download_is_audited_and_is_the_pdf(client, services, posted, roles):
    headers = login(client, roles["doctor"])
    doc_id = f"eob-{posted.deposit_id}-{posted.paid_claim_id}"
    response = client.get(f"{_base(posted)}/documents/{doc_id}/download", headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(services.settings.s3_endpoint_url) and "Signature" in location
    data = _fetch(location)
    assert data == services.storage.get(documents.eob_key(posted.bp.slug, posted.deposit_id, posted.paid_claim_id))
    text = _pdf_text(data)
    assert str(posted.paid_claim_id) in text and "Page 1 of" in text
    (entry,) = [a for a in _audits(services, posted.bp.slug, "download") if a.object_id == doc_id]
    assert entry.object_type == "document" and entry.detail["claim_id"] == posted.paid_claim_id
    assert entry.user_id is not None

    # As JSON instead of a redirect: the same kind of link, audited again.
    link = client.get(f"{_base(posted)}/documents/remittance_eob-{posted.deposit_id}/download?redirect=false",
                      headers=headers)  # fmt: skip
    assert link.status_code == 200, link.get_json()
    body = link.get_json()
    assert body["expires_in"] == services.settings.file_link_seconds and body["filename"].startswith("eob-payment-")
    assert "Sunrise Family Practice" in _pdf_text(_fetch(body["url"]))
    assert [a.object_id for a in _audits(services, posted.bp.slug, "download")][
        -1
    ] == f"remittance_eob-{posted.deposit_id}"


def test_the_835_is_the_deposits_own_transaction_set(client, services, posted, roles):
    response = client.get(
        f"{_base(posted)}/documents/835-{posted.deposit_id}/download", headers=login(client, roles["doctor"])
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    data = _fetch(response.headers["Location"])
    with services.db.tenant_session(posted.bp.slug) as s:
        key = s.scalar(
            select(InboundFile.content_sha256)
            .join(Deposit, Deposit.inbound_file_id == InboundFile.id)
            .where(Deposit.id == posted.deposit_id)
        )
    (remittance,) = parse_835(data)
    assert remittance.content_key == key and remittance.trace_number == "REMITAPI01"


def test_era_file_cuts_one_set_out_of_a_file_of_several(posted):
    other = posted.text.replace("REMITAPI01", "REMITAPI02")
    (first,), (second,) = parse_835(posted.text), parse_835(other)
    assert first.content_key != second.content_key
    both = (posted.text + other).encode()
    for wanted in (first, second):
        (found,) = parse_835(documents.era_file(both, wanted.content_key))  # counts and control numbers check
        assert found.content_key == wanted.content_key and found.trace_number == wanted.trace_number
    cut = documents.era_file(both, second.content_key).decode()
    assert "REMITAPI01" not in cut and cut.startswith("ISA") and "IEA*1*" in cut


def test_practice_documents_list(client, services, posted, roles):
    headers = login(client, roles["doctor"])
    body = client.get(f"{_base(posted)}/documents?per_page=200", headers=headers).get_json()
    kinds = {i["kind"] for i in body["items"]}
    # EOBs, statements and appeal letters; the raw 835 is offered beside its claim or deposit.
    assert kinds == {"eob", "remittance_eob", "statement", "appeal"}
    expected = len(_posted_claims(services, posted)) + 1 + len(posted.statement_ids) + 1
    assert body["meta"]["total"] == expected == len(body["items"])
    stamps = [i["created_at"] for i in body["items"]]
    assert stamps == sorted(stamps, reverse=True)
    only = client.get(f"{_base(posted)}/documents?kind=eob&per_page=2&page=2", headers=headers).get_json()
    assert only["meta"] == {"page": 2, "per_page": 2, "total": len(_posted_claims(services, posted))}
    assert len(only["items"]) == 2 and {i["kind"] for i in only["items"]} == {"eob"}
    bad = client.get(f"{_base(posted)}/documents?kind=letters", headers=headers)
    assert bad.status_code == 422 and "kind" in bad.get_json()["errors"]
    assert [a for a in _audits(services, posted.bp.slug, "list") if a.object_type == "document"]


def test_who_is_refused(client, services, world, posted, roles):
    doc = f"eob-{posted.deposit_id}-{posted.paid_claim_id}"
    urls = [
        f"{_base(posted)}/claims/{posted.paid_claim_id}/documents",
        f"{_base(posted)}/deposits/{posted.deposit_id}/documents",
        f"{_base(posted)}/documents",
        f"{_base(posted)}/documents/{doc}/download",
    ]
    before = len(_audits(services, posted.bp.slug, "download"))
    # An agency linked to the practice holds no documents:read (403); other tenants do not see the practice (404).
    refusals = [(roles["agency"], 403)] + [(world.users[k], 404) for k in ("biller_y", "admin_x", "doctor_a")]
    for who, status in refusals:
        headers = login(client, who)
        for url in urls:
            response = client.get(url, headers=headers)
            assert response.status_code == status, (who, url, response.status_code)
            assert "REMITAPI01" not in response.get_data(as_text=True)
    for url in urls:
        assert client.get(url).status_code == 401
    assert len(_audits(services, posted.bp.slug, "download")) == before
    headers = login(client, posted.bp.biller_email)
    for bad in (f"eob-{posted.deposit_id}-999999", f"eob-999999-{posted.paid_claim_id}", "835-999999", "letter-1",
                "eob-0-1", "..%2Fx", f"eob-{posted.deposit_id}-{posted.paid_claim_id}-1"):  # fmt: skip
        response = client.get(f"{_base(posted)}/documents/{bad}/download", headers=headers)
        assert response.status_code == 404, (bad, response.status_code)


def test_an_eob_not_rendered_yet_is_a_clear_404(client, services, factory, tmp_path_factory):
    fresh = posted_practice(services, factory, tmp_path_factory)  # no EOB job ran
    headers = login(client, fresh.bp.biller_email)
    response = client.get(
        f"/api/v1/practices/{fresh.bp.slug}/documents/eob-{fresh.deposit_id}-{fresh.paid_claim_id}/download",
        headers=headers,
    )
    assert response.status_code == 404 and "not ready yet" in response.get_json()["message"]
    # The 835 needs no job: it is cut from the stored file on first download.
    response = client.get(
        f"/api/v1/practices/{fresh.bp.slug}/documents/835-{fresh.deposit_id}/download", headers=headers
    )
    assert response.status_code == 302


def test_with_local_storage_the_download_streams_through_the_app(settings, services, posted, tmp_path):
    from medbill.app import create_app

    local_app = create_app(dataclasses.replace(settings, s3_bucket=None, data_dir=tmp_path))
    local_app.config["TESTING"] = True
    local = local_app.extensions["medbill"]
    assert type(local.storage).__name__ == "LocalStorage"
    # The EOB job reads the raw 835 from storage: give the local storage the file the deposit came in.
    with services.db.tenant_session(posted.bp.slug) as s:
        raw_key = s.get(Deposit, posted.deposit_id).storage_key
    local.storage.put(raw_key, services.storage.get(raw_key), content_type="application/edi-x12")
    render_eobs(local, posted.bp.slug, posted.deposit_id)
    client = local_app.test_client()
    headers = login(client, posted.bp.biller_email)
    doc = f"eob-{posted.deposit_id}-{posted.paid_claim_id}"
    response = client.get(f"/api/v1/practices/{posted.bp.slug}/documents/{doc}/download", headers=headers)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{settings.public_url}/files/")
    # The link opens for the caller who asked for it (tests/security/test_file_links.py: for nobody else).
    streamed = client.get(location.removeprefix(settings.public_url), headers=headers)
    assert streamed.status_code == 200 and "attachment" in streamed.headers["Content-Disposition"]
    assert str(posted.paid_claim_id) in _pdf_text(streamed.data)
    assert client.get(location.removeprefix(settings.public_url) + "x", headers=headers).status_code == 404
    assert client.get(location.removeprefix(settings.public_url)).status_code == 404


def test_the_endpoints_are_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/claims/{claim_id}/documents", "/deposits/{deposit_id}/documents", "/documents",
                 "/documents/{doc_id}/download"):  # fmt: skip
        assert f"/api/v1/practices/{{slug}}{path}" in spec["paths"], path
    download = spec["paths"]["/api/v1/practices/{slug}/documents/{doc_id}/download"]["get"]
    assert "302" in download["responses"]


def test_amounts_are_exact(client, services, posted, roles):
    body = client.get(f"{_base(posted)}/deposits/{posted.deposit_id}/documents", headers=login(client, roles["doctor"]))
    items = body.get_json()["items"]
    (remittance,) = parse_835(posted.text)
    whole = next(i for i in items if i["kind"] == "remittance_eob")
    assert Decimal(whole["amount"]) == remittance.total_payment


def test_lists_do_not_query_per_document(client, services, posted, roles):
    headers = login(client, roles["doctor"])
    one = _measure(client, services, f"{_base(posted)}/documents?per_page=1", headers)
    many = _measure(client, services, f"{_base(posted)}/documents?per_page=200", headers)
    assert one[1] == 1 and many[1] > 3 and one[0] == many[0]
    claim = _measure(client, services, f"{_base(posted)}/deposits/{posted.deposit_id}/documents", headers)
    assert claim[1] > 3 and claim[0] <= one[0] + 1


# --- patient statements and appeal letters --------------------------------------------------------------------------


def _appeal_doc_id(posted) -> str:
    return f"appeal-{posted.appeal_id}-{posted.denied_claim_id}"


def _owing_statement(services, posted) -> tuple[Statement, Patient]:
    with services.db.tenant_session(posted.bp.slug) as s:
        statement, patient = s.execute(
            select(Statement, Patient)
            .join(Patient, Patient.id == Statement.patient_id)
            .where(Statement.patient_id == posted.owing_patient_id)
        ).one()
        s.expunge_all()
        return statement, patient


def test_a_doctor_lists_statements_and_appeal_letters_by_kind(client, services, posted, roles):
    headers = login(client, roles["doctor"])
    statement, patient = _owing_statement(services, posted)
    body = client.get(f"{_base(posted)}/documents?kind=statement&per_page=200", headers=headers).get_json()
    assert body["meta"]["total"] == len(posted.statement_ids) == len(body["items"])
    assert sorted(i["id"] for i in body["items"]) == sorted(f"statement-{n}" for n in posted.statement_ids)
    item = next(i for i in body["items"] if i["id"] == f"statement-{statement.id}")
    assert (item["kind"], item["kind_label"], item["content_type"]) == (
        "statement",
        "Patient statement",
        "application/pdf",
    )
    assert item["claim_id"] is None and item["deposit_id"] is None
    assert item["source"] == f"{patient.first_name} {patient.last_name}"
    assert (item["reference"], item["reference_label"]) == (patient.account_number, "account")
    assert Decimal(item["amount"]) == statement.patient_balance == Decimal("25.00")
    assert item["filename"].startswith(f"statement-{statement.id}-") and item["filename"].endswith(".pdf")
    assert item["download_url"] == f"{_base(posted)}/documents/statement-{statement.id}/download"

    body = client.get(f"{_base(posted)}/documents?kind=appeal", headers=headers).get_json()
    (letter,) = body["items"]
    assert body["meta"]["total"] == 1
    with services.db.tenant_session(posted.bp.slug) as s:
        claim = s.get(Claim, posted.denied_claim_id)
        payer_name = s.get(Payer, claim.payer_id).name
        appeal = s.get(Appeal, posted.appeal_id)
        assert letter["created_at"] == appeal.created_at.isoformat()
    assert letter["id"] == _appeal_doc_id(posted) and letter["kind_label"] == "Appeal letter"
    assert letter["claim_id"] == posted.denied_claim_id and letter["deposit_id"] is None
    assert letter["source"] == payer_name and letter["reference"] == (claim.payer_claim_number or "")
    assert letter["filename"] == f"appeal-{posted.appeal_id}-claim-{posted.denied_claim_id}.pdf"
    assert letter["amount"] is None
    # The kind choices are the registry's listed kinds, in the API's schema too.
    spec = client.get("/api/openapi.json").get_json()
    params = spec["paths"]["/api/v1/practices/{slug}/documents"]["get"]["parameters"]
    (kind,) = [p for p in params if p["name"] == "kind"]
    choices = [k for k in kind["schema"]["enum"] if k is not None]  # None: no filter
    assert choices == list(documents.kind_choices()) == ["eob", "remittance_eob", "statement", "appeal"]


def test_statement_and_appeal_letter_downloads_are_audited_pdfs(client, services, posted, roles):
    headers = login(client, roles["doctor"])
    statement, patient = _owing_statement(services, posted)
    before = len(_audits(services, posted.bp.slug, "download"))

    response = client.get(f"{_base(posted)}/documents/statement-{statement.id}/download", headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    data = _fetch(response.headers["Location"])
    assert data == services.storage.get(statement.storage_key)
    text = " ".join(_pdf_text(data).split())
    assert patient.account_number in text and "Amount due" in text and "25.00" in text

    response = client.get(f"{_base(posted)}/documents/{_appeal_doc_id(posted)}/download", headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    data = _fetch(response.headers["Location"])
    with services.db.tenant_session(posted.bp.slug) as s:
        key = s.get(Appeal, posted.appeal_id).storage_key
    assert data == services.storage.get(key)
    text = " ".join(_pdf_text(data).split())
    assert f"claim {posted.denied_claim_id}" in text and "HbA1c was 9.4" in text

    entries = _audits(services, posted.bp.slug, "download")[before:]
    assert [(e.object_type, e.object_id) for e in entries] == [
        ("document", f"statement-{statement.id}"),
        ("document", _appeal_doc_id(posted)),
    ]
    assert entries[0].detail["kind"] == "statement" and entries[0].detail["claim_id"] is None
    assert entries[1].detail["kind"] == "appeal" and entries[1].detail["claim_id"] == posted.denied_claim_id
    assert all(e.user_id is not None for e in entries)


def test_a_claims_documents_include_its_appeal_letter(client, services, posted, roles):
    for email in (roles["doctor"], posted.bp.biller_email):
        response = client.get(f"{_base(posted)}/claims/{posted.denied_claim_id}/documents",
                              headers=login(client, email))  # fmt: skip
        assert response.status_code == 200, response.get_json()
        items = response.get_json()["items"]
        letters = [i for i in items if i["kind"] == "appeal"]
        assert [i["id"] for i in letters] == [_appeal_doc_id(posted)]
        assert "statement" not in {i["kind"] for i in items}  # a statement is the patient's, not one claim's
    # Neither another claim's list nor a payment's carries the letter.
    for url in (f"claims/{posted.paid_claim_id}/documents", f"deposits/{posted.deposit_id}/documents"):
        items = client.get(f"{_base(posted)}/{url}", headers=login(client, roles["doctor"])).get_json()["items"]
        assert items and not {i["kind"] for i in items} & {"appeal", "statement"}


def test_statements_and_letters_are_refused_to_agencies_and_other_tenants(client, services, world, posted, roles):
    statement, _patient = _owing_statement(services, posted)
    urls = [
        f"{_base(posted)}/documents?kind=statement",
        f"{_base(posted)}/documents?kind=appeal",
        f"{_base(posted)}/claims/{posted.denied_claim_id}/documents",
        f"{_base(posted)}/documents/statement-{statement.id}/download",
        f"{_base(posted)}/documents/{_appeal_doc_id(posted)}/download",
    ]
    before = len(_audits(services, posted.bp.slug, "download"))
    # A doctor of another practice, and other tenants: 404; the agency placed there holds no documents:read: 403.
    for who, status in [(world.users["doctor_a"], 404), (world.users["biller_y"], 404), (roles["agency"], 403)]:
        headers = login(client, who)
        for url in urls:
            response = client.get(url, headers=headers)
            assert response.status_code == status, (who, url, response.status_code)
            assert "statement-" not in response.get_data(as_text=True)
    assert len(_audits(services, posted.bp.slug, "download")) == before
    # Ids that do not match the data: a letter named with another claim, a statement named with a claim.
    headers = login(client, roles["doctor"])
    for bad in (f"appeal-{posted.appeal_id}-{posted.paid_claim_id}", f"appeal-{posted.appeal_id}",
                f"statement-{statement.id}-{posted.denied_claim_id}", "statement-999999"):  # fmt: skip
        assert client.get(f"{_base(posted)}/documents/{bad}/download", headers=headers).status_code == 404, bad


def test_only_rows_that_record_their_file_under_the_practice_are_documents(services, posted):
    """An appeal whose PDF was never stored (no key) is not a document; a key outside the practice's prefix is never
    handed out. (Changed inside a transaction that is rolled back.)"""
    statement, _patient = _owing_statement(services, posted)
    slug = posted.bp.slug
    with services.db.tenant_session(slug) as s:
        s.get(Appeal, posted.appeal_id).storage_key = ""
        s.get(Statement, statement.id).storage_key = "practices/someone-else/statements/x.pdf"
        s.flush()
        listed, total = documents.practice_documents(s, slug, kind="appeal")
        assert (listed, total) == ([], 0)
        assert not [d for d in documents.claim_documents(s, slug, posted.denied_claim_id) if d.kind == "appeal"]
        with pytest.raises(NotFound):
            documents.find_document(s, slug, _appeal_doc_id(posted))
        with pytest.raises(NotFound):
            documents.find_document(s, slug, f"statement-{statement.id}")
        s.rollback()
        assert documents.find_document(s, slug, f"statement-{statement.id}").storage_key == statement.storage_key
