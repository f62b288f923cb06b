"""The denial work queue: denied and underpaid claim lines as work items, grouped and filtered by reason (CARC in
words), payer, age and amount; assigned to a biller, noted, and closed with an action.

Items are derived from what posting recorded, never written by posting itself: `sync` reads each claim's latest
posted remittance (a line is denied when its claim is denied, or when the remittance paid nothing on it and adjusted
it with a CO/PI/OA reason and no patient responsibility, as the remittance pages show it) and the open underpayment
queue, and inserts one item per line and remittance (or underpayment) under a unique `source_key`, so running it again
adds nothing. It also closes items a later remittance settled (the line is no longer denied). API, portal and the
follow-up job call it before reading the queue.

Closing actions:
- correct and resubmit: a replacement claim (frequency 7) carrying the payer's claim number (billing.claims);
- void: a void claim (frequency 8); irreversible, so the caller must confirm;
- write off: needs `ledger:write_off`; the payer's denial adjustments on the line are reversed and what insurance
  then owes is written off (ledger `write_off`, bucket insurance) under the CARC the biller chose, so the ledger says
  the practice decided to give up the amount, and why; irreversible, confirmed;
- bill the patient: the denial adjustments are reversed and the amount moves to the patient (`patient_responsibility`,
  source user);
- appeal: billing.appeals writes the letter; the item waits for the payer's answer (status `appealed`).

Posting treats a CO denial as an adjustment (insurance owes nothing afterwards); the actions above that move money
first take those adjustments back, once per entry, so a line is never written off or billed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import String, and_, case, cast, exists, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import array, array_agg, distinct_on, insert
from sqlalchemy.orm import Session, aliased

from billing import ledger, rules, underpayments
from billing.adjustment_codes import carc, describe_adjustment
from billing.claims import create_correction
from billing.models import (
    Appeal,
    Claim,
    ClaimLine,
    DenialItem,
    DenialNote,
    Deposit,
    LedgerEntry,
    Patient,
    Payer,
    RemittanceClaim,
    ServiceLine,
    Underpayment,
)
from billing.money import ZERO, money
from medbill.errors import Conflict, Forbidden, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess
from tenants.models import Membership, User

# Groups whose adjustments on a line paid nothing make it a denial (PR means the patient owes it: not a denial).
DENIAL_GROUPS = rules.DENIAL_GROUPS  # the rule lives in billing.rules
STATUSES = ("open", "appealed", "closed")
KINDS = ("denial", "underpayment")
# action asked for -> what the item records when closed by it
CLOSING_ACTIONS = {
    "resubmit": "corrected",
    "void": "voided",
    "write_off": "written_off",
    "bill_patient": "billed_patient",
}
IRREVERSIBLE = frozenset({"void", "write_off"})
SORTS = ("-age", "age", "-amount", "amount")
WRITE_OFF_PERMISSION = "ledger:write_off"
USER_SOURCE = "user"


# --- deriving items from what posting recorded ------------------------------------------------------------------------


def _latest_remittances():
    """Each claim's latest remittance claim that posted or reversed (one row per claim)."""
    return (
        select(
            RemittanceClaim.id.label("rc_id"),
            RemittanceClaim.claim_id,
            RemittanceClaim.deposit_id,
            RemittanceClaim.outcome,
        )
        .where(RemittanceClaim.claim_id.is_not(None), RemittanceClaim.outcome.in_(("posted", "reversal")))
        .ext(distinct_on(RemittanceClaim.claim_id))
        .order_by(RemittanceClaim.claim_id, RemittanceClaim.id.desc())
        .subquery("every_latest")
    )


def _denied_lines(session: Session) -> list:
    """Denied lines of every claim whose latest remittance posted and has no work items yet."""
    every = _latest_remittances()
    # Only remittances not derived yet: what was derived before is not aggregated again.
    latest = (
        select(every)
        .where(
            every.c.outcome == "posted",
            ~exists().where(DenialItem.remittance_claim_id == every.c.rc_id, DenialItem.kind == "denial"),
        )
        .subquery("latest")
    )
    source = literal("deposit:") + cast(latest.c.deposit_id, String)
    coded = rules.denial_code_sql(LedgerEntry.group_code, LedgerEntry.reason_code)
    per_line = (
        select(
            LedgerEntry.claim_line_id,
            func.coalesce(func.sum(case((LedgerEntry.kind == "insurance_payment", LedgerEntry.amount), else_=0)), 0)
            .label("paid"),
            func.coalesce(func.sum(case((coded, LedgerEntry.amount), else_=0)), 0).label("denied"),
            func.bool_or(LedgerEntry.group_code == "PR").label("has_pr"),
            array_agg((LedgerEntry.group_code + literal("-") + LedgerEntry.reason_code).distinct())
            .filter(coded)
            .label("codes"),
        )
        .join(latest, and_(latest.c.claim_id == LedgerEntry.claim_id, LedgerEntry.source_id == source))
        .where(LedgerEntry.kind != "reversal", LedgerEntry.source_type == ledger.REMITTANCE_SOURCE)
        .group_by(LedgerEntry.claim_line_id)
        .subquery("per_line")
    )  # fmt: skip
    denied = rules.line_denied_sql(
        func.coalesce(per_line.c.paid, 0),
        func.cardinality(func.coalesce(per_line.c.codes, array([], type_=String))),
        func.coalesce(per_line.c.has_pr, False),
        Claim.status == "denied",
    )
    return session.execute(
        select(
            latest.c.rc_id,
            latest.c.deposit_id,
            Claim.id.label("claim_id"),
            Claim.payer_id,
            ClaimLine.id.label("claim_line_id"),
            ClaimLine.charge,
            per_line.c.paid,
            per_line.c.denied,
            per_line.c.codes,
            func.coalesce(Deposit.payment_date, func.date(Deposit.created_at)).label("denial_date"),
        )
        .select_from(latest)
        .join(Claim, Claim.id == latest.c.claim_id)
        .join(ClaimLine, ClaimLine.claim_id == Claim.id)
        .join(Deposit, Deposit.id == latest.c.deposit_id)
        .outerjoin(per_line, per_line.c.claim_line_id == ClaimLine.id)
        .where(
            Claim.status.in_(("denied", "paid", "partially_paid")),
            denied,
        )
        .order_by(Claim.id, ClaimLine.line_number)
    ).all()


def _line_codes(session: Session, claim_line_id: int, deposit_id: int) -> list[str]:
    rows = session.scalars(
        select(LedgerEntry.group_code + literal("-") + LedgerEntry.reason_code)
        .distinct()
        .where(
            LedgerEntry.claim_line_id == claim_line_id,
            LedgerEntry.source_id == f"deposit:{deposit_id}",
            LedgerEntry.kind != "reversal",
            LedgerEntry.group_code.in_(DENIAL_GROUPS),
            LedgerEntry.reason_code != "",
        )
    )
    return sorted(rows)


def sync(session: Session) -> dict:
    """Bring the work queue up to date with what posting recorded; {"added": n, "settled": n}. Idempotent."""
    added = 0
    rows = _denied_lines(session)
    claim_codes: dict[int, set[str]] = {}
    for r in rows:
        claim_codes.setdefault(r.claim_id, set()).update(r.codes or [])
    for r in rows:
        # A claim-level denial (CAS of the CLP, posted to the first line) speaks for every line of the claim.
        codes = sorted(r.codes or claim_codes.get(r.claim_id) or [])
        paid = money(r.paid or 0)
        amount = money(r.denied) if r.denied else money(r.charge - paid)
        new_id = session.scalar(
            insert(DenialItem)
            .values(
                source_key=f"denial:{r.rc_id}:{r.claim_line_id}",
                kind="denial",
                claim_id=r.claim_id,
                claim_line_id=r.claim_line_id,
                payer_id=r.payer_id,
                deposit_id=r.deposit_id,
                remittance_claim_id=r.rc_id,
                reason_codes=codes,
                charge=r.charge,
                amount=amount,
                denial_date=r.denial_date,
            )
            .on_conflict_do_nothing(index_elements=["source_key"])
            .returning(DenialItem.id)
        )
        added += new_id is not None
    pending = session.execute(
        select(Underpayment, func.coalesce(Deposit.payment_date, func.date(Deposit.created_at)), ClaimLine.charge)
        .join(Deposit, Deposit.id == Underpayment.deposit_id)
        .join(ClaimLine, ClaimLine.id == Underpayment.claim_line_id)
        .where(
            Underpayment.status == "open",
            ~exists().where(DenialItem.underpayment_id == Underpayment.id),
        )
    ).all()
    for up, denial_date, charge in pending:
        new_id = session.scalar(
            insert(DenialItem)
            .values(
                source_key=f"underpayment:{up.id}",
                kind="underpayment",
                claim_id=up.claim_id,
                claim_line_id=up.claim_line_id,
                payer_id=up.payer_id,
                deposit_id=up.deposit_id,
                remittance_claim_id=up.remittance_claim_id,
                underpayment_id=up.id,
                reason_codes=_line_codes(session, up.claim_line_id, up.deposit_id),
                charge=charge,
                amount=up.shortfall,
                expected_allowed=up.expected_allowed,
                denial_date=denial_date,
            )
            .on_conflict_do_nothing(index_elements=["source_key"])
            .returning(DenialItem.id)
        )
        added += new_id is not None
    settled = _supersede(session) + _settle_repaid(session) + _settle_resolved_underpayments(session)
    session.flush()
    return {"added": added, "settled": settled}


def _supersede(session: Session) -> int:
    """A later remittance denied the line again: its new item carries the work on; the open older one closes.
    (An item under appeal stays until its outcome is recorded.)"""
    newer = aliased(DenialItem)
    result = session.execute(
        update(DenialItem)
        .where(
            DenialItem.kind == "denial",
            DenialItem.status == "open",
            exists().where(
                newer.claim_line_id == DenialItem.claim_line_id,
                newer.kind == "denial",
                newer.remittance_claim_id > DenialItem.remittance_claim_id,
            ),
        )
        .values(status="closed", action="superseded", closed_at=func.now(),
                action_detail={"settled_by": "a later remittance denied the line again"})
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return result.rowcount or 0


def _settle_repaid(session: Session) -> int:
    """Close denial items whose claim a later remittance paid and that did not deny their line again."""
    newer = aliased(RemittanceClaim)
    again = aliased(DenialItem)
    result = session.execute(
        update(DenialItem)
        .where(
            DenialItem.kind == "denial",
            DenialItem.status.in_(("open", "appealed")),
            exists().where(
                newer.claim_id == DenialItem.claim_id,
                newer.outcome == "posted",
                newer.id > DenialItem.remittance_claim_id,
            ),
            ~exists().where(
                again.claim_line_id == DenialItem.claim_line_id,
                again.kind == "denial",
                again.remittance_claim_id > DenialItem.remittance_claim_id,
            ),
            exists().where(Claim.id == DenialItem.claim_id, Claim.status.in_(("paid", "partially_paid"))),
        )
        .values(status="closed", action="paid", closed_at=func.now(), action_detail={"settled_by": "remittance"})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _settle_resolved_underpayments(session: Session) -> int:
    """Close underpayment items whose line a biller resolved in the underpayment queue itself."""
    result = session.execute(
        update(DenialItem)
        .where(
            DenialItem.kind == "underpayment",
            DenialItem.status == "open",
            exists().where(Underpayment.id == DenialItem.underpayment_id, Underpayment.status == "resolved"),
        )
        .values(status="closed", action="resolved", closed_at=func.now(),
                action_detail={"settled_by": "underpayment queue"})
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return result.rowcount or 0


# --- reading the queue ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    status: str | None = "open"  # None: every status
    kind: str | None = None
    reason: str | None = None  # "CO-50"
    payer_id: int | None = None
    assigned_user_id: int | None = None
    claim_id: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    sort: str = "-age"


def _age():
    return (func.current_date() - DenialItem.denial_date).label("age_days")


def _where(filters: QueueFilters, *, reason: bool = True, payer: bool = True) -> list:
    age = func.current_date() - DenialItem.denial_date
    where = []
    if filters.status:
        where.append(DenialItem.status == filters.status)
    if filters.kind:
        where.append(DenialItem.kind == filters.kind)
    if reason and filters.reason:
        where.append(DenialItem.reason_codes.contains(array([filters.reason.strip().upper()], type_=String)))
    if payer and filters.payer_id:
        where.append(DenialItem.payer_id == filters.payer_id)
    if filters.assigned_user_id:
        where.append(DenialItem.assigned_user_id == filters.assigned_user_id)
    if filters.claim_id:
        where.append(DenialItem.claim_id == filters.claim_id)
    if filters.min_age is not None:
        where.append(age >= filters.min_age)
    if filters.max_age is not None:
        where.append(age <= filters.max_age)
    if filters.min_amount is not None:
        where.append(DenialItem.amount >= filters.min_amount)
    if filters.max_amount is not None:
        where.append(DenialItem.amount <= filters.max_amount)
    return where


def reason_out(code: str) -> dict:
    group, _, reason = code.partition("-")
    return {"code": code, "group_code": group, "reason_code": reason, "description": describe_adjustment(group, reason)}


def list_items(session: Session, filters: QueueFilters, *, page: int = 1, per_page: int = 50) -> dict:
    """A page of the queue and its groups (by reason, by payer, with counts and amounts): four statements."""
    where = _where(filters)
    total = session.scalar(select(func.count()).select_from(DenialItem).where(*where)) or 0
    order = {
        "-age": (DenialItem.denial_date.asc(), DenialItem.id.asc()),
        "age": (DenialItem.denial_date.desc(), DenialItem.id.desc()),
        "-amount": (DenialItem.amount.desc(), DenialItem.id.asc()),
        "amount": (DenialItem.amount.asc(), DenialItem.id.asc()),
    }[filters.sort if filters.sort in SORTS else "-age"]
    rows = session.execute(
        select(
            DenialItem,
            _age(),
            Claim.payer_claim_number,
            Claim.status.label("claim_status"),
            ClaimLine.line_number,
            ServiceLine.procedure_code,
            ServiceLine.modifiers,
            ServiceLine.date_of_service,
            Patient.id.label("patient_id"),
            Patient.first_name,
            Patient.last_name,
            Patient.account_number,
            Payer.name.label("payer_name"),
        )
        .join(Claim, Claim.id == DenialItem.claim_id)
        .join(ClaimLine, ClaimLine.id == DenialItem.claim_line_id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .join(Patient, Patient.id == Claim.patient_id)
        .outerjoin(Payer, Payer.id == DenialItem.payer_id)
        .where(*where)
        .order_by(*order)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    ).all()
    code = func.unnest(DenialItem.reason_codes).table_valued("code").render_derived()
    reasons = session.execute(
        select(code.c.code, func.count(), func.coalesce(func.sum(DenialItem.amount), 0))
        .select_from(DenialItem)
        .join(code, true())
        .where(*_where(filters, reason=False))
        .group_by(code.c.code)
        .order_by(func.count().desc(), code.c.code)
    ).all()
    payers = session.execute(
        select(DenialItem.payer_id, Payer.name, func.count(), func.coalesce(func.sum(DenialItem.amount), 0))
        .outerjoin(Payer, Payer.id == DenialItem.payer_id)
        .where(*_where(filters, payer=False))
        .group_by(DenialItem.payer_id, Payer.name)
        .order_by(func.count().desc(), Payer.name)
    ).all()
    return {
        "items": [_row_out(r) for r in rows],
        "total": total,
        "reasons": [{**reason_out(c), "count": n, "amount": money(a)} for c, n, a in reasons],
        "payers": [{"payer_id": p, "name": name, "count": n, "amount": money(a)} for p, name, n, a in payers],
    }


def _row_out(r) -> dict:
    item: DenialItem = r.DenialItem
    return {
        "id": item.id,
        "kind": item.kind,
        "status": item.status,
        "action": item.action,
        "claim_id": item.claim_id,
        "claim_status": r.claim_status,
        "claim_line_id": item.claim_line_id,
        "line_number": r.line_number,
        "payer_claim_number": r.payer_claim_number,
        "payer_id": item.payer_id,
        "payer_name": r.payer_name,
        "patient": {
            "id": r.patient_id,
            "first_name": r.first_name,
            "last_name": r.last_name,
            "account_number": r.account_number,
        },
        "procedure_code": r.procedure_code,
        "modifiers": list(r.modifiers or []),
        "date_of_service": r.date_of_service,
        "charge": item.charge,
        "amount": item.amount,
        "expected_allowed": item.expected_allowed,
        "denial_date": item.denial_date,
        "age_days": r.age_days,
        "reasons": [reason_out(c) for c in item.reason_codes or []],
        "assigned_user_id": item.assigned_user_id,
        "appeal_id": item.appeal_id,
    }


def get_item(session: Session, item_id: int, *, for_update: bool = False) -> DenialItem:
    stmt = select(DenialItem).where(DenialItem.id == item_id)
    if for_update:
        stmt = stmt.with_for_update()
    item = session.scalar(stmt)
    if item is None:
        raise NotFound(f"denial work item {item_id} not found")
    return item


def item_detail(session: Session, item_id: int) -> dict:
    """One item as the queue shows it, with its notes, the claim's other items and the claim's appeals."""
    get_item(session, item_id)
    row = session.execute(
        select(
            DenialItem,
            _age(),
            Claim.payer_claim_number,
            Claim.status.label("claim_status"),
            ClaimLine.line_number,
            ServiceLine.procedure_code,
            ServiceLine.modifiers,
            ServiceLine.date_of_service,
            Patient.id.label("patient_id"),
            Patient.first_name,
            Patient.last_name,
            Patient.account_number,
            Payer.name.label("payer_name"),
        )
        .join(Claim, Claim.id == DenialItem.claim_id)
        .join(ClaimLine, ClaimLine.id == DenialItem.claim_line_id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .join(Patient, Patient.id == Claim.patient_id)
        .outerjoin(Payer, Payer.id == DenialItem.payer_id)
        .where(DenialItem.id == item_id)
    ).one()
    out = _row_out(row)
    item: DenialItem = row.DenialItem
    out["action_detail"] = item.action_detail or {}
    out["closed_at"] = item.closed_at
    out["created_at"] = item.created_at
    out["notes"] = [
        {"id": n.id, "user_id": n.user_id, "body": n.body, "created_at": n.created_at}
        for n in session.scalars(select(DenialNote).where(DenialNote.item_id == item_id).order_by(DenialNote.id))
    ]
    out["appeals"] = list(
        session.scalars(select(Appeal).where(Appeal.claim_id == item.claim_id).order_by(Appeal.id.desc()))
    )
    balance = ledger.line_balance(session, item.claim_line_id)
    out["balance"] = {"insurance": balance.insurance, "patient": balance.patient}
    return out


def user_names(session: Session, user_ids) -> dict[int, str]:
    ids = sorted({u for u in user_ids if u})
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())


def billers(session: Session, access: PracticeAccess) -> list[tuple[int, str]]:
    """Users with a role in the practice's billing company: whom items can be assigned to."""
    return list(
        session.execute(
            select(User.id, User.full_name)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.company_id == access.company_id,
                Membership.role.in_(("biller", "company_admin")),
                User.is_active.is_(True),
            )
            .distinct()
            .order_by(User.full_name, User.id)
        ).all()
    )


# --- working items ----------------------------------------------------------------------------------------------------


def _audit(session: Session, access: PracticeAccess, item: DenialItem, action: str, detail: dict | None = None):
    audit.record_access(session, access, "denial_item", item.id, action, {"claim_id": item.claim_id, **(detail or {})})


def _open(item: DenialItem) -> None:
    if item.status == "closed":
        raise Conflict(f"denial work item {item.id} is closed ({item.action})")


def assign(session: Session, access: PracticeAccess, item_id: int, user_id: int | None) -> DenialItem:
    """Assign to a biller of the practice's company (None unassigns)."""
    item = get_item(session, item_id, for_update=True)
    _open(item)
    if user_id is not None and user_id not in {uid for uid, _ in billers(session, access)}:
        raise Invalid(
            f"user {user_id} has no role in this practice's billing company",
            errors={"user_id": ["choose a biller or admin of the practice's billing company"]},
        )
    item.assigned_user_id = user_id
    _audit(session, access, item, "assign", {"assigned_user_id": user_id})
    return item


def add_note(session: Session, access: PracticeAccess, item_id: int, body: str) -> DenialNote:
    body = (body or "").strip()
    if not body:
        raise Invalid("a note needs text", errors={"body": ["required"]})
    if len(body) > 5000:
        raise Invalid("note too long", errors={"body": ["at most 5000 characters"]})
    item = get_item(session, item_id)
    note = DenialNote(item_id=item.id, user_id=access.user_id, body=body)
    session.add(note)
    session.flush()
    _audit(session, access, item, "note", {"note_id": note.id})
    return note


def release_denial(session: Session, item: DenialItem, *, user_id: int | None, why: str) -> list[int]:
    """Reverse the payer's denial adjustments of the item's line (those of its remittance, with its codes, not yet
    reversed): insurance owes the amount again. Ids of the reversal entries."""
    if item.kind != "denial":
        return []
    reversal = aliased(LedgerEntry)
    entries = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.claim_line_id == item.claim_line_id,
            LedgerEntry.source_type == ledger.REMITTANCE_SOURCE,
            LedgerEntry.source_id == f"deposit:{item.deposit_id}",
            LedgerEntry.kind.in_(("contractual_adjustment", "other_adjustment")),
            LedgerEntry.group_code.in_(DENIAL_GROUPS),
            (LedgerEntry.group_code + literal("-") + LedgerEntry.reason_code).in_(list(item.reason_codes or [])),
            ~exists().where(reversal.reverses_entry_id == LedgerEntry.id),
        )
        .order_by(LedgerEntry.id)
    ).all()
    return [
        ledger.reverse(
            session,
            e.id,
            source_type=USER_SOURCE,
            user_id=user_id,
            note=f"denial work item {item.id}: {why}",
            posting_key=f"denial:{item.id}:release:{e.id}",
        )  # fmt: skip
        for e in entries
    ]


def _close(item: DenialItem, access: PracticeAccess, action: str, detail: dict) -> None:
    item.status = "closed"
    item.action = action
    item.action_detail = detail
    item.closed_at = datetime.now(UTC)
    item.closed_by_user_id = access.user_id


def _resolve_underpayment(session: Session, item: DenialItem, access: PracticeAccess, note: str) -> None:
    if item.underpayment_id is None:
        return
    row = session.get(Underpayment, item.underpayment_id)
    if row is not None and row.status == "open":
        underpayments.resolve(session, row.id, user_id=access.user_id, note=note)


def close(
    session: Session,
    access: PracticeAccess,
    item_id: int,
    action: str,
    *,
    reason: str = "",
    reason_code: str | None = None,
    confirm: bool = False,
) -> DenialItem:
    """Close an item with one of CLOSING_ACTIONS. Voids and write-offs need `confirm`; write-offs need the
    `ledger:write_off` permission and a CARC reason code. Nothing is half-done: every check runs before any write."""
    if action not in CLOSING_ACTIONS:
        raise Invalid(
            f"unknown action {action!r}",
            errors={"action": [f"one of {', '.join(CLOSING_ACTIONS)} (appeals: create an appeal)"]},
        )
    if action == "write_off" and not access.can(WRITE_OFF_PERMISSION):
        raise Forbidden("writing off needs the ledger:write_off permission (a company admin)")
    item = get_item(session, item_id, for_update=True)
    _open(item)
    if action in IRREVERSIBLE and not confirm:
        raise Invalid(
            f"{action.replace('_', ' ')} cannot be undone: confirm it",
            errors={"confirm": ["set to true to confirm"]},
        )
    reason = (reason or "").strip()[:2000]
    if action == "write_off":
        return _write_off(session, access, item, reason_code, reason)
    if action == "bill_patient":
        return _bill_patient(session, access, item, reason)
    return _correct(session, access, item, action, reason)


def _correct(session: Session, access: PracticeAccess, item: DenialItem, action: str, reason: str) -> DenialItem:
    frequency = "7" if action == "resubmit" else "8"
    correction = create_correction(
        session, access, item.claim_id, frequency, reason or f"denial work item {item.id}: {CLOSING_ACTIONS[action]}"
    )
    detail = {"correction_claim_id": correction.id, "frequency_code": frequency, "reason": reason}
    # A replacement or void speaks for the whole claim: every open item of the claim is closed by it.
    siblings = session.scalars(
        select(DenialItem)
        .where(DenialItem.claim_id == item.claim_id, DenialItem.status != "closed")
        .with_for_update()
        .order_by(DenialItem.id)
    ).all()
    for sibling in siblings:
        _close(sibling, access, CLOSING_ACTIONS[action], detail)
        _resolve_underpayment(session, sibling, access, f"{CLOSING_ACTIONS[action]}: claim {correction.id}")
        _audit(session, access, sibling, "close", {"action": CLOSING_ACTIONS[action], **detail})
    return item


def _write_off(
    session: Session, access: PracticeAccess, item: DenialItem, reason_code: str | None, reason: str
) -> DenialItem:
    code = (reason_code or "").strip().upper()
    info = carc(code) if code else None
    if info is None:
        raise Invalid(
            "a write-off needs a CARC reason code",
            errors={"reason_code": [f"{code or '(blank)'} is not a CARC code" if code else "required"]},
        )
    line = session.get(ClaimLine, item.claim_line_id)
    released = release_denial(session, item, user_id=access.user_id, why="written off")
    owed = ledger.line_balance(session, line.id).insurance
    entry_id = None
    if owed > ZERO:
        entry_id = ledger.post(
            session, line, "write_off", owed, source_type=USER_SOURCE, bucket="insurance", group_code="CO",
            reason_code=code, source_id=f"denial_item:{item.id}", posting_key=f"denial:{item.id}:write_off",
            user_id=access.user_id, note=reason or describe_adjustment("", code),
        )  # fmt: skip
    elif item.kind == "denial":
        raise Conflict(f"insurance owes nothing on claim line {line.id}: there is nothing to write off")
    detail = {"reason_code": code, "amount": str(owed), "ledger_entry_id": entry_id, "reversals": released,
              "reason": reason}  # fmt: skip
    _close(item, access, "written_off", detail)
    _resolve_underpayment(session, item, access, f"written off ({code})")
    _audit(session, access, item, "close", {"action": "written_off", **detail})
    return item


def _bill_patient(session: Session, access: PracticeAccess, item: DenialItem, reason: str) -> DenialItem:
    if item.kind != "denial":
        raise Conflict("an underpayment is the payer's to make good under the contract, not the patient's")
    line = session.get(ClaimLine, item.claim_line_id)
    released = release_denial(session, item, user_id=access.user_id, why="billed to the patient")
    owed = ledger.line_balance(session, line.id).insurance
    if owed <= ZERO:
        raise Conflict(f"insurance owes nothing on claim line {line.id}: there is nothing to move to the patient")
    entry_id = ledger.post(
        session, line, "patient_responsibility", owed, source_type=USER_SOURCE, source_id=f"denial_item:{item.id}",
        posting_key=f"denial:{item.id}:bill_patient", user_id=access.user_id,
        note=reason or "denied by the payer; billed to the patient",
    )  # fmt: skip
    detail = {"amount": str(owed), "ledger_entry_id": entry_id, "reversals": released, "reason": reason}
    _close(item, access, "billed_patient", detail)
    _audit(session, access, item, "close", {"action": "billed_patient", **detail})
    return item


def denial_date_of(items: list[DenialItem]) -> date:
    return min(i.denial_date for i in items)
