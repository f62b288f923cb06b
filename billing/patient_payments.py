"""Patient payments, refunds and credits.

A payment is applied to the patient part of the patient's claim lines, oldest date of service first (or to the lines
the caller chose), each application posted to the ledger as a `patient_payment` entry. What is left over is kept as
the patient's credit (`PatientCredit`, append-only). Credits are applied automatically, oldest credit first and oldest
line first, at two moments: whenever a payment of the same patient is posted (before the new money), and at the start
of every statement run for every patient holding a credit (so a balance that appeared since, e.g. PR moved to the
patient by a later 835, is paid from the credit before anyone is billed). `apply_credits` can also be called directly.

A refund gives money back: first from the patient's unapplied credit (no ledger entry: that money never reached a
line), then from lines whose patient part is negative (overpaid, e.g. insurance paid after the patient did), posted
as `refund` entries with bucket patient. Every change of one patient's money runs under a lock on the patient row,
so concurrent postings for the same patient are serialised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing import ledger, rules
from billing.models import (
    Claim,
    ClaimLine,
    LedgerEntry,
    Patient,
    PatientCredit,
    PatientPayment,
    PatientPaymentApplication,
    ServiceLine,
)
from billing.money import ZERO, money
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit

if TYPE_CHECKING:
    from tenants.authz import PracticeAccess

METHODS = ("cash", "check", "card", "eft", "agency", "other")
SOURCE_TYPES = ("user", "agency", "job", "portal")


@dataclass(frozen=True)
class PatientLine:
    """One service of the patient (the ledger's account) with its parts. `claim_line_id` is the first claim line
    that billed it: patient payments are posted through it (to the same account whichever claim line is used)."""

    service_line_id: int
    claim_line_id: int
    claim_id: int
    encounter_id: int
    date_of_service: date
    procedure_code: str
    charge: Decimal
    charges: Decimal  # charge entries posted
    insurance_paid: Decimal
    adjusted: Decimal
    patient_paid: Decimal
    insurance_part: Decimal
    patient_part: Decimal
    # True while insurance still owes anything on the visit (any service of the encounter): not billed to the
    # patient yet.
    pending_with_insurance: bool


def patient_lines(session: Session, patient_id: int) -> list[PatientLine]:
    """Every service of the patient that has ledger entries, oldest date of service first, with its parts."""
    original = LedgerEntry.__table__.alias("original")
    e = LedgerEntry.__table__
    kind = func.coalesce(original.c.kind, e.c.kind)

    def sum_of(condition):
        return func.coalesce(func.sum(e.c.amount).filter(condition), 0)

    rows = session.execute(
        select(
            ServiceLine.id,
            func.min(e.c.claim_line_id),
            ServiceLine.encounter_id,
            ServiceLine.date_of_service,
            ServiceLine.procedure_code,
            ServiceLine.charge,
            sum_of(kind == "charge"),
            sum_of(kind == "insurance_payment") - sum_of(kind.in_(rules.REFUND_KINDS) & (e.c.insurance_delta != 0)),
            sum_of(kind.in_(ledger.ADJUSTMENT_KINDS)),
            sum_of(kind == "patient_payment") - sum_of(kind.in_(rules.REFUND_KINDS) & (e.c.patient_delta != 0)),
            func.coalesce(func.sum(e.c.insurance_delta), 0),
            func.coalesce(func.sum(e.c.patient_delta), 0),
        )
        .select_from(e)
        .outerjoin(original, original.c.id == e.c.reverses_entry_id)
        .join(ServiceLine, ServiceLine.id == e.c.service_line_id)
        .where(e.c.patient_id == patient_id)
        .group_by(
            ServiceLine.id,
            ServiceLine.encounter_id,
            ServiceLine.date_of_service,
            ServiceLine.procedure_code,
            ServiceLine.charge,
        )
        .order_by(ServiceLine.date_of_service, ServiceLine.encounter_id, ServiceLine.id)
    ).all()
    claims: dict[int, int] = {}
    if rows:
        claims = dict(
            session.execute(
                select(ClaimLine.id, ClaimLine.claim_id).where(ClaimLine.id.in_({r[1] for r in rows}))
            ).all()
        )
    # The visit rule of billing.rules: pending while any of its services has an insurance part above zero.
    parts_by_visit: dict[int, list[Decimal]] = {}
    for r in rows:
        parts_by_visit.setdefault(r[2], []).append(money(r[10]))
    pending = {visit for visit, parts in parts_by_visit.items() if rules.visit_pending(parts)}
    return [
        PatientLine(
            service_line_id=r[0],
            claim_line_id=r[1],
            claim_id=claims.get(r[1], 0),
            encounter_id=r[2],
            date_of_service=r[3],
            procedure_code=r[4],
            charge=money(r[5]),
            charges=money(r[6]),
            insurance_paid=money(r[7]),
            adjusted=money(r[8]),
            patient_paid=money(r[9]),
            insurance_part=money(r[10]),
            patient_part=money(r[11]),
            pending_with_insurance=r[2] in pending,
        )
        for r in rows
    ]


def credit_balance(session: Session, patient_id: int) -> Decimal:
    """The patient's unapplied credit."""
    return money(
        session.scalar(
            select(func.coalesce(func.sum(PatientCredit.amount), 0)).where(PatientCredit.patient_id == patient_id)
        )
    )


def _credits_by_payment(session: Session, patient_id: int) -> list[tuple[int, Decimal]]:
    rows = session.execute(
        select(PatientCredit.payment_id, func.sum(PatientCredit.amount))
        .where(PatientCredit.patient_id == patient_id)
        .group_by(PatientCredit.payment_id)
        .having(func.sum(PatientCredit.amount) > 0)
        .order_by(PatientCredit.payment_id)
    ).all()
    return [(pid, money(amount)) for pid, amount in rows]


def _lock_patient(session: Session, patient_id: int) -> Patient:
    patient = session.scalar(select(Patient).where(Patient.id == patient_id).with_for_update())
    if patient is None:
        raise NotFound(f"patient {patient_id} not found")
    return patient


def _apply(
    session: Session,
    payment: PatientPayment,
    amount: Decimal,
    lines: list[PatientLine],
    *,
    user_id: int | None,
) -> Decimal:
    """Post `amount` of `payment` to the lines' positive patient parts in the order given; returns what is left."""
    left = money(amount)
    seq = session.scalar(
        select(func.count())
        .select_from(PatientPaymentApplication)
        .where(PatientPaymentApplication.payment_id == payment.id)
    )
    for line in lines:
        if left <= ZERO:
            break
        owed = line.patient_part
        if owed <= ZERO:
            continue
        part = min(owed, left)
        seq += 1
        claim_line = session.get(ClaimLine, line.claim_line_id)
        entry_id = ledger.post(
            session,
            claim_line,
            "patient_payment",
            part,
            source_type=payment.source_type,
            source_id=payment.source_id or f"patient_payment:{payment.id}",
            posting_key=f"patient_payment:{payment.id}:{seq}",
            user_id=user_id,
            note=f"{payment.method} {payment.reference}".strip(),
            patient_id=payment.patient_id,
            posted_on=payment.received_on,
        )
        if entry_id is None:  # only if someone posted under our key outside the patient lock
            raise Conflict(f"patient payment {payment.id} application {seq} was already posted")
        session.add(
            PatientPaymentApplication(payment_id=payment.id, claim_line_id=line.claim_line_id, ledger_entry_id=entry_id,
                                      amount=part)
        )  # fmt: skip
        left -= part
    return money(left)


def _owed_lines(session: Session, patient_id: int) -> list[PatientLine]:
    return [line for line in patient_lines(session, patient_id) if line.patient_part > ZERO]


def apply_credits(session: Session, patient_id: int, *, user_id: int | None = None, lock: bool = True) -> Decimal:
    """Apply the patient's credit to what the patient owes, oldest credit to oldest line; returns the amount applied."""
    if lock:
        _lock_patient(session, patient_id)
    credits = _credits_by_payment(session, patient_id)
    if not credits:
        return ZERO
    applied_total = ZERO
    lines = _owed_lines(session, patient_id)
    for payment_id, available in credits:
        if not lines:
            break
        payment = session.get(PatientPayment, payment_id)
        left = _apply(session, payment, available, lines, user_id=user_id)
        used = money(available - left)
        if used > ZERO:
            session.add(PatientCredit(patient_id=patient_id, payment_id=payment_id, amount=-used, reason="applied"))
            applied_total += used
            session.flush()
            lines = _owed_lines(session, patient_id)
    return money(applied_total)


def patients_with_credit(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(PatientCredit.patient_id)
            .group_by(PatientCredit.patient_id)
            .having(func.sum(PatientCredit.amount) > 0)
            .order_by(PatientCredit.patient_id)
        )
    )


def _check_common(amount: Decimal, method: str, source_type: str) -> Decimal:
    errors: dict[str, list[str]] = {}
    try:
        amount = money(amount)
    except (TypeError, ValueError):
        errors["amount"] = ["not an amount"]
    else:
        if amount <= ZERO:
            errors["amount"] = ["must be more than 0"]
    if method not in METHODS:
        errors["method"] = [f"one of {', '.join(METHODS)}"]
    if source_type not in SOURCE_TYPES:
        errors["source_type"] = [f"one of {', '.join(SOURCE_TYPES)}"]
    if errors:
        raise Invalid("the payment is not valid", errors=errors)
    return amount


def posted_under_key(session: Session, posting_key: str) -> PatientPayment | None:
    """The payment or refund already posted under `posting_key` (a retried job, a form submitted twice), if any."""
    return session.scalar(select(PatientPayment).where(PatientPayment.posting_key == posting_key))


def _refuse_duplicate_check(
    session: Session, patient_id: int, amount: Decimal, reference: str, received_on: date
) -> None:
    """The same check number for the same amount from the same patient on the same day is almost always one check
    entered twice (two billers, a batch entered again): refused unless the caller confirms it is a second check."""
    same = session.scalar(
        select(PatientPayment.id).where(
            PatientPayment.patient_id == patient_id,
            PatientPayment.kind == "payment",
            PatientPayment.method == "check",
            PatientPayment.reference == reference[:100],
            PatientPayment.amount == amount,
            PatientPayment.received_on == received_on,
        )
    )
    if same is not None:
        raise Conflict(
            f"check {reference} for {amount} received on {received_on.isoformat()} is already posted for this "
            f"patient (payment {same}); confirm that this is a second check to post it",
            errors={"reference": [f"check {reference} for {amount} on {received_on.isoformat()} is already posted "
                                  f"(payment {same})"]},  # fmt: skip
            code="duplicate_check",
        )


def post_patient_payment(
    session: Session,
    patient_id: int,
    amount: Decimal,
    *,
    method: str,
    reference: str,
    received_on: date,
    user_id: int | None,
    source_type: str = "user",
    source_id: str = "",
    posting_key: str | None = None,
    claim_line_ids: list[int] | None = None,
    note: str = "",
    access: PracticeAccess | None = None,
    confirm_duplicate: bool = False,
) -> PatientPayment:
    """Post a patient payment: the patient's existing credit is applied first, then this payment, oldest date of
    service first over the patient parts (or over the chosen lines only); the excess becomes credit. With a
    `posting_key`, posting again returns the first payment and adds nothing. Counts toward an active payment plan.
    A check whose number and amount were already posted for the patient that day is refused (Conflict, code
    `duplicate_check`) unless `confirm_duplicate`."""
    amount = _check_common(amount, method, source_type)
    _lock_patient(session, patient_id)
    if posting_key is not None:
        existing = session.scalar(select(PatientPayment).where(PatientPayment.posting_key == posting_key))
        if existing is not None:
            if existing.patient_id != patient_id or existing.amount != amount or existing.kind != "payment":
                raise Conflict(f"posting key {posting_key!r} was used for a different payment")
            return existing
    if method == "check" and reference.strip() and not confirm_duplicate:
        _refuse_duplicate_check(session, patient_id, amount, reference.strip(), received_on)
    chosen: list[PatientLine] | None = None
    if claim_line_ids:
        # Any claim line billing a service names its account (a secondary claim's line as well as the primary's).
        services = dict(
            session.execute(
                select(ClaimLine.id, ClaimLine.service_line_id)
                .join(Claim, Claim.id == ClaimLine.claim_id)
                .where(ClaimLine.id.in_(claim_line_ids), Claim.patient_id == patient_id)
            ).all()
        )
        by_service = {line.service_line_id: line for line in patient_lines(session, patient_id)}
        unknown = [i for i in claim_line_ids if services.get(i) not in by_service]
        if unknown:
            raise Invalid(
                "the chosen lines are not this patient's",
                errors={"claim_line_ids": [f"line {i} is not a billed line of patient {patient_id}" for i in unknown]},
            )
        chosen = sorted(
            {services[i]: by_service[services[i]] for i in claim_line_ids}.values(),
            key=lambda x: (x.date_of_service, x.service_line_id),
        )
    # Older money first: a credit already held pays what is owed before this payment does.
    apply_credits(session, patient_id, user_id=user_id, lock=False)
    payment_id = session.execute(
        insert(PatientPayment)
        .values(
            patient_id=patient_id,
            kind="payment",
            method=method,
            reference=reference[:100],
            amount=amount,
            received_on=received_on,
            source_type=source_type,
            source_id=source_id[:100],
            posting_key=posting_key,
            note=note,
            user_id=user_id,
        )
        .on_conflict_do_nothing(index_elements=["posting_key"])
        .returning(PatientPayment.id)
    ).scalar()
    if payment_id is None:  # a concurrent posting under the same key won
        return session.scalar(select(PatientPayment).where(PatientPayment.posting_key == posting_key))
    payment = session.get(PatientPayment, payment_id)
    lines = chosen if chosen is not None else _owed_lines(session, patient_id)
    left = _apply(session, payment, amount, lines, user_id=user_id)
    if left > ZERO:
        session.add(PatientCredit(patient_id=patient_id, payment_id=payment.id, amount=left, reason="overpayment"))
    session.flush()
    from billing import payment_plans  # the plan module builds on this one

    payment_plans.record_payment(session, patient_id, amount, received_on)
    if access is not None:
        audit.record_access(
            session, access, "patient_payment", payment.id, "post",
            {"patient_id": patient_id, "amount": str(amount), "method": method, "credit": str(left)},
        )  # fmt: skip
    session.refresh(payment)
    return payment


def refund(
    session: Session,
    patient_id: int,
    amount: Decimal,
    *,
    method: str,
    reference: str,
    refunded_on: date,
    user_id: int | None,
    source_type: str = "user",
    posting_key: str | None = None,
    note: str = "",
    access: PracticeAccess | None = None,
) -> PatientPayment:
    """Give money back to the patient: from the unapplied credit first, then from overpaid lines (negative patient
    part). Refuses to refund more than is refundable: nothing is half-written."""
    amount = _check_common(amount, method, source_type)
    _lock_patient(session, patient_id)
    if posting_key is not None:
        existing = session.scalar(select(PatientPayment).where(PatientPayment.posting_key == posting_key))
        if existing is not None:
            if existing.patient_id != patient_id or existing.amount != amount or existing.kind != "refund":
                raise Conflict(f"posting key {posting_key!r} was used for a different refund")
            return existing
    credits = _credits_by_payment(session, patient_id)
    overpaid = [line for line in patient_lines(session, patient_id) if line.patient_part < ZERO]
    refundable = money(sum((c for _, c in credits), ZERO) + sum((-line.patient_part for line in overpaid), ZERO))
    if amount > refundable:
        raise Invalid(
            f"only {refundable} is refundable to this patient",
            errors={"amount": [f"at most {refundable} (credit and overpaid lines)"]},
        )
    payment = PatientPayment(
        patient_id=patient_id,
        kind="refund",
        method=method,
        reference=reference[:100],
        amount=amount,
        received_on=refunded_on,
        source_type=source_type,
        posting_key=posting_key,
        note=note,
        user_id=user_id,
        refund_of_payment_id=credits[0][0] if credits else None,
    )
    session.add(payment)
    session.flush()
    left = amount
    for payment_id, available in credits:
        if left <= ZERO:
            break
        part = min(available, left)
        session.add(PatientCredit(patient_id=patient_id, payment_id=payment_id, amount=-part, reason="refunded"))
        left -= part
    seq = 0
    for line in overpaid:
        if left <= ZERO:
            break
        part = min(-line.patient_part, left)
        seq += 1
        entry_id = ledger.post(
            session,
            session.get(ClaimLine, line.claim_line_id),
            "refund",
            part,
            bucket="patient",
            source_type=source_type,
            source_id=f"patient_refund:{payment.id}",
            posting_key=f"patient_refund:{payment.id}:{seq}",
            user_id=user_id,
            note=f"{method} {reference}".strip(),
            patient_id=patient_id,
        )
        session.add(
            PatientPaymentApplication(payment_id=payment.id, claim_line_id=line.claim_line_id, ledger_entry_id=entry_id,
                                      amount=part)
        )  # fmt: skip
        left -= part
    session.flush()
    if access is not None:
        audit.record_access(
            session, access, "patient_payment", payment.id, "refund",
            {"patient_id": patient_id, "amount": str(amount), "method": method},
        )  # fmt: skip
    session.refresh(payment)
    return payment


def list_payments(session: Session, patient_id: int) -> list[PatientPayment]:
    return list(
        session.scalars(
            select(PatientPayment)
            .where(PatientPayment.patient_id == patient_id)
            .order_by(PatientPayment.received_on.desc(), PatientPayment.id.desc())
        )
    )


def get_payment(session: Session, payment_id: int) -> PatientPayment:
    payment = session.get(PatientPayment, payment_id)
    if payment is None:
        raise NotFound(f"patient payment {payment_id} not found")
    return payment


@dataclass(frozen=True)
class Account:
    """A patient's account: what the patient owes (billable now and still pending with insurance), credit, lines."""

    patient_id: int
    patient_due: Decimal  # patient part of visits insurance is done with: what a statement bills
    patient_pending: Decimal  # patient part of visits insurance still owes on
    insurance_balance: Decimal
    credit: Decimal
    lines: list[PatientLine]


def account(session: Session, patient_id: int) -> Account:
    if session.get(Patient, patient_id) is None:
        raise NotFound(f"patient {patient_id} not found")
    lines = patient_lines(session, patient_id)
    return Account(
        patient_id=patient_id,
        patient_due=money(sum((ln.patient_part for ln in lines if not ln.pending_with_insurance), ZERO)),
        patient_pending=money(sum((ln.patient_part for ln in lines if ln.pending_with_insurance), ZERO)),
        insurance_balance=money(sum((ln.insurance_part for ln in lines), ZERO)),
        credit=credit_balance(session, patient_id),
        lines=lines,
    )
