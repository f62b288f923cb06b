"""Patient billing over HTTP: a payment and a refund change the account as the ledger says, bad input is refused
field by field, a statement run is started once per cycle (the second start says so), plans are created, read and
cancelled; permissions (a doctor cannot post, an agency sees only placed accounts) and foreign practices (404)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select

from tenants.models import AuditEntry
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_patient_payments import owed_visit
from tests.conftest import login


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


@pytest.fixture()
def headers(client, bp):
    return login(client, bp.biller_email)


def _base(bp) -> str:
    return f"/api/v1/practices/{bp.slug}"


def test_payment_refund_and_account(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    older = owed_visit(services, bp, patient, days_ago=70)
    owed_visit(services, bp, patient, days_ago=3, pending=True)
    url = f"{_base(bp)}/patients/{patient}"
    pay = {"amount": "40.00", "method": "check", "reference": "1001", "posting_key": "lockbox-1"}
    r = client.post(f"{url}/payments", headers=headers, json=pay)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["applied"] == "25.00" and {a["claim_line_id"] for a in body["applications"]} == set(older)
    again = client.post(f"{url}/payments", headers=headers, json=pay)
    assert again.status_code == 201 and again.get_json()["id"] == body["id"]
    acct = client.get(f"{url}/account", headers=headers).get_json()
    assert (acct["patient_due"], acct["patient_pending"], acct["credit"]) == ("0.00", "0.00", "15.00")
    assert acct["insurance_balance"] == "175.00"  # the pending visit
    assert [p["id"] for p in acct["payments"]] == [body["id"]]
    bad = client.post(f"{url}/refunds", headers=headers, json={"amount": "15.01", "method": "check"})
    assert bad.status_code == 422 and "amount" in bad.get_json()["errors"]
    r = client.post(f"{url}/refunds", headers=headers, json={"amount": "15.00", "method": "check", "reference": "R9"})
    assert r.status_code == 201 and r.get_json()["kind"] == "refund"
    assert client.get(f"{url}/account", headers=headers).get_json()["credit"] == "0.00"
    with services.db.tenant_session(bp.slug) as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "patient_payment")))
        assert actions == {"post", "refund"}


def test_bad_payments_are_refused_by_field(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    r = client.post(f"{_base(bp)}/patients/{patient}/payments", headers=headers,
                    json={"amount": "0", "method": "barter", "claim_line_ids": [0]})  # fmt: skip
    assert r.status_code == 422
    assert {"amount", "method", "claim_line_ids"} <= set(r.get_json()["errors"])
    r = client.post(f"{_base(bp)}/patients/999999999/payments", headers=headers, json={"amount": "5", "method": "cash"})
    assert r.status_code == 404


def test_statement_run_starts_once_per_cycle_and_reports(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=40)
    r = client.post(f"{_base(bp)}/statement-runs", headers=headers, json={})
    assert r.status_code == 202, r.get_json()
    first = r.get_json()
    assert first["created"] and first["run"]["status"] == "running" and first["run"]["job_id"]
    r = client.post(f"{_base(bp)}/statement-runs", headers=headers, json={})
    second = r.get_json()
    assert not second["created"] and second["run"]["id"] == first["run"]["id"]
    assert "nothing was started" in second["message"]
    runs = client.get(f"{_base(bp)}/statement-runs", headers=headers).get_json()["items"]
    assert [x["id"] for x in runs] == [first["run"]["id"]]
    detail = client.get(f"{_base(bp)}/statement-runs/{first['run']['id']}", headers=headers).get_json()
    assert detail["statements"] == [] and detail["patients_selected"] == 0  # the worker has not run it yet


def test_settings_and_plans(client, services, factory, bp, headers):
    r = client.put(f"{_base(bp)}/patient-billing/settings", headers=headers,
                   json={"minimum_balance": "10.00", "messages": {"90": "Please call us."}})  # fmt: skip
    assert r.status_code == 200 and r.get_json()["minimum_balance"] == "10.00"
    bad = client.put(f"{_base(bp)}/patient-billing/settings", headers=headers, json={"cycle_days": 3})
    assert bad.status_code == 422
    patient = insured_patient(services, bp, factory)
    r = client.post(f"{_base(bp)}/payment-plans", headers=headers, json={
        "patient_id": patient, "total": "100.00", "installment_amount": "40.00", "frequency": "monthly",
        "start_date": date.today().isoformat()})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    plan = r.get_json()
    assert [i["amount"] for i in plan["installments"]] == ["40.00", "40.00", "20.00"]
    dup = client.post(f"{_base(bp)}/payment-plans", headers=headers, json={
        "patient_id": patient, "total": "100.00", "installment_amount": "40.00", "frequency": "monthly",
        "start_date": date.today().isoformat()})  # fmt: skip
    assert dup.status_code == 409
    listed = client.get(f"{_base(bp)}/payment-plans?patient_id={patient}", headers=headers).get_json()["items"]
    assert [p["id"] for p in listed] == [plan["id"]]
    r = client.patch(f"{_base(bp)}/payment-plans/{plan['id']}", headers=headers, json={"note": "pays on the 1st"})
    assert r.get_json()["note"] == "pays on the 1st"
    r = client.post(f"{_base(bp)}/payment-plans/{plan['id']}/cancel", headers=headers, json={"reason": "paid off"})
    assert r.get_json()["status"] == "cancelled"
    assert client.delete(f"{_base(bp)}/payment-plans/{plan['id']}", headers=headers).status_code == 409


def test_permissions_and_isolation(client, services, factory, world, bp, headers):
    a = world.practices["A"]
    doctor = login(client, world.users["doctor_a"])
    agency = login(client, world.users["agency"])
    placed = world.placed_patient_id
    other = next(p["id"] for p in world.patients["A"] if p["id"] != placed)
    base_a = f"/api/v1/practices/{a}"
    assert client.get(f"{base_a}/patients/{placed}/account", headers=doctor).status_code == 403
    assert client.post(f"{base_a}/patients/{placed}/payments", headers=doctor,
                       json={"amount": "5", "method": "cash"}).status_code == 403  # fmt: skip
    assert client.get(f"{base_a}/patients/{placed}/account", headers=agency).status_code == 200
    assert client.get(f"{base_a}/patients/{other}/account", headers=agency).status_code == 404
    assert client.get(f"{base_a}/statement-runs", headers=agency).status_code == 404
    assert client.get(f"{base_a}/payment-plans", headers=agency).status_code == 404
    assert client.post(f"{base_a}/statement-runs", headers=agency, json={}).status_code == 403
    # A biller of another company: the practice is not theirs.
    assert client.get(f"{base_a}/patients/{placed}/account", headers=headers).status_code == 404
    assert client.post(f"{base_a}/statement-runs", headers=headers, json={}).status_code == 404
    # Another practice's statement id through this practice's patient: 404.
    patient = insured_patient(services, bp, factory)
    assert client.get(f"{_base(bp)}/patients/{patient}/statements/1/pdf", headers=headers).status_code == 404
    with services.db.tenant_session(a) as s:
        reads = select(func.count()).where(
            AuditEntry.object_type == "patient_account", AuditEntry.object_id == str(placed)
        )
        assert s.scalar(reads) >= 1


def test_statement_run_date_picks_an_earlier_cycle(client, bp, headers):
    day = (date.today() - timedelta(days=400)).isoformat()
    r = client.post(f"{_base(bp)}/statement-runs", headers=headers, json={"statement_date": day})
    assert r.status_code == 202 and r.get_json()["created"] and r.get_json()["run"]["statement_date"] == day
    future = client.post(f"{_base(bp)}/statement-runs", headers=headers,
                         json={"statement_date": (date.today() + timedelta(days=1)).isoformat()})  # fmt: skip
    assert future.status_code == 422 and "statement_date" in future.get_json()["errors"]


def _queries(client, services, url: str, headers) -> int:
    statements_run: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements_run.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        response = client.get(url, headers=headers)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.get_json()
    return len(statements_run)


def test_the_account_does_not_query_per_row(client, services, factory, bp, headers):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=40)
    url = f"{_base(bp)}/patients/{patient}"
    client.post(f"{url}/payments", headers=headers, json={"amount": "5.00", "method": "cash"})
    one = _queries(client, services, f"{url}/account", headers)
    for _ in range(4):
        owed_visit(services, bp, patient, days_ago=20)
        client.post(f"{url}/payments", headers=headers, json={"amount": "7.00", "method": "cash"})
    plan = {"patient_id": patient, "total": "30.00", "installment_amount": "10.00", "frequency": "monthly",
            "start_date": date.today().isoformat()}  # fmt: skip
    plan_id = client.post(f"{_base(bp)}/payment-plans", headers=headers, json=plan).get_json()["id"]
    client.post(f"{_base(bp)}/payment-plans/{plan_id}/cancel", headers=headers, json={})
    client.post(f"{_base(bp)}/payment-plans", headers=headers, json=plan)
    assert _queries(client, services, f"{url}/account", headers) <= one + 1  # + the plans' installments
