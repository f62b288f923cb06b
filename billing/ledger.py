"""The ledger: append-only financial events on claim lines, and the balances derived from them. Every entry says
how it moves what insurance owes and what the patient owes; nothing is ever edited — a correction reverses the
entry (once) and posts anew. Postings carry a key, so posting the same thing twice adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from billing.models import Claim, ClaimLine, LedgerEntry
from billing.money import ZERO, money
from medbill.errors import Conflict, Invalid, NotFound

# kind -> (insurance sign, patient sign) applied to the entry's amount.
EFFECTS: dict[str, tuple[int, int]] = {
    "charge": (1, 0),
    "insurance_payment": (-1, 0),
    "contractual_adjustment": (-1, 0),
    "other_adjustment": (-1, 0),
    "patient_responsibility": (-1, 1),  # PR deductible/coinsurance/copay: the patient owes it now
    "transfer_to_secondary": (0, 0),  # still owed by insurance, by the next payer: recorded for the trail
    "patient_payment": (0, -1),
}
BUCKETED = {"write_off": -1, "refund": 1}  # apply to the insurance or the patient part
PAYMENT_KINDS = ("insurance_payment", "patient_payment")
# source_type of entries posted from a payer's remittance (835).
REMITTANCE_SOURCE = "remittance"
ADJUSTMENT_KINDS = ("contractual_adjustment", "other_adjustment", "write_off")


@dataclass(frozen=True)
class Balance:
    charges: Decimal
    payments: Decimal
    adjustments: Decimal
    insurance: Decimal
    patient: Decimal

    @property
    def total(self) -> Decimal:
        return self.insurance + self.patient


def _deltas(kind: str, amount: Decimal, bucket: str | None) -> tuple[Decimal, Decimal]:
    if kind in EFFECTS:
        if bucket is not None:
            raise Invalid(f"{kind} does not take a bucket", errors={"bucket": ["only for write_off and refund"]})
        ins, pat = EFFECTS[kind]
    elif kind in BUCKETED:
        if bucket not in ("insurance", "patient"):
            raise Invalid(f"{kind} needs a bucket", errors={"bucket": ["insurance or patient"]})
        sign = BUCKETED[kind]
        ins, pat = (sign, 0) if bucket == "insurance" else (0, sign)
    else:
        raise Invalid(f"unknown ledger entry kind {kind!r}", errors={"kind": [f"one of {', '.join(all_kinds())}"]})
    return money(amount * ins), money(amount * pat)


def all_kinds() -> list[str]:
    return [*EFFECTS, *BUCKETED]


def post(
    session: Session,
    claim_line: ClaimLine,
    kind: str,
    amount: Decimal,
    *,
    source_type: str,
    bucket: str | None = None,
    group_code: str = "",
    reason_code: str = "",
    source_id: str = "",
    posting_key: str | None = None,
    user_id: int | None = None,
    note: str = "",
    patient_id: int | None = None,
) -> int | None:
    """Append an entry; returns its id, or None when `posting_key` was posted before (nothing is added)."""
    amount = money(amount)
    insurance_delta, patient_delta = _deltas(kind, amount, bucket)
    claim_patient = patient_id if patient_id is not None else _patient_of(session, claim_line.claim_id)
    # Core insert on the table: the ORM-enabled bulk path costs more than the statement itself at posting volume.
    stmt = insert(LedgerEntry.__table__).values(
        claim_line_id=claim_line.id,
        claim_id=claim_line.claim_id,
        patient_id=claim_patient,
        kind=kind,
        amount=amount,
        insurance_delta=insurance_delta,
        patient_delta=patient_delta,
        group_code=group_code,
        reason_code=reason_code,
        source_type=source_type,
        source_id=source_id,
        posting_key=posting_key,
        user_id=user_id,
        note=note[:2000],
    )
    if posting_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["posting_key"])
    return session.execute(stmt.returning(LedgerEntry.__table__.c.id)).scalar()


def _patient_of(session: Session, claim_id: int) -> int:
    """A claim's patient never changes: remembered for the session, so posting a claim's lines asks once."""
    cache = session.info.setdefault("ledger_claim_patients", {})
    if claim_id not in cache:
        cache[claim_id] = session.scalar(select(Claim.patient_id).where(Claim.id == claim_id))
    return cache[claim_id]


def reverse(
    session: Session, entry_id: int, *, source_type: str, user_id: int | None = None, note: str = "",
    posting_key: str | None = None,
) -> int:  # fmt: skip
    """Cancel an entry with its mirror image. An entry is reversed at most once; a reversal is never reversed."""
    entry = session.get(LedgerEntry, entry_id)
    if entry is None:
        raise NotFound(f"ledger entry {entry_id} not found")
    if entry.kind == "reversal":
        raise Conflict("a reversal cannot itself be reversed: post a new entry instead")
    stmt = (
        insert(LedgerEntry)
        .values(
            claim_line_id=entry.claim_line_id,
            claim_id=entry.claim_id,
            patient_id=entry.patient_id,
            kind="reversal",
            amount=-entry.amount,
            insurance_delta=-entry.insurance_delta,
            patient_delta=-entry.patient_delta,
            group_code=entry.group_code,
            reason_code=entry.reason_code,
            reverses_entry_id=entry.id,
            source_type=source_type,
            posting_key=posting_key,
            user_id=user_id,
            note=note[:2000],
        )
        .on_conflict_do_nothing(index_elements=["reverses_entry_id"])
        .returning(LedgerEntry.id)
    )
    new_id = session.scalar(stmt)
    if new_id is None:
        raise Conflict(f"ledger entry {entry_id} is already reversed")
    return new_id


def _balance(session: Session, *where) -> Balance:
    original = aliased(LedgerEntry)
    # A reversal counts in the category of the entry it reverses (its amount is already negated).
    kind = func.coalesce(original.kind, LedgerEntry.kind)
    refund = kind == "refund"

    def sum_where(condition):
        return func.coalesce(func.sum(case((condition, LedgerEntry.amount), else_=0)), 0)

    row = session.execute(
        select(
            sum_where(kind == "charge"),
            sum_where(kind.in_(PAYMENT_KINDS)) - sum_where(refund),
            sum_where(kind.in_(ADJUSTMENT_KINDS)),
            func.coalesce(func.sum(LedgerEntry.insurance_delta), 0),
            func.coalesce(func.sum(LedgerEntry.patient_delta), 0),
        )
        .select_from(LedgerEntry)
        .outerjoin(original, original.id == LedgerEntry.reverses_entry_id)
        .where(*where)
    ).one()
    return Balance(*(money(v) for v in row))


def line_balance(session: Session, claim_line_id: int) -> Balance:
    return _balance(session, LedgerEntry.claim_line_id == claim_line_id)


def claim_balance(session: Session, claim_id: int) -> Balance:
    return _balance(session, LedgerEntry.claim_id == claim_id)


def patient_balance(session: Session, patient_id: int) -> Balance:
    return _balance(session, LedgerEntry.patient_id == patient_id)


def practice_balance(session: Session) -> Balance:
    return _balance(session)


def entries_for_claim(session: Session, claim_id: int) -> list[LedgerEntry]:
    return list(session.scalars(select(LedgerEntry).where(LedgerEntry.claim_id == claim_id).order_by(LedgerEntry.id)))


__all__ = ["ZERO", "Balance", "all_kinds", "claim_balance", "line_balance", "post", "reverse"]
