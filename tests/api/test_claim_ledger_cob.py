"""A secondary claim's ledger over HTTP: the service's account holds the primary's postings and the secondary's, and
every entry is shown against the secondary claim's own line for that service."""

from __future__ import annotations

from datetime import date

from billing import setup
from tests.billing.factories import billing_practice, insured_patient, shared_payer
from tests.billing.test_posting_cob import _primary_era, new_visit, post
from tests.conftest import login


def test_a_secondary_claims_ledger_names_its_own_lines(client, services, factory):
    bp = billing_practice(services, factory)
    second = shared_payer(services, name="Second Health Plan")
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        setup.enroll_payer(s, bp.access, second.id, {})
        setup.add_coverage(
            s, bp.access, patient,
            {"payer_id": second.id, "priority": 2, "member_id": "SEC445566", "relationship_code": "18",
             "effective_date": date(2020, 1, 1)},
        )  # fmt: skip
        s.commit()
    v = new_visit(services, bp, patient)
    (secondary_id,) = post(services, bp, _primary_era(v, "PRI0000888"))["secondary_claims"]
    headers = login(client, bp.biller_email)
    body = client.get(f"/api/v1/practices/{bp.slug}/claims/{secondary_id}/ledger", headers=headers).get_json()
    kinds = {e["kind"] for e in body["entries"]}
    # The primary's charge, payment and adjustments, and the transfer of its PR to the secondary.
    assert {"charge", "insurance_payment", "contractual_adjustment", "transfer_to_secondary"} <= kinds
    own = {(ln["line_number"], ln["procedure_code"]) for ln in body["lines"]}
    assert {(e["line_number"], e["procedure_code"]) for e in body["entries"]} == own
    assert body["balance"]["insurance_balance"] == "39.00" and body["balance"]["patient_balance"] == "0.00"
