"""Applying acknowledgements to a practice: a 999 accepts or rejects the transaction sets of a submission; a 277CA
accepts each claim into the payer's system (with the payer's claim number) or rejects it with reasons in words.
Each transaction set is applied exactly once (keyed by sender, interchange and set control numbers)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.claim_status import transition
from billing.models import Claim, ClaimAcknowledgement, InboundFile, Submission, SubmissionClaim
from integrations.x12.ack277 import Ack277
from integrations.x12.ack999 import Ack999

AWAITING_ACK = ("submitted", "acknowledged")


def transaction_key(kind: str, ack: Ack999 | Ack277) -> str:
    raw = "|".join([kind, ack.sender_qualifier, ack.sender_id, ack.interchange_control_number, ack.control_number])
    return hashlib.sha256(raw.encode()).hexdigest()


def claim_inbound(session: Session, kind: str, ack: Ack999 | Ack277, storage_key: str) -> int | None:
    """Record the set as received; None when it was applied before (nothing more to do)."""
    return session.scalar(
        insert(InboundFile)
        .values(kind=kind, content_sha256=transaction_key(kind, ack), storage_key=storage_key)
        .on_conflict_do_nothing(index_elements=["content_sha256"])
        .returning(InboundFile.id)
    )


def _control(value: str) -> int | None:
    return int(value) if value and value.strip().isascii() and value.strip().isdigit() else None  # not "²"


def find_submission(session: Session, ack: Ack999) -> Submission | None:
    gs = _control(ack.group_control_number)
    if gs is None:
        return None
    return session.scalar(
        select(Submission).where(Submission.group_control_number == gs).order_by(Submission.id.desc()).limit(1)
    )


def _reject(session, claim: Claim, inbound_id: int, reasons: list[str], source: str) -> None:
    session.add(ClaimAcknowledgement(claim_id=claim.id, inbound_file_id=inbound_id, accepted=False, reasons=reasons))
    if claim.status in AWAITING_ACK:
        transition(session, claim, "rejected", source=source, reason="; ".join(reasons)[:2000] or "rejected")


def apply_999(session: Session, ack: Ack999, *, inbound_id: int) -> dict:
    submission = find_submission(session, ack)
    if submission is None:
        return {
            "kind": "999",
            "applied": False,
            "error": f"no submission with group control number {ack.group_control_number}",
        }
    links = list(session.scalars(select(SubmissionClaim).where(SubmissionClaim.submission_id == submission.id)))
    by_set: dict[int | None, list[int]] = {}
    for link in links:
        by_set.setdefault(_control(link.transaction_control_number), []).append(link.claim_id)
    results = {_control(t.control_number): t for t in ack.transactions}
    accepted = rejected = 0
    for set_number, claim_ids in by_set.items():
        tx = results.get(set_number)
        # No AK2 for a set means the group verdict applies to it (AK901).
        status = tx.status if tx else ack.group_status
        ok = status in ("A", "E")
        reasons = (tx.errors if tx else ack.group_errors) or [f"999 {ack.group_status_text}"]
        for claim in session.scalars(select(Claim).where(Claim.id.in_(claim_ids)).with_for_update()):
            if ok:
                accepted += 1
                if claim.status == "submitted":
                    transition(
                        session, claim, "acknowledged", source="999",
                        reason=f"999 accepted set {set_number} of interchange {submission.interchange_control_number}",
                    )  # fmt: skip
            else:
                rejected += 1
                _reject(session, claim, inbound_id, [f"999 rejected the file: {r}" for r in reasons], "999")
    if submission.status == "transmitted":
        submission.status = "accepted" if not rejected else ("rejected" if not accepted else "partially_accepted")
    submission.ack_detail = {
        "999": {
            "group_status": ack.group_status,
            "group_status_text": ack.group_status_text,
            "transactions": [
                {"control_number": t.control_number, "status": t.status, "errors": t.errors} for t in ack.transactions
            ],
        }
    }
    return {"kind": "999", "applied": True, "submission_id": submission.id, "accepted": accepted, "rejected": rejected}


def apply_277ca(session: Session, ack: Ack277, *, inbound_id: int) -> dict:
    accepted = rejected = 0
    unmatched: list[str] = []
    for item in ack.claims:
        claim_id = _control(item.patient_control_number)
        claim = session.scalar(select(Claim).where(Claim.id == claim_id).with_for_update()) if claim_id else None
        if claim is None:
            unmatched.append(item.patient_control_number)
            continue
        if item.accepted:
            accepted += 1
            session.add(
                ClaimAcknowledgement(
                    claim_id=claim.id,
                    inbound_file_id=inbound_id,
                    accepted=True,
                    payer_claim_number=item.payer_claim_number,
                    reasons=[],
                )
            )
            if item.payer_claim_number:
                claim.payer_claim_number = item.payer_claim_number
            if claim.status in AWAITING_ACK:
                note = f"payer claim number {item.payer_claim_number}" if item.payer_claim_number else "accepted"
                transition(session, claim, "accepted", source="277ca", reason=note)
        else:
            rejected += 1
            _reject(session, claim, inbound_id, item.reasons or ["rejected by the payer (no reason given)"], "277ca")
    return {"kind": "277CA", "applied": True, "accepted": accepted, "rejected": rejected, "unmatched": unmatched}
