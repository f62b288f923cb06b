"""Claim follow-up: claims submitted more than N days ago (N per payer enrolment, `FollowUpRule`, default 30) that
the payer has not answered at all (no 277CA, no 835) go into the follow-up queue, where a biller calls the payer or
resubmits. The daily job (jobs/followup.py) runs `run`; it is idempotent: a claim appears once per submission while
unresolved (a unique claim + submission time), an item resolves itself when a response arrives, and one a biller
closed stays closed until the claim is submitted again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, cast, exists, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.models import (
    Claim,
    ClaimAcknowledgement,
    FollowUpItem,
    FollowUpRule,
    Patient,
    Payer,
    PracticePayer,
    RemittanceClaim,
)
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess

DEFAULT_DAYS = 30
# Claims out with the payer and never answered; later statuses all come from a response.
WAITING_STATUSES = ("submitted", "acknowledged")


def _answered(claim_id):
    return exists().where(ClaimAcknowledgement.claim_id == claim_id) | exists().where(
        RemittanceClaim.claim_id == claim_id
    )


def days_for(session: Session, payer_id: int) -> int:
    days = session.scalar(select(FollowUpRule.days).where(FollowUpRule.payer_id == payer_id))
    return days if days is not None else DEFAULT_DAYS


def set_days(session: Session, access: PracticeAccess, payer_id: int, days: int) -> int:
    """Set the follow-up days on the practice's enrolment with the payer."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise Invalid("follow-up days out of range", errors={"days": ["a whole number of days from 1 to 365"]})
    if session.scalar(select(PracticePayer.id).where(PracticePayer.payer_id == payer_id)) is None:
        raise NotFound(f"payer {payer_id} is not enrolled in this practice")
    session.execute(
        insert(FollowUpRule)
        .values(payer_id=payer_id, days=days)
        .on_conflict_do_update(index_elements=["payer_id"], set_={"days": days})
    )
    audit.record_access(session, access, "follow_up_rule", payer_id, "update", {"days": days})
    return days


def run(session: Session, now: datetime | None = None) -> dict:
    """Resolve items a response has answered, then add every stale unanswered claim once. Commits nothing."""
    now = now or datetime.now(UTC)
    resolved = session.execute(
        update(FollowUpItem)
        .where(FollowUpItem.status == "open", _answered(FollowUpItem.claim_id))
        .values(status="resolved", resolution="response", resolved_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    days = func.coalesce(
        select(FollowUpRule.days).where(FollowUpRule.payer_id == Claim.payer_id).scalar_subquery(), DEFAULT_DAYS
    )
    cutoff = literal(now, DateTime(timezone=True)) - func.make_interval(0, 0, 0, cast(days, Integer))
    stale = select(Claim.id, Claim.payer_id, Claim.submitted_at, days).where(
        Claim.status.in_(WAITING_STATUSES),
        Claim.submitted_at.is_not(None),
        Claim.submitted_at < cutoff,
        ~_answered(Claim.id),
    )
    added = session.scalars(
        insert(FollowUpItem)
        .from_select(["claim_id", "payer_id", "submitted_at", "days"], stale)
        .on_conflict_do_nothing(index_elements=["claim_id", "submitted_at"])
        .returning(FollowUpItem.id)
    ).all()
    session.flush()
    return {"added": len(added), "resolved": resolved or 0, "open": open_count(session)}


def open_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(FollowUpItem).where(FollowUpItem.status == "open")) or 0


def list_items(
    session: Session,
    *,
    status: str | None = "open",
    payer_id: int | None = None,
    item_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[dict], int]:
    where = []
    if item_id:
        where.append(FollowUpItem.id == item_id)
    if status:
        where.append(FollowUpItem.status == status)
    if payer_id:
        where.append(FollowUpItem.payer_id == payer_id)
    total = session.scalar(select(func.count()).select_from(FollowUpItem).where(*where)) or 0
    age = func.date_part("day", func.now() - FollowUpItem.submitted_at)
    rows = session.execute(
        select(FollowUpItem, Claim.status, Claim.total_charge, Patient.first_name, Patient.last_name,
               Patient.account_number, Payer.name.label("payer_name"), cast(age, Integer).label("days_out"))
        .join(Claim, Claim.id == FollowUpItem.claim_id)
        .join(Patient, Patient.id == Claim.patient_id)
        .outerjoin(Payer, Payer.id == FollowUpItem.payer_id)
        .where(*where)
        .order_by(FollowUpItem.submitted_at, FollowUpItem.id)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).all()  # fmt: skip
    return [
        {
            "id": r.FollowUpItem.id,
            "claim_id": r.FollowUpItem.claim_id,
            "claim_status": r.status,
            "total_charge": r.total_charge,
            "patient": {"first_name": r.first_name, "last_name": r.last_name, "account_number": r.account_number},
            "payer_id": r.FollowUpItem.payer_id,
            "payer_name": r.payer_name,
            "submitted_at": r.FollowUpItem.submitted_at,
            "days_out": r.days_out,
            "days": r.FollowUpItem.days,
            "status": r.FollowUpItem.status,
            "resolution": r.FollowUpItem.resolution,
            "note": r.FollowUpItem.note,
            "created_at": r.FollowUpItem.created_at,
            "resolved_at": r.FollowUpItem.resolved_at,
        }
        for r in rows
    ], total


def close(session: Session, access: PracticeAccess, item_id: int, note: str) -> FollowUpItem:
    """A biller closes an item (called the payer, resubmitted...) with a note saying what was done."""
    note = (note or "").strip()
    if not note:
        raise Invalid("say what was done", errors={"note": ["required"]})
    item = session.scalar(select(FollowUpItem).where(FollowUpItem.id == item_id).with_for_update())
    if item is None:
        raise NotFound(f"follow-up item {item_id} not found")
    if item.status != "open":
        raise Conflict(f"follow-up item {item_id} is already resolved")
    item.status = "resolved"
    item.resolution = "closed"
    item.note = note[:2000]
    item.resolved_at = datetime.now(UTC)
    item.resolved_by_user_id = access.user_id
    audit.record_access(session, access, "follow_up_item", item.id, "close", {"claim_id": item.claim_id})
    return item


__all__ = ["DEFAULT_DAYS", "close", "days_for", "list_items", "run", "set_days"]
