"""The registry of work queues: what needs a biller's attention, one entry per queue.

Each queue has a name, a label, a one-line description, the words for its count, a count computed with one cheap
statement (a constant number of statements whatever the queue's size), the portal page that works it and the permission
that page needs. The biller's home shows every queue the caller may work; the billing company's overview
(billing.reports) shows the practice-level ones per practice. Registration order is display order.

Counts run in the practice's session (scope "practice"), or in the shared session over the caller's billing companies
(scope "company": EDI that named no practice). The link is a portal endpoint name and its arguments, kept as plain
strings so this module stays free of Flask."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import collections, followup, statements
from billing.models import Claim, DenialItem, RemittanceClaim, Underpayment
from tenants.models import UnmatchedEdiSet


@dataclass(frozen=True)
class WorkQueue:
    name: str
    label: str
    description: str
    # The count in words: ("claim to correct", "claims to correct").
    noun: tuple[str, str]
    # practice scope: count(session); company scope: count(session, company_ids).
    count: Callable[..., int]
    endpoint: str
    link_args: dict[str, str] = field(default_factory=dict)
    permission: str = "claims:read"
    scope: str = "practice"
    # Agency users (placed_only access) never work a practice's queues.
    staff_only: bool = True

    def words(self, n: int) -> str:
        return self.noun[0] if n == 1 else self.noun[1]


QUEUES: dict[str, WorkQueue] = {}


def register(queue: WorkQueue) -> WorkQueue:
    QUEUES[queue.name] = queue
    return queue


def practice_queues() -> dict[str, WorkQueue]:
    return {name: q for name, q in QUEUES.items() if q.scope == "practice"}


def _count_where(model, *where) -> Callable[[Session], int]:
    def count(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return count


def statement_candidates(session: Session, *, today: date | None = None) -> int:
    """Patients the current cycle's statement run would bill now (before credits are applied)."""
    settings = statements.get_settings(session)
    selected = statements.selection(session, settings, statements.cycle_start(settings, today or date.today()))
    return int(session.scalar(select(func.count()).select_from(selected.order_by(None).subquery())) or 0)


def unmatched_edi(session: Session, company_ids: list[int]) -> int:
    """Incoming sets of these billing companies that named none of their practices and wait to be assigned."""
    if not company_ids:
        return 0
    return int(
        session.scalar(
            select(func.count())
            .select_from(UnmatchedEdiSet)
            .where(UnmatchedEdiSet.company_id.in_(company_ids), UnmatchedEdiSet.assigned_at.is_(None))
        )
        or 0
    )


register(WorkQueue(
    "scrub_errors", "Scrub errors", "Claims that fail edits before submission: correct them and submit again.",
    ("claim to correct", "claims to correct"), _count_where(Claim, Claim.status == "scrubbed"),
    "portal.claims_list", {"status": "scrubbed"},
))  # fmt: skip
register(WorkQueue(
    "rejections", "Rejections", "Claims the clearinghouse or payer rejected as unprocessable.",
    ("rejected claim", "rejected claims"), _count_where(Claim, Claim.status == "rejected"), "portal.rejections",
))  # fmt: skip
register(WorkQueue(
    "denials", "Denials", "The denial work queue: denied and underpaid lines to appeal, resubmit, bill or write off.",
    ("open item", "open items"), _count_where(DenialItem, DenialItem.status == "open"), "portal.denial_queue",
))  # fmt: skip
register(WorkQueue(
    "underpayments", "Underpayments", "Lines paid below the contracted amount, beyond the payer's tolerance.",
    ("underpaid line", "underpaid lines"), _count_where(Underpayment, Underpayment.status == "open"),
    "portal.underpayments_queue",
))  # fmt: skip
register(WorkQueue(
    "posting_exceptions", "Posting exceptions", "Remittance claims that could not be posted automatically.",
    ("remittance claim to resolve", "remittance claims to resolve"),
    _count_where(RemittanceClaim, RemittanceClaim.outcome == "exception"), "portal.posting_exceptions",
))  # fmt: skip
register(WorkQueue(
    "follow_ups", "Follow-up", "Claims with no payer response past their follow-up date.",
    ("unanswered claim", "unanswered claims"), followup.open_count, "portal.follow_up_queue",
))  # fmt: skip
register(WorkQueue(
    "statement_candidates", "Statement candidates", "Patients to bill this cycle: balances due, not yet billed.",
    ("patient to bill this cycle", "patients to bill this cycle"), statement_candidates, "portal.patient_billing",
    permission="statements:write",
))  # fmt: skip
register(WorkQueue(
    "collection_candidates", "Collection candidates", "Accounts the practice's placement rules pick for an agency.",
    ("account to review", "accounts to review"), lambda session: collections.candidate_count(session),
    "portal.collections_home", permission="collections:write",
))  # fmt: skip
register(WorkQueue(
    "unmatched_edi", "Unmatched EDI",
    "Incoming 835 and acknowledgement sets that named no practice of your billing company, to assign to one.",
    ("set waiting", "sets waiting"), unmatched_edi, "portal.unmatched_edi", scope="company",
))  # fmt: skip
