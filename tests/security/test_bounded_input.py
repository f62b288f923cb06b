"""Bounded input everywhere (issue 11): amounts have a ceiling and exact cents in the API and the portal, agency
reports cannot exceed what is owed on the placement, collection sizes are refused before per-item work, oversized
bodies answer 413, NUL characters and deeply nested JSON answer 422/400, never a 500."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import collections, ledger
from billing.models import AgencyPaymentReport, Patient, PatientPayment
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import PASSWORD, login

D = Decimal
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


@pytest.fixture()
def headers(client, bp):
    return login(client, bp.biller_email)


def _owed_visit(services, bp, patient_id: int, owes=("20.00", "5.00")) -> None:
    """A billed visit 150 days ago whose payer paid and left `owes` (per line) to the patient."""
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient_id, days_ago=150))
        for line, part in zip(claim.lines, owes, strict=True):
            ledger.post(s, line, "charge", line.charge, source_type="test")
            ledger.post(s, line, "insurance_payment", line.charge - D(part), source_type="test")
            ledger.post(s, line, "patient_responsibility", D(part), source_type="test", group_code="PR")
        s.commit()


def _portal(app, email: str):
    client = app.test_client()
    page = client.get("/login")
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    r = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith("/home"), r.headers.get("Location")
    return client


def _csrf(page) -> str:
    return CSRF_RE.search(page.get_data(as_text=True)).group(1)


def _payments(services, slug: str, patient_id: int) -> list[PatientPayment]:
    with services.db.tenant_session(slug) as s:
        return list(s.scalars(select(PatientPayment).where(PatientPayment.patient_id == patient_id)))


# --- amounts ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    ["9999999999.99", "10000000000.00", "100000000.00", "50.001", 50.001, "1e999999999", 1e300, "-0.001"],
)
def test_api_amounts_have_a_ceiling_and_exact_cents(client, services, factory, bp, headers, amount):
    patient = insured_patient(services, bp, factory)
    r = client.post(f"/api/v1/practices/{bp.slug}/patients/{patient}/payments", headers=headers,
                    json={"amount": amount, "method": "cash"})  # fmt: skip
    body = r.get_json()
    assert r.status_code == 422, body
    assert set(body["errors"]) == {"amount"} and "two decimal places" in body["errors"]["amount"][0]
    assert _payments(services, bp.slug, patient) == []


def test_api_amount_at_the_ceiling_posts(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    r = client.post(f"/api/v1/practices/{bp.slug}/patients/{patient}/payments", headers=headers,
                    json={"amount": "99999999.99", "method": "cash"})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["amount"] == "99999999.99"


def test_ceiling_holds_beside_other_validators(client, bp, headers):
    # Fields given their own validator (min_balance: at least 0) kept no ceiling: the default was replaced.
    r = client.put(f"/api/v1/practices/{bp.slug}/collections/rules", headers=headers,
                   json={"min_balance": "10000000000.00"})  # fmt: skip
    assert r.status_code == 422 and "min_balance" in r.get_json()["errors"], r.get_json()


def test_charge_entry_refuses_unbounded_and_sub_cent_charges(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    line = {"procedure_code": "99213", "units": "1", "diagnosis_pointers": [1]}
    data = {"patient_id": patient, "date_of_service": (date.today() - timedelta(days=3)).isoformat(),
            "place_of_service": "11", "rendering_provider_id": bp.provider_id, "diagnoses": ["E11.9"]}  # fmt: skip
    url = f"/api/v1/practices/{bp.slug}/encounters"
    for charge in ("125.005", "99999999999.99"):
        r = client.post(url, headers=headers, json=data | {"lines": [line | {"charge": charge}]})
        assert r.status_code == 422, r.get_json()
    # The fee schedule's price times many units is more than any charge may be.
    r = client.post(url, headers=headers, json=data | {"lines": [line | {"units": "999998"}]})
    assert r.status_code == 422 and "lines[0].charge" in r.get_json()["errors"], r.get_json()


def test_portal_refuses_sub_cent_and_huge_payments(app, services, factory, bp):
    patient = insured_patient(services, bp, factory)
    biller = _portal(app, bp.biller_email)
    page = biller.get("/home")
    assert page.status_code == 200, page.headers.get("Location")
    biller.post("/practice", data={"practice": bp.slug, "csrf_token": _csrf(page)})
    account = biller.get(f"/practices/{bp.slug}/patients/{patient}/account")
    assert account.status_code == 200
    for amount in ("50.001", "10000000000.00"):
        r = biller.post(f"/practices/{bp.slug}/patients/{patient}/payments",
                        data={"csrf_token": _csrf(account), "amount": amount, "method": "cash"})  # fmt: skip
        html = r.get_data(as_text=True)
        assert r.status_code == 422, html[:500]
        assert "at most two decimal places" in html and f'value="{amount}"' in html
    assert _payments(services, bp.slug, patient) == []


# --- agency reports above what is owed ---------------------------------------------------------------------------


@pytest.fixture()
def placed(services, factory, bp):
    """A patient owing 25.00, placed with an agency; the agency user's login."""
    agency = factory.agency([bp.slug])
    patient = insured_patient(services, bp, factory)
    _owed_visit(services, bp, patient)
    with services.db.tenant_session(bp.slug) as s:
        collections.set_rules(s, bp.access, {"min_statements": 0})
        placement = collections.approve(s, bp.access, patient, agency.id)
        s.commit()
        placement_id, account = placement.id, s.get(Patient, patient).account_number
    return {"patient": patient, "placement": placement_id, "agency": agency,
            "account": account, "user": factory.user("agency", agency=agency)}  # fmt: skip


def test_agency_report_above_the_placed_balance_is_refused(client, services, bp, placed):
    agency = login(client, placed["user"])
    url = f"/api/v1/practices/{bp.slug}/collections/placements/{placed['placement']}/payments"
    today = date.today().isoformat()
    r = client.post(url, headers=agency, json={"amount": "999999.00", "received_on": today, "reference": "BIG-1"})
    assert r.status_code == 422 and "25.00" in r.get_json()["errors"]["amount"][0], r.get_json()
    r = client.post(url, headers=agency, json={"amount": "20.00", "received_on": today, "reference": "OK-1"})
    assert r.status_code == 201, r.get_json()
    # What was reported already counts: 5.01 more would be credit, 5.00 is the rest.
    r = client.post(url, headers=agency, json={"amount": "5.01", "received_on": today, "reference": "OK-2"})
    assert r.status_code == 422, r.get_json()
    r = client.post(url, headers=agency, json={"amount": "5.00", "received_on": today, "reference": "OK-3"})
    assert r.status_code == 201, r.get_json()
    with services.db.tenant_session(bp.slug) as s:
        balance = ledger.patient_balance(s, placed["patient"])
        assert balance.patient == D("0.00")
        refs = set(s.scalars(select(AgencyPaymentReport.reference).where(
            AgencyPaymentReport.placement_id == placed["placement"])))  # fmt: skip
        assert refs == {"OK-1", "OK-3"}


def test_agency_payment_file_above_the_balance_posts_nothing(client, services, bp, placed):
    biller = login(client, bp.biller_email)
    layout = {"type": "fixed", "date_format": "%Y%m%d", "money": "cents", "line_ending": "lf", "fields": [
        {"field": "account_number", "start": 1, "length": 30},
        {"field": "payment_date", "start": 31, "length": 8},
        {"field": "payment_amount", "start": 39, "length": 9, "align": "right", "pad": "0"},
        {"field": "payment_reference", "start": 48, "length": 12},
    ]}  # fmt: skip
    ok = client.put(f"/api/v1/practices/{bp.slug}/collections/agencies/{placed['agency'].id}", headers=biller,
                    json={"report_format": layout, "fee_percent": "10"})  # fmt: skip
    assert ok.status_code == 200, ok.get_json()
    day = date.today().strftime("%Y%m%d")
    text = f"{placed['account']:<30}{day}{1500:09d}{'F-1':<12}\n{placed['account']:<30}{day}{1001:09d}{'F-2':<12}\n"
    import io

    agency = login(client, placed["user"])
    r = client.post(f"/api/v1/practices/{bp.slug}/collections/payment-files", headers=agency,
                    content_type="multipart/form-data",
                    data={"file": (io.BytesIO(text.encode()), "p.txt")})  # fmt: skip
    assert r.status_code == 422 and "record 2: amount" in r.get_json()["errors"], r.get_json()
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.patient_balance(s, placed["patient"]).patient == D("25.00")


# --- collection sizes and body size ------------------------------------------------------------------------------


def test_oversized_lists_are_refused_before_per_item_work(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    data = {"patient_id": patient, "date_of_service": date.today().isoformat(), "place_of_service": "11",
            "rendering_provider_id": bp.provider_id, "diagnoses": ["E11.9"]}  # fmt: skip
    # 10,000 lines fit the body limit; each would be loaded, validated and priced before the 50-line limit.
    lines = [{"procedure_code": "99213", "units": "1", "charge": "1.00"}] * 10_000
    started = time.process_time()
    r = client.post(f"/api/v1/practices/{bp.slug}/encounters", headers=headers, json=data | {"lines": lines})
    spent = time.process_time() - started
    assert r.status_code == 422 and r.get_json()["errors"]["lines"] == ["at most 50 items"], r.get_json()
    assert spent < 2, spent
    r = client.post(f"/api/v1/practices/{bp.slug}/encounters", headers=headers,
                    json=data | {"diagnoses": ["E11.9"] * 13, "lines": lines[:1]})  # fmt: skip
    assert r.status_code == 422 and "diagnoses" in r.get_json()["errors"]


def test_encounter_service_checks_sizes_first(services, factory, bp):
    from billing import encounters
    from medbill.errors import Invalid

    patient = insured_patient(services, bp, factory)
    lines = [{"procedure_code": "99213", "units": 1, "diagnosis_pointers": [1]}] * 5_000
    data = {"patient_id": patient, "date_of_service": date.today().isoformat(), "place_of_service": "11",
            "rendering_provider_id": bp.provider_id, "diagnoses": ["E11.9"], "lines": lines}  # fmt: skip
    with services.db.tenant_session(bp.slug) as s:
        statements = []
        from sqlalchemy import event

        listen = lambda *a, **k: statements.append(1)  # noqa: E731
        event.listen(s.get_bind(), "before_cursor_execute", listen)
        try:
            with pytest.raises(Invalid) as refused:
                encounters.create_encounter(s, bp.access, data)
        finally:
            event.remove(s.get_bind(), "before_cursor_execute", listen)
    assert refused.value.errors == {"lines": ["at most 50 lines per encounter"]}
    assert statements == []  # not even the patient was looked up


def test_oversized_bodies_answer_413(client, bp, headers):
    big = {"first_name": "A" * (1024 * 1024 + 10)}
    r = client.post(f"/api/v1/practices/{bp.slug}/patients", headers=headers, json=big)
    assert r.status_code == 413 and r.get_json()["code"] == "too_large", r.get_data()[:200]


def test_file_uploads_keep_their_own_larger_limit(client, bp, headers):
    import io

    # 2 MB: over the request limit, within the patient import's 20 MB.
    csv = b"first_name,last_name\n" + b"Ann,Lee\n" * (2 * 1024 * 1024 // 8)
    r = client.post(f"/api/v1/practices/{bp.slug}/patients/imports", headers=headers,
                    content_type="multipart/form-data", data={"file": (io.BytesIO(csv), "p.csv")})  # fmt: skip
    assert r.status_code != 413 and r.status_code < 500, r.get_json()


# --- NUL characters and nesting ------------------------------------------------------------------------------------


def test_nul_in_a_json_string_names_the_field(client, services, factory, bp, headers):
    from tests.conftest import PATIENT

    r = client.post(f"/api/v1/practices/{bp.slug}/patients", headers=headers,
                    json=PATIENT | {"account_number": "NUL-1", "city": "Aus\x00tin"})  # fmt: skip
    body = r.get_json()
    assert r.status_code == 422 and set(body["errors"]) == {"city"}, body
    assert "\x00" not in r.get_data(as_text=True) and "Aus" not in str(body)
    patient = insured_patient(services, bp, factory)
    line = {"procedure_code": "992\x0013", "units": "1"}
    r = client.post(f"/api/v1/practices/{bp.slug}/encounters", headers=headers, json={
        "patient_id": patient, "date_of_service": date.today().isoformat(), "place_of_service": "11",
        "rendering_provider_id": bp.provider_id, "diagnoses": ["E11.9"], "lines": [line]})  # fmt: skip
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"lines[0].procedure_code"}, r.get_json()


def test_nul_in_query_and_form_fields(client, app, bp, headers):
    r = client.get(f"/api/v1/practices/{bp.slug}/patients?q=a%00b", headers=headers)
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"q"}, r.get_json()
    biller = _portal(app, bp.biller_email)
    r = biller.get(f"/practices/{bp.slug}/patients?q=a%00b")
    assert r.status_code in (400, 422)


def test_deeply_nested_json_is_a_400(client, bp, headers):
    for depth in (40, 1000, 100_000):
        r = client.post(f"/api/v1/practices/{bp.slug}/patients", headers=headers | {"Content-Type": "application/json"},
                        data="[" * depth + "]" * depth)  # fmt: skip
        assert r.status_code == 400 and "nested" in r.get_json()["message"], (depth, r.get_json())


# --- names X12 cannot carry ----------------------------------------------------------------------------------------


def test_names_are_transliterated_and_stripped_at_entry(client, services, bp, headers):
    from tests.conftest import PATIENT

    r = client.post(f"/api/v1/practices/{bp.slug}/patients", headers=headers, json=PATIENT | {
        "account_number": "TX-1", "first_name": "Jos\u00e9\u200b", "last_name": "\u202eM\u00fcller\u202c",
        "address_line1": "12  Stra\u00dfe\u2066 7", "city": "S\u00e3o\tPaulo"})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["first_name"], body["last_name"], body["address_line1"], body["city"]) == (
        "Jose", "Muller", "12 Strasse 7", "Sao Paulo")  # fmt: skip


@pytest.mark.parametrize(("field", "value"), [("last_name", "O*Brien"), ("first_name", "Ann~"),
                                              ("city", "A:B"), ("address_line1", "1^2"), ("last_name", "\u674e")])
def test_names_x12_cannot_carry_are_refused_naming_the_field(client, bp, headers, field, value):
    from tests.conftest import PATIENT

    r = client.post(f"/api/v1/practices/{bp.slug}/patients", headers=headers,
                    json=PATIENT | {"account_number": "TX-2", field: value})  # fmt: skip
    body = r.get_json()
    assert r.status_code == 422 and set(body["errors"]) == {field}, body
    assert value not in r.get_data(as_text=True)


def test_providers_coverages_and_identity_use_the_same_rule(client, services, factory, bp, headers):
    from billing import setup
    from medbill.errors import Invalid
    from tests.billing.factories import npi

    r = client.post(f"/api/v1/practices/{bp.slug}/providers", headers=headers, json={
        "npi": npi(), "first_name": "Ren\u00e9e", "last_name": "Dub*ois", "taxonomy_code": "207Q00000X"})  # fmt: skip
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"last_name"}, r.get_json()
    r = client.post(f"/api/v1/practices/{bp.slug}/providers", headers=headers, json={
        "npi": npi(), "first_name": "Ren\u00e9e", "last_name": "Dubois", "taxonomy_code": "207Q00000X"})  # fmt: skip
    assert r.status_code == 201 and r.get_json()["first_name"] == "Renee", r.get_json()
    patient = factory.patient(bp.slug)["id"]
    subscriber = {"payer_id": bp.payer_id, "member_id": "M1", "relationship_code": "01",
                  "effective_date": "2020-01-01", "subscriber_first_name": "Zo\u00eb",
                  "subscriber_last_name": "Lee", "subscriber_date_of_birth": "1970-01-01", "subscriber_sex": "F",
                  "subscriber_address_line1": "1 Main St", "subscriber_city": "Austin", "subscriber_state": "TX",
                  "subscriber_postal_code": "78701"}  # fmt: skip
    url = f"/api/v1/practices/{bp.slug}/patients/{patient}/coverages"
    r = client.post(url, headers=headers, json=subscriber | {"subscriber_city": "Aus~tin"})
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"subscriber_city"}, r.get_json()
    r = client.post(url, headers=headers, json=subscriber)
    assert r.status_code == 201 and r.get_json()["subscriber_first_name"] == "Zoe", r.get_json()
    with services.db.tenant_session(bp.slug) as s:
        from billing.models import BillingIdentity

        identity = s.get(BillingIdentity, 1)
        data = {c: getattr(identity, c) for c in ("organization_name", "group_npi", "tax_id", "taxonomy_code",
                "address_line1", "city", "state", "postal_code", "contact_name", "contact_phone")}  # fmt: skip
        with pytest.raises(Invalid) as refused:
            setup.set_billing_identity(s, bp.access, data | {"organization_name": "Sunrise * Family"})
        assert set(refused.value.errors) == {"organization_name"}
        s.rollback()


# --- one bad claim does not stop the batch -----------------------------------------------------------------------


def test_a_claim_the_writer_refuses_is_held_back_and_the_rest_is_sent(services, factory):
    from billing import submissions
    from billing.claim_status import transition
    from billing.models import Claim, ScrubFinding

    practice = billing_practice(services, factory)
    good, bad = insured_patient(services, practice, factory), insured_patient(services, practice, factory)
    claim_ids = {}
    with services.db.tenant_session(practice.slug) as s:
        for patient in (good, bad):
            (claim,) = claim_service.create_claims(s, practice.access, visit(services, practice, patient))
            transition(s, claim, "ready", source="test")
            claim_ids[patient] = claim.id
        # Set directly, as rows written before the entry rule were: the writer refuses the delimiter.
        s.get(Patient, bad).last_name = "Smith*Jones"
        s.commit()
    with services.db.tenant_session(practice.slug) as s:
        prepared = submissions.prepare_submission(s, practice_slug=practice.slug, user_id=None)
        s.commit()
        assert prepared is not None and prepared.submission.claim_count == 1
        assert "Smith" not in prepared.text and prepared.text.count("CLM*") == 1
        assert set(prepared.skipped) == {claim_ids[bad]} and "NM103" in prepared.skipped[claim_ids[bad]]
        held = s.get(Claim, claim_ids[bad])
        assert held.status == "scrubbed"
        finding = s.scalar(select(ScrubFinding).where(ScrubFinding.claim_id == held.id,
                                                      ScrubFinding.rule == "x12_writable"))  # fmt: skip
        assert finding.severity == "error" and "Smith" not in finding.message
        assert s.get(Claim, claim_ids[good]).status == "ready"  # in the file, until it is transmitted


def test_a_batch_of_only_refused_claims_makes_no_file(services, factory):
    from billing import submissions
    from billing.claim_status import transition
    from billing.models import Claim

    practice = billing_practice(services, factory)
    patient = insured_patient(services, practice, factory)
    with services.db.tenant_session(practice.slug) as s:
        (claim,) = claim_service.create_claims(s, practice.access, visit(services, practice, patient))
        transition(s, claim, "ready", source="test")
        s.get(Patient, patient).city = "Austin~TX"
        s.commit()
        claim_id = claim.id
    with services.db.tenant_session(practice.slug) as s:
        assert submissions.prepare_submission(s, practice_slug=practice.slug, user_id=None) is None
        s.commit()
        assert s.get(Claim, claim_id).status == "scrubbed"


# --- template errors -------------------------------------------------------------------------------------------------


def test_appeal_template_syntax_error_is_a_422(client, bp, headers):
    r = client.put(f"/api/v1/practices/{bp.slug}/appeal-templates/coding", headers=headers,
                   json={"body": "Dear {{ payer.name }} {% if %} {{ "})  # fmt: skip
    assert r.status_code == 422 and "body" in r.get_json()["errors"], r.get_json()
