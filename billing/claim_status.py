"""The claim status machine: which transitions exist, and the one function that makes them (recording who, when
and why)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from billing.models import Claim, ClaimStatusChange
from medbill.errors import Conflict

STATUSES = (
    "draft",
    "scrubbed",
    "ready",
    "submitted",
    "acknowledged",
    "accepted",
    "rejected",
    "paid",
    "partially_paid",
    "denied",
    "closed",
)
EDITABLE = frozenset({"draft", "scrubbed", "ready"})
ADJUDICATED = ("paid", "partially_paid", "denied")
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"scrubbed", "ready", "closed"}),
    "scrubbed": frozenset({"scrubbed", "ready", "draft", "closed"}),
    "ready": frozenset({"ready", "scrubbed", "draft", "submitted", "closed"}),
    # A 277CA may arrive without (or before) the 999 that acknowledges its batch.
    # An 835 may also arrive before (or without) either acknowledgement: the payer adjudicated the claim.
    "submitted": frozenset({"acknowledged", "accepted", "rejected", *ADJUDICATED}),
    "acknowledged": frozenset({"accepted", "rejected", *ADJUDICATED}),
    "accepted": frozenset({*ADJUDICATED, "closed"}),
    # A rejected claim never reached the payer: it is corrected and goes out again under the same number.
    "rejected": frozenset({"draft", "closed"}),
    # Later 835s move an adjudicated claim among these (a second payment, a denial overturned); a reversal (CLP02
    # 22) takes the payment back and returns the claim to accepted, awaiting the corrected adjudication.
    "paid": frozenset({"partially_paid", "denied", "accepted", "closed"}),
    "partially_paid": frozenset({"paid", "denied", "accepted", "closed"}),
    "denied": frozenset({"paid", "partially_paid", "accepted", "closed"}),
    "closed": frozenset(),
}


def transition(
    session: Session, claim: Claim, to_status: str, *, source: str, user_id: int | None = None, reason: str = ""
) -> None:
    if to_status not in TRANSITIONS.get(claim.status, frozenset()):
        raise Conflict(
            f"claim {claim.id} is {claim.status}; it cannot become {to_status}",
            errors={"status": [f"allowed next: {', '.join(sorted(TRANSITIONS.get(claim.status, ()))) or 'none'}"]},
        )
    session.add(
        ClaimStatusChange(
            claim_id=claim.id,
            from_status=claim.status,
            to_status=to_status,
            user_id=user_id,
            source=source,
            reason=reason[:2000],
        )
    )
    claim.status = to_status


def record_creation(session: Session, claim: Claim, *, source: str, user_id: int | None, reason: str = "") -> None:
    session.add(
        ClaimStatusChange(
            claim_id=claim.id, from_status=None, to_status=claim.status, user_id=user_id, source=source, reason=reason
        )
    )
