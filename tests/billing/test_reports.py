"""Reports agree with the ledger to the cent: the month's charges, payments and adjustments are the sums of what the
835 said, the A/R aging adds up to what is still owed, provider allocation adds up to the payments, and every deposit
reconciles with what it posted."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing import ledger, reports
from integrations.x12.remit835 import parse_835
from tests.billing.test_posting import _intake, remitted  # noqa: F401  (the module fixture: claims remitted by the sandbox)

ZERO = Decimal("0.00")


@pytest.fixture(scope="module")
def posted(services, remitted):  # noqa: F811
    bp, claim_ids, era = remitted
    _intake(services, bp, era)
    (remittance,) = parse_835(era.encode())
    return bp, claim_ids, remittance


def _sum(values) -> Decimal:
    return sum(values, ZERO)


def test_the_months_figures_are_the_835s_sums(services, posted):
    bp, claim_ids, remittance = posted
    adjustments = [
        a for clp in remittance.claims for a in [*clp.adjustments, *(x for s in clp.lines for x in s.adjustments)]
    ]
    with services.db.tenant_session(bp.slug) as s:
        summary = reports.monthly_summary(s, date.today(), months=3)
        month = summary.current
        assert len(summary.months) == 3 and summary.months[0].charges == ZERO
        assert month.charges == _sum(clp.total_charge for clp in remittance.claims)
        assert month.insurance_payments == _sum(clp.paid for clp in remittance.claims)
        assert month.contractual_adjustments == _sum(a.amount for a in adjustments if a.group == "CO")
        assert month.other_adjustments == _sum(a.amount for a in adjustments if a.group not in ("CO", "PR"))
        assert month.patient_payments == ZERO and month.refunds == ZERO
        practice = ledger.practice_balance(s)
        assert month.ar_end == practice.total == _sum(clp.patient_responsibility for clp in remittance.claims)
        expected_net = (month.payments * 100 / (month.charges - month.contractual_adjustments)).quantize(Decimal("0.1"))
        assert month.net_collection_rate == expected_net
        assert month.claims_adjudicated == len(remittance.claims)
        # Nothing paid because of the deductible is not a denial: the patient owes it.
        denied = [clp for clp in remittance.claims if clp.is_denied or not (clp.paid or clp.patient_responsibility)]
        assert month.claims_denied == len(denied)
        assert month.claims_first_answered == len(claim_ids) and month.claims_clean == len(claim_ids)
        assert month.clean_claim_rate == Decimal("100.0")


def test_aging_adds_up_to_what_is_owed_and_drills_down_to_claims(services, posted):
    bp, _claim_ids, _remittance = posted
    with services.db.tenant_session(bp.slug) as s:
        rows = reports.ar_aging(s, date.today())
        practice = ledger.practice_balance(s)
        assert _sum(row.total for row in rows) == practice.total
        patients = rows[-1]
        assert patients.key == "patients" and patients.total == practice.patient
        cells = [(row.key, name) for row in rows for name, amount in row.buckets.items() if amount]
        for key, bucket in cells:
            claims = reports.aging_claims(s, date.today(), key=key, bucket=bucket)
            row = next(r for r in rows if r.key == key)
            assert _sum(c["owed"] for c in claims) == row.buckets[bucket]


def test_allocation_and_deposits_account_for_every_payment(services, posted):
    bp, _claim_ids, remittance = posted
    first = date.today().replace(day=1)
    end = reports.next_month(first)
    with services.db.tenant_session(bp.slug) as s:
        allocations = reports.provider_allocation(s, first, end)
        assert _sum(a.amount for a in allocations) == _sum(clp.paid for clp in remittance.claims)
        assert all(a.provider and a.payer for a in allocations)
        (deposit,) = reports.deposit_reconciliation(s, first, end)
        assert deposit.amount == remittance.total_payment
        assert deposit.difference == ZERO


def test_rates_are_none_without_a_denominator():
    assert reports.rate(Decimal(5), ZERO) is None
    assert reports.rate(Decimal(1), Decimal(3)) == Decimal("33.3")
    assert reports.bucket_of(0) == "0-30" and reports.bucket_of(31) == "31-60" and reports.bucket_of(121) == "120+"
    assert reports.months_back(date(2026, 2, 14), 3) == [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]


def test_a_balance_pending_with_the_secondary_ages_under_the_secondary_payer(services, factory):
    from tests.billing.factories import added_coverage, billing_practice, insured_patient
    from tests.billing.test_posting_cob import _primary_era, new_visit, post

    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Second Health Plan", member_id="SEC112233")
    v = new_visit(services, bp, patient)
    post(services, bp, _primary_era(v, "PRI0000777"))
    as_of = date.today()
    with services.db.tenant_session(bp.slug) as s:
        rows = {row.label: row for row in reports.ar_aging(s, as_of)}
        # The primary's PR (35.00 + 4.00) is billed to the secondary: owed by it, not by the primary nor the patient.
        assert rows["Second Health Plan"].total == Decimal("39.00")
        assert set(rows) == {"Second Health Plan", "Patients"}
        assert rows["Patients"].total == ZERO
        (bucket,) = [name for name, amount in rows["Second Health Plan"].buckets.items() if amount]
        (claim,) = reports.aging_claims(s, as_of, key=rows["Second Health Plan"].key, bucket=bucket)
        assert claim["owed"] == Decimal("39.00") and claim["claim_id"] != v.claim_id


def test_a_backdated_submission_bills_its_charges_on_its_own_date(services, factory):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from billing import claims as claim_service
    from billing import submissions
    from billing.claim_status import transition
    from billing.models import LedgerEntry, Submission
    from tests.billing.factories import billing_practice, insured_patient, visit

    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    # A visit of 400 days ago, billed 398 days ago (as when a practice's backlog is entered).
    sent = datetime.combine(date.today() - timedelta(days=398), datetime.min.time(), tzinfo=UTC)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient, days_ago=400))
        transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None, now=sent, today=sent.date())
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None, now=sent)
        s.commit()
        assert s.scalar(select(Submission.created_at)) == sent
        dates = set(s.scalars(select(LedgerEntry.posted_on).where(LedgerEntry.kind == "charge")))
        assert dates == {sent.date()}
        billed = reports.month_totals(s, sent.date().replace(day=1))
        assert billed.charges == claim.total_charge
