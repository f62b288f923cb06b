"""Practice setup API: payers (master list and enrolments), providers, billing identity (secrets never shown),
coverages, guarantors, fee schedule and contracts; other tenants get 404, roles without setup rights 403."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing.models import BillingIdentity
from billing.setup import SUBSCRIBER_FIELDS
from tenants.models import AuditEntry, Practice
from tenants.registry import get_practice
from tests.billing.factories import bad_npi, billing_practice, insured_patient, npi, shared_payer
from tests.conftest import login, unique


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


@pytest.fixture()
def headers(client, bp):
    return login(client, bp.biller_email)


def _base(bp) -> str:
    return f"/api/v1/practices/{bp.slug}"


IDENTITY = {
    "organization_name": "Hill Country Clinic",
    "tax_id": "74-1234567",
    "taxonomy_code": "207Q00000X",
    "address_line1": "200 Congress Ave",
    "city": "Austin",
    "state": "tx",
    "postal_code": "78701-1234",
    "contact_name": "Billing Office",
    "contact_phone": "5125550100",
    "clearinghouse_name": "sandbox",
    "submitter_id": "SUBMIT01",
    "receiver_id": "SANDBOXCH",
}


def test_providers_are_created_with_a_checked_npi(client, bp, headers):
    good = npi()
    body = {"npi": good, "first_name": "Lena", "last_name": "Ortiz", "credential": "DO", "taxonomy_code": "207Q00000X"}
    created = client.post(f"{_base(bp)}/providers", headers=headers, json=body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["npi"] == good and created.get_json()["active"] is True

    bad = client.post(f"{_base(bp)}/providers", headers=headers, json=body | {"npi": bad_npi()})
    assert bad.status_code == 422
    assert "npi" in bad.get_json()["errors"]
    assert client.post(f"{_base(bp)}/providers", headers=headers, json=body).status_code == 409

    listed = client.get(f"{_base(bp)}/providers", headers=headers)
    assert listed.status_code == 200
    assert good in {p["npi"] for p in listed.get_json()}


def test_billing_identity_needs_zip4_and_keeps_the_transport_when_omitted(client, factory, services):
    company = factory.company()
    practice = factory.practice(company.slug)
    headers = login(client, factory.user("biller", company=company))
    url = f"/api/v1/practices/{practice.slug}/billing-identity"
    assert client.get(url, headers=headers).status_code == 404

    body = IDENTITY | {"group_npi": npi()}
    short_zip = client.put(url, headers=headers, json=body | {"postal_code": "78701"})
    assert short_zip.status_code == 422
    assert "postal_code" in short_zip.get_json()["errors"]

    saved = client.put(url, headers=headers, json=body)
    assert saved.status_code == 200, saved.get_json()
    out = saved.get_json()
    assert out["postal_code"] == "787011234" and out["tax_id"] == "741234567" and out["state"] == "TX"
    assert out["transport"] == {}

    # The transport is set apart (company admins, tests/security/test_tenant_connections.py); a biller's full
    # replacement of the identity without it leaves it as it was.
    transport = {"transport": "directory", "subdir": "mailbox"}
    with services.db.tenant_session(practice.slug) as s:
        s.get(BillingIdentity, 1).transport = transport
        s.commit()
    resent = client.put(url, headers=headers, json=body | {"city": "Waco"})
    assert resent.status_code == 200 and resent.get_json()["city"] == "Waco"
    assert resent.get_json()["transport"] == transport
    # Sending it back as GET showed it is no change either.
    again = client.put(url, headers=headers, json=body | {"transport": client.get(url, headers=headers).get_json()[
        "transport"]})  # fmt: skip
    assert again.status_code == 200, again.get_json()


def test_enrolment_checks_scrub_overrides(client, services, bp, headers):
    payer = shared_payer(services, name="Zenith Mutual")
    url = f"{_base(bp)}/payers/{payer.id}"
    bad = client.put(url, headers=headers, json={"scrub_overrides": {"no_such_rule": "off"}})
    assert bad.status_code == 422
    assert "scrub_overrides.no_such_rule" in bad.get_json()["errors"]
    bad_setting = client.put(url, headers=headers, json={"scrub_overrides": {"timely_filing": "sometimes"}})
    assert bad_setting.status_code == 422

    ok = client.put(url, headers=headers, json={"timely_filing_days": 90, "scrub_overrides": {"timely_filing": "off"}})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["payer"]["name"] == "Zenith Mutual"
    assert ok.get_json()["timely_filing_days"] == 90 and ok.get_json()["scrub_overrides"] == {"timely_filing": "off"}

    listed = client.get(f"{_base(bp)}/payers", headers=headers).get_json()
    mine = {e["payer_id"]: e for e in listed}
    assert mine[payer.id]["payer"]["payer_id"] == payer.payer_id and mine[payer.id]["timely_filing_days"] == 90
    assert bp.payer_id in mine
    assert client.put(f"{_base(bp)}/payers/999999999", headers=headers, json={}).status_code == 404


def test_payer_master_list(client, world, services):
    payer = shared_payer(services, name=unique("Searchable Health "))
    doctor = login(client, world.users["doctor_a"])
    found = client.get("/api/v1/payers", headers=doctor, query_string={"q": payer.name[-10:]})
    assert found.status_code == 200
    assert [p["id"] for p in found.get_json()["items"]] == [payer.id]
    by_code = client.get("/api/v1/payers", headers=doctor, query_string={"q": payer.payer_id})
    assert payer.id in {p["id"] for p in by_code.get_json()["items"]}

    body = {"payer_id": unique("NEWPAY").upper(), "name": "New Plan", "claim_filing_indicator": "CI"}
    assert client.post("/api/v1/payers", headers=login(client, world.users["biller_x"]), json=body).status_code == 403
    admin = login(client, world.users["admin_x"])
    created = client.post("/api/v1/payers", headers=admin, json=body)
    assert created.status_code == 201, created.get_json()
    assert client.post("/api/v1/payers", headers=admin, json=body).status_code == 409
    bad = client.post("/api/v1/payers", headers=admin, json=body | {"payer_id": "X2", "claim_filing_indicator": "QQ"})
    assert bad.status_code == 422 and "claim_filing_indicator" in bad.get_json()["errors"]


def test_fee_schedule(client, bp, headers):
    put = client.put(f"{_base(bp)}/fee-schedule/99215", headers=headers, json={"charge": "250"})
    assert put.status_code == 200, put.get_json()
    assert put.get_json() == {"id": put.get_json()["id"], "procedure_code": "99215", "modifier": "", "charge": "250.00"}
    mod = client.put(f"{_base(bp)}/fee-schedule/99215", headers=headers, json={"charge": 275.5, "modifier": "25"})
    assert mod.status_code == 200 and mod.get_json()["charge"] == "275.50"
    again = client.put(f"{_base(bp)}/fee-schedule/99215", headers=headers, json={"charge": "260.00"})
    assert again.get_json()["id"] == put.get_json()["id"]

    fees = {
        (f["procedure_code"], f["modifier"]): f["charge"]
        for f in client.get(f"{_base(bp)}/fee-schedule", headers=headers).get_json()
    }
    assert fees[("99215", "")] == "260.00" and fees[("99215", "25")] == "275.50" and fees[("99213", "")] == "150.00"

    assert client.put(f"{_base(bp)}/fee-schedule/ABC", headers=headers, json={"charge": "1"}).status_code == 422
    assert client.put(f"{_base(bp)}/fee-schedule/99215", headers=headers, json={"charge": "0"}).status_code == 422
    assert client.put(f"{_base(bp)}/fee-schedule/99215", headers=headers, json={"charge": "abc"}).status_code == 422


def test_contracts(client, services, bp, headers):
    payer = shared_payer(services, name="Contract Health")
    body = {
        "payer_id": payer.id,
        "name": "Contract Health 2026",
        "effective_from": "2026-01-01",
        "default_percent_of_billed": "55",
        "rates": [{"procedure_code": "99213", "allowed": "91.5"}, {"procedure_code": "36415", "allowed": "9"}],
    }
    created = client.post(f"{_base(bp)}/contracts", headers=headers, json=body)
    assert created.status_code == 201, created.get_json()
    out = created.get_json()
    assert out["default_percent_of_billed"] == "55.000" and out["payer"]["name"] == "Contract Health"
    assert {(r["procedure_code"], r["allowed"]) for r in out["rates"]} == {("99213", "91.50"), ("36415", "9.00")}

    listed = client.get(f"{_base(bp)}/contracts", headers=headers, query_string={"payer_id": payer.id}).get_json()
    assert [c["id"] for c in listed] == [out["id"]] and len(listed[0]["rates"]) == 2
    everything = client.get(f"{_base(bp)}/contracts", headers=headers).get_json()
    assert {out["id"]} < {c["id"] for c in everything}

    bad = client.post(f"{_base(bp)}/contracts", headers=headers, json=body | {"default_percent_of_billed": "150"})
    assert bad.status_code == 422 and "default_percent_of_billed" in bad.get_json()["errors"]
    twice = body | {"rates": [{"procedure_code": "99213", "allowed": "1"}] * 2}
    assert client.post(f"{_base(bp)}/contracts", headers=headers, json=twice).status_code == 422


def test_coverages_and_guarantor(client, services, factory, bp, headers):
    patient = factory.patient(bp.slug)
    url = f"{_base(bp)}/patients/{patient['id']}/coverages"
    dependent = {
        "payer_id": bp.payer_id,
        "member_id": "M100",
        "relationship_code": "19",
        "effective_date": "2024-01-01",
    }
    refused = client.post(url, headers=headers, json=dependent)
    assert refused.status_code == 422
    assert set(SUBSCRIBER_FIELDS) <= set(refused.get_json()["errors"])

    full = dependent | {
        "subscriber_first_name": "Paul",
        "subscriber_last_name": "Lee",
        "subscriber_date_of_birth": "1975-03-04",
        "subscriber_sex": "M",
        "subscriber_address_line1": "1 Main St",
        "subscriber_city": "Austin",
        "subscriber_state": "tx",
        "subscriber_postal_code": "78701-0001",
    }
    created = client.post(url, headers=headers, json=full)
    assert created.status_code == 201, created.get_json()
    assert (
        created.get_json()["subscriber_state"] == "TX" and created.get_json()["subscriber_postal_code"] == "787010001"
    )
    secondary = client.post(
        url,
        headers=headers,
        json={"payer_id": bp.payer_id, "member_id": "S2", "priority": 2, "effective_date": "2024-01-01"},
    )
    assert secondary.status_code == 201
    listed = client.get(url, headers=headers)
    assert listed.status_code == 200
    assert [(c["priority"], c["member_id"]) for c in listed.get_json()] == [(1, "M100"), (2, "S2")]
    assert listed.get_json()[0]["payer"]["id"] == bp.payer_id

    assert client.post(url, headers=headers, json=full | {"payer_id": 999999999}).status_code == 404
    assert client.get(f"{_base(bp)}/patients/999999999/coverages", headers=headers).status_code == 404

    g_url = f"{_base(bp)}/patients/{patient['id']}/guarantor"
    guarantor = {
        "relationship": "parent",
        "first_name": "Maria",
        "last_name": "Lee",
        "address_line1": "1 Main St",
        "city": "Austin",
        "state": "TX",
        "postal_code": "78701",
    }
    put = client.put(g_url, headers=headers, json=guarantor)
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["patient_id"] == patient["id"] and put.get_json()["relationship"] == "parent"
    moved = client.put(g_url, headers=headers, json=guarantor | {"city": "Dallas", "postal_code": "75201-1234"})
    assert moved.get_json()["id"] == put.get_json()["id"] and moved.get_json()["postal_code"] == "752011234"
    bad = client.put(g_url, headers=headers, json=guarantor | {"relationship": "uncle", "state": "ZZ"})
    assert bad.status_code == 422 and {"relationship", "state"} <= set(bad.get_json()["errors"])


def test_setup_writes_are_audited(client, services, bp, headers):
    client.put(f"{_base(bp)}/fee-schedule/93010", headers=headers, json={"charge": "30"})
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == bp.slug))
        actions = set(
            s.execute(select(AuditEntry.object_type, AuditEntry.action).where(AuditEntry.practice_id == practice_id))
        )
    assert ("fee_schedule", "set") in actions


def _setup_endpoints(base: str, patient_id: int, payer_id: int):
    return [
        ("GET", f"{base}/payers", None),
        ("PUT", f"{base}/payers/{payer_id}", {}),
        ("GET", f"{base}/providers", None),
        (
            "POST",
            f"{base}/providers",
            {"npi": npi(), "first_name": "A", "last_name": "B", "taxonomy_code": "207Q00000X"},
        ),
        ("GET", f"{base}/billing-identity", None),
        ("PUT", f"{base}/billing-identity", IDENTITY | {"group_npi": npi()}),
        ("GET", f"{base}/patients/{patient_id}/coverages", None),
        (
            "POST",
            f"{base}/patients/{patient_id}/coverages",
            {"payer_id": payer_id, "member_id": "Z", "effective_date": "2024-01-01"},
        ),
        (
            "PUT",
            f"{base}/patients/{patient_id}/guarantor",
            {
                "relationship": "other",
                "first_name": "A",
                "last_name": "B",
                "address_line1": "1 St",
                "city": "Austin",
                "state": "TX",
                "postal_code": "78701",
            },
        ),
        ("GET", f"{base}/fee-schedule", None),
        ("PUT", f"{base}/fee-schedule/99213", {"charge": "1.00"}),
        ("GET", f"{base}/contracts", None),
        ("POST", f"{base}/contracts", {"payer_id": payer_id, "name": "X", "effective_from": "2026-01-01"}),
    ]


def test_other_tenants_get_404_and_roles_without_rights_403(client, services, factory, world, bp):
    patient_id = insured_patient(services, bp, factory)
    endpoints = _setup_endpoints(_base(bp), patient_id, bp.payer_id)
    for role in ("biller_y", "admin_x", "agency"):
        headers = login(client, world.users[role])
        for method, url, body in endpoints:
            response = client.open(url, method=method, headers=headers, json=body)
            assert response.status_code == 404, (role, method, url, response.status_code)
            assert response.get_json()["code"] == "not_found"

    with services.db.shared_session() as s:
        practice = get_practice(s, bp.slug)
    doctor = login(client, factory.user("doctor", practice=practice))
    agency = factory.agency([bp.slug])
    collector = login(client, factory.user("agency", agency=agency))
    for headers in (doctor, collector):
        for method, url, body in endpoints:
            response = client.open(url, method=method, headers=headers, json=body)
            assert response.status_code == 403, (method, url, response.status_code)
