"""The claim outcome read: a practice's claims counted by outcome (paid, denied, rejected, pending, not sent, closed),
each status in exactly one, so the outcomes add up to the claims."""

from __future__ import annotations

from billing import claims as claim_service
from billing.claim_outcomes import OUTCOME_OF_STATUS, ClaimOutcomes, claim_outcomes
from billing.claim_status import STATUSES, transition
from tests.billing.factories import billing_practice, insured_patient, visit

# The status path each claim takes from ready (one claim per visit).
PATHS = (
    ("submitted", "paid"),
    ("submitted", "accepted", "partially_paid"),
    ("submitted", "denied"),
    ("submitted", "acknowledged", "rejected"),
    ("submitted", "acknowledged"),
    ("submitted", "accepted"),
    (),  # ready: not sent yet
    ("closed",),
)


def test_every_claim_status_has_exactly_one_outcome():
    assert set(OUTCOME_OF_STATUS) == set(STATUSES)
    assert set(OUTCOME_OF_STATUS.values()) == {f for f in ClaimOutcomes.__dataclass_fields__}


def test_claims_are_counted_by_outcome(services, factory):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        assert claim_outcomes(s) == ClaimOutcomes() and claim_outcomes(s).total == 0
    with services.db.tenant_session(bp.slug) as s:
        for path in PATHS:
            patient = insured_patient(services, bp, factory)
            (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
            transition(s, claim, "ready", source="test")
            for status in path:
                transition(s, claim, status, source="test")
        s.commit()
    with services.db.tenant_session(bp.slug) as s:
        outcomes = claim_outcomes(s)
    assert outcomes == ClaimOutcomes(paid=2, denied=1, rejected=1, pending=2, unsent=1, closed=1)
    assert outcomes.total == len(PATHS)
    assert outcomes + outcomes == ClaimOutcomes(paid=4, denied=2, rejected=2, pending=4, unsent=2, closed=2)
