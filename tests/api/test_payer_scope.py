"""The payer list: a payer a company administrator adds is that company's own (its users see it, its practices bill
it); another company neither sees it in the list nor can enrol, cover or contract with it (404, like a payer that
does not exist), and may add the same payer id for itself. Platform entries, added only by the operator
(`medbill payers add`), are seen and used by every company."""

from __future__ import annotations

from sqlalchemy import select

from tenants.models import BillingCompany
from tests.billing.factories import billing_practice, insured_patient
from tests.conftest import login, run_cli, unique


def _company(services, slug: str) -> BillingCompany:
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == slug))
        s.expunge(company)
        return company


def _listed(client, headers, q: str) -> set[int]:
    response = client.get("/api/v1/payers", headers=headers, query_string={"q": q, "per_page": 100})
    assert response.status_code == 200, response.get_json()
    return {p["id"] for p in response.get_json()["items"]}


def test_a_companys_payer_is_its_own(client, services, factory):
    x, y = billing_practice(services, factory), billing_practice(services, factory)
    admin_x = login(client, factory.user("company_admin", company=_company(services, x.company_slug)))
    biller_x, biller_y = login(client, x.biller_email), login(client, y.biller_email)
    code = unique("OWN").upper()[:20]
    body = {"payer_id": code, "name": "Own Health " + code, "claim_filing_indicator": "CI"}
    created = client.post("/api/v1/payers", headers=admin_x, json=body)
    assert created.status_code == 201, created.get_json()
    own = created.get_json()
    assert own["company_id"] is not None

    assert _listed(client, biller_x, code) == {own["id"]}
    assert _listed(client, biller_y, code) == set()  # not in the other company's list, by id or by name
    assert _listed(client, biller_y, "Own Health") & {own["id"]} == set()

    # The owner's practice bills it; the other company's practice cannot reference it anywhere.
    ok = client.put(f"/api/v1/practices/{x.slug}/payers/{own['id']}", headers=biller_x, json={})
    assert ok.status_code == 200, ok.get_json()
    enrol = client.put(f"/api/v1/practices/{y.slug}/payers/{own['id']}", headers=biller_y, json={})
    assert enrol.status_code == 404
    patient = insured_patient(services, y, factory)
    coverage = client.post(f"/api/v1/practices/{y.slug}/patients/{patient}/coverages", headers=biller_y,
                           json={"payer_id": own["id"], "member_id": "M1", "relationship_code": "18",
                                 "effective_date": "2024-01-01", "priority": 2})  # fmt: skip
    assert coverage.status_code == 404
    contract = client.post(f"/api/v1/practices/{y.slug}/contracts", headers=biller_y,
                           json={"payer_id": own["id"], "name": "Theirs", "effective_from": "2026-01-01",
                                 "default_percent_of_billed": "50", "rates": []})  # fmt: skip
    assert contract.status_code == 404

    # The id is not taken for anyone else: the other company may add the same payer id as its own.
    admin_y = login(client, factory.user("company_admin", company=_company(services, y.company_slug)))
    theirs = client.post("/api/v1/payers", headers=admin_y, json=body | {"name": "Their Health"})
    assert theirs.status_code == 201, theirs.get_json()
    assert client.post("/api/v1/payers", headers=admin_y, json=body).status_code == 409
    assert _listed(client, biller_y, code) == {theirs.get_json()["id"]}


def test_platform_payers_are_added_by_the_operator_and_seen_by_every_company(client, services, factory, env):
    x, y = billing_practice(services, factory), billing_practice(services, factory)
    code = unique("PLAT").upper()[:20]
    added = run_cli(env, "payers", "add", code, "--name", "Platform Plan", "--filing", "MB", "--state", "oh")
    assert added.returncode == 0, added.stderr
    again = run_cli(env, "payers", "add", code, "--name", "Platform Plan", "--filing", "MB")
    assert again.returncode != 0 and "already exists" in again.stderr
    listed = run_cli(env, "payers", "list")
    assert any(code in line and "(platform)" in line for line in listed.stdout.splitlines())

    seen = [_listed(client, login(client, bp.biller_email), code) for bp in (x, y)]
    assert len(seen[0]) == 1 and seen[0] == seen[1]
    (platform_id,) = seen[0]
    for bp in (x, y):
        response = client.put(f"/api/v1/practices/{bp.slug}/payers/{platform_id}",
                              headers=login(client, bp.biller_email), json={})  # fmt: skip
        assert response.status_code == 200 and response.get_json()["payer"]["company_id"] is None
    # A company's own entry may not reuse a platform payer id: the curated one is the one to bill.
    admin_x = login(client, factory.user("company_admin", company=_company(services, x.company_slug)))
    clash = client.post("/api/v1/payers", headers=admin_x,
                        json={"payer_id": code, "name": "Copy", "claim_filing_indicator": "CI"})  # fmt: skip
    assert clash.status_code == 409
