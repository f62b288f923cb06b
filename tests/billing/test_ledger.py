"""The ledger: balances derived from append-only entries obey charge − payments − adjustments = insurance balance +
patient balance, for every service line (the account), after any sequence of events posted through any of the claims
billing it (hypothesis); reversals happen once; postings with a key happen once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import claims as claim_service
from billing import ledger
from billing.encounters import get_encounter
from billing.models import Claim, ClaimLine, Coverage, LedgerEntry
from medbill.errors import Conflict, Invalid
from tests.billing.factories import billing_practice, insured_patient, visit

AMOUNTS = st.decimals(min_value=Decimal("-500.00"), max_value=Decimal("2000.00"), places=2, allow_nan=False)
EVENTS = st.one_of(
    st.tuples(st.sampled_from(list(ledger.EFFECTS)), AMOUNTS, st.none()),
    st.tuples(st.sampled_from(list(ledger.BUCKETED)), AMOUNTS, st.sampled_from(["insurance", "patient"])),
    st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=30), st.none()),
)


@pytest.fixture(scope="module")
def practice(services, factory):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    return bp, patient


def _fresh_claim(services, practice):
    bp, patient = practice
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        s.commit()
        return claim.id, [cl.id for cl in claim.lines]


def _second_claim(s, claim_id: int) -> Claim:
    """Another claim billing the same services (as a replacement or a secondary claim would)."""
    first = s.get(Claim, claim_id)
    encounter = get_encounter(s, first.encounter_id)
    lines = [cl.service_line for cl in first.lines]
    return claim_service.new_claim(s, encounter, s.get(Coverage, first.coverage_id), lines, user_id=None, frequency="7",
                                   original=first)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.integers(0, 3), EVENTS), min_size=1, max_size=25))
def test_invariant_holds_after_any_sequence(services, practice, events):
    bp, patient = practice
    claim_id, line_ids = _fresh_claim(services, practice)
    with services.db.tenant_session(bp.slug) as s:
        second = _second_claim(s, claim_id)
        # Lines 0-1 are the first claim's, 2-3 the second's, billing the same two services.
        lines = [s.get(ClaimLine, i) for i in line_ids] + list(second.lines)
        for line in lines:  # each claim "charges": the key makes it one charge per service
            ledger.post(s, line, "charge", line.charge, source_type="test",
                        posting_key=ledger.charge_key(line.service_line_id))  # fmt: skip
        posted: list[int] = []
        for which, (kind, value, bucket) in events:
            line = lines[which]
            if kind == "reverse":
                if not posted:
                    continue
                target = posted[value % len(posted)]
                already = s.query(LedgerEntry).filter_by(reverses_entry_id=target).count()
                if already:
                    with pytest.raises(Conflict):
                        with s.begin_nested():
                            ledger.reverse(s, target, source_type="test")
                else:
                    ledger.reverse(s, target, source_type="test")
            else:
                posted.append(ledger.post(s, line, kind, value, bucket=bucket, source_type="test"))
        for line in lines:
            b = ledger.line_balance(s, line.id)
            assert b.charges - b.payments - b.adjustments == b.insurance + b.patient, b
            keyed = s.query(LedgerEntry).filter_by(posting_key=ledger.charge_key(line.service_line_id)).count()
            assert keyed == 1  # charged once, although both claims posted the charge
            assert b == ledger.service_line_balance(s, line.service_line_id)
        assert [ledger.line_balance(s, ln.id) for ln in lines[:2]] == [
            ledger.line_balance(s, ln.id) for ln in lines[2:]
        ]
        claim = ledger.claim_balance(s, claim_id)
        parts = [ledger.line_balance(s, line.id) for line in lines[:2]]
        assert claim.insurance == sum(p.insurance for p in parts) and claim.patient == sum(p.patient for p in parts)
        assert claim.charges - claim.payments - claim.adjustments == claim.total
        assert ledger.claim_balance(s, second.id) == claim
        # The trails of the two claims add up to the accounts.
        trails = [ledger.posted_by_claim(s, c) for c in (claim_id, second.id)]
        assert sum(t.insurance for t in trails) == claim.insurance and sum(t.patient for t in trails) == claim.patient
        s.rollback()


def test_a_typical_remittance_story(services, practice):
    """Charge 150; payer allows 100: pays 72, CO-45 50 off, PR-1 10 deductible, PR-2 18 coinsurance; the patient
    pays 20 and the rest is written off; a reversal takes the payment back and the payer pays again."""
    bp, _ = practice
    claim_id, line_ids = _fresh_claim(services, practice)
    with services.db.tenant_session(bp.slug) as s:
        line = s.get(ClaimLine, line_ids[0])
        ledger.post(s, line, "charge", Decimal("150.00"), source_type="test")
        paid = ledger.post(s, line, "insurance_payment", Decimal("72.00"), source_type="remittance")
        ledger.post(s, line, "contractual_adjustment", Decimal("50.00"), group_code="CO", reason_code="45",
                    source_type="remittance")  # fmt: skip
        ledger.post(s, line, "patient_responsibility", Decimal("10.00"), group_code="PR", reason_code="1",
                    source_type="remittance")  # fmt: skip
        ledger.post(s, line, "patient_responsibility", Decimal("18.00"), group_code="PR", reason_code="2",
                    source_type="remittance")  # fmt: skip
        b = ledger.line_balance(s, line.id)
        assert (b.insurance, b.patient) == (Decimal("0.00"), Decimal("28.00"))
        ledger.post(s, line, "patient_payment", Decimal("20.00"), source_type="user")
        ledger.post(s, line, "write_off", Decimal("8.00"), bucket="patient", source_type="user")
        assert ledger.line_balance(s, line.id).total == Decimal("0.00")

        ledger.reverse(s, paid, source_type="remittance", note="CLP02 22")
        assert ledger.line_balance(s, line.id).insurance == Decimal("72.00")
        with pytest.raises(Conflict, match="already reversed"):
            with s.begin_nested():
                ledger.reverse(s, paid, source_type="remittance")
        reversal = s.query(LedgerEntry).filter_by(reverses_entry_id=paid).one()
        with pytest.raises(Conflict, match="cannot itself be reversed"):
            ledger.reverse(s, reversal.id, source_type="test")
        ledger.post(s, line, "insurance_payment", Decimal("72.00"), source_type="remittance")
        b = ledger.line_balance(s, line.id)
        assert b.total == Decimal("0.00") and b.payments == Decimal("92.00") and b.adjustments == Decimal("58.00")
        s.commit()


def test_postings_with_a_key_happen_once_and_bad_kinds_are_refused(services, practice):
    bp, _ = practice
    _claim_id, line_ids = _fresh_claim(services, practice)
    with services.db.tenant_session(bp.slug) as s:
        line = s.get(ClaimLine, line_ids[0])
        first = ledger.post(s, line, "insurance_payment", Decimal("10"), source_type="remittance", posting_key="k1")
        again = ledger.post(s, line, "insurance_payment", Decimal("10"), source_type="remittance", posting_key="k1")
        assert first is not None and again is None
        assert ledger.line_balance(s, line.id).payments == Decimal("10.00")
        with pytest.raises(Invalid):
            ledger.post(s, line, "gift", Decimal("1"), source_type="test")
        with pytest.raises(Invalid):
            ledger.post(s, line, "write_off", Decimal("1"), source_type="test")
        with pytest.raises(TypeError):
            ledger.post(s, line, "patient_payment", 1.5, source_type="test")  # floats never carry money
        s.rollback()
