"""A secondary claim's ledger over HTTP: the service's account holds the primary's postings and the secondary's, and
every entry is shown against the secondary claim's own line for that service."""

from __future__ import annotations

from tests.billing.factories import added_coverage, billing_practice, insured_patient
from tests.billing.test_posting_cob import _primary_era, new_visit, post
from tests.conftest import login


def test_a_secondary_claims_ledger_names_its_own_lines(client, services, factory):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Second Health Plan", member_id="SEC445566")
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
