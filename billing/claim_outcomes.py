"""How a practice's claims came out, by claim status: paid, denied, rejected, pending with the clearinghouse or
payer, not sent yet, closed. One read (`claim_outcomes`) for summaries such as the demo's first-start line; the
statuses themselves are set by posting and the acknowledgements (billing/rules.py decides what is denied)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.models import Claim

# Each claim status (billing.claim_status.STATUSES) in exactly one outcome, so the outcomes add up to the claims.
OUTCOME_OF_STATUS: dict[str, str] = {
    "paid": "paid",
    "partially_paid": "paid",  # the payer paid; what it left pending is still worked, but the claim was paid on
    "denied": "denied",
    "rejected": "rejected",  # refused by the clearinghouse or payer front end: never adjudicated
    "submitted": "pending",
    "acknowledged": "pending",
    "accepted": "pending",
    "draft": "unsent",
    "scrubbed": "unsent",
    "ready": "unsent",
    "closed": "closed",
}


@dataclass(frozen=True)
class ClaimOutcomes:
    paid: int = 0
    denied: int = 0
    rejected: int = 0
    pending: int = 0
    unsent: int = 0
    closed: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: ClaimOutcomes) -> ClaimOutcomes:
        return ClaimOutcomes(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def claim_outcomes(session: Session) -> ClaimOutcomes:
    """The claims of the practice `session` is bound to (a tenant session), counted by outcome."""
    counts: dict[str, int] = {}
    for status, count in session.execute(select(Claim.status, func.count()).group_by(Claim.status)):
        outcome = OUTCOME_OF_STATUS[status]
        counts[outcome] = counts.get(outcome, 0) + count
    return ClaimOutcomes(**counts)
