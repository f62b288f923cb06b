"""Underpayments: after a claim posts, each of its lines the remittance paid is compared with what the payer's
contract allows (billing.pricing.allowed_for, on the line's code, modifiers, billed charge, units and date of
service). What the payer accounted for is this remittance's insurance payment on the line plus the patient
responsibility (PR) it assigned; when that falls short of the allowed amount by more than the tolerance, the line goes
into the underpayment queue with the expected and paid amounts.

Tolerance: set per payer on the practice's enrolment (`UnderpaymentTolerance`: an amount and a percent of the allowed
amount, the larger wins); without one, DEFAULT_TOLERANCE — $1.00 or 1 % of the allowed amount, whichever is larger —
so rounding and a payer's cent-level pricing differences do not fill the queue.

Not compared: lines without a contract (or a contract with no rate and no percentage for the code), denied lines
(nothing paid and a CO reason other than the contractual CO-45: they belong to the denial queue), reversals (the caller
checks only claims that posted), lines the remittance did not pay (no entry of this deposit on them), and secondary or
tertiary adjudications (the caller leaves them out: a later payer pays what the earlier ones left, not the contract).
A reversal of the posting resolves its open underpayments (billing.posting).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.models import Claim, ContractRate, LedgerEntry, PracticePayer, Underpayment, UnderpaymentTolerance
from billing.money import ZERO, money, percent_of
from billing.pricing import allowed_for, contract_on
from medbill.errors import Conflict, Invalid, NotFound

# CO reasons that are pricing, not denial: what exceeds the allowed amount is written off.
CONTRACTUAL_REASONS = frozenset({"45"})


@dataclass(frozen=True)
class Tolerance:
    amount: Decimal
    percent: Decimal

    def for_allowed(self, allowed: Decimal) -> Decimal:
        return max(money(self.amount), percent_of(allowed, self.percent))


DEFAULT_TOLERANCE = Tolerance(Decimal("1.00"), Decimal("1"))


def tolerance_for(session: Session, payer_id: int) -> Tolerance:
    row = session.get(UnderpaymentTolerance, payer_id)
    return Tolerance(row.amount, row.percent) if row is not None else DEFAULT_TOLERANCE


def set_tolerance(session: Session, payer_id: int, *, amount: Decimal, percent: Decimal) -> Tolerance:
    """Set the tolerance on the practice's enrolment with the payer (the payer must be enrolled)."""
    amount, percent = money(amount), Decimal(percent)
    if amount < 0 or not (0 <= percent <= 100):
        raise Invalid("tolerance out of range", errors={"tolerance": ["amount >= 0, percent 0 to 100"]})
    if session.scalar(select(PracticePayer.id).where(PracticePayer.payer_id == payer_id)) is None:
        raise NotFound(f"payer {payer_id} is not enrolled in this practice")
    session.execute(
        insert(UnderpaymentTolerance)
        .values(payer_id=payer_id, amount=amount, percent=percent)
        .on_conflict_do_update(index_elements=["payer_id"], set_={"amount": amount, "percent": percent})
    )
    return Tolerance(amount, percent)


@dataclass
class _LineFigures:
    paid: Decimal = ZERO
    patient_responsibility: Decimal = ZERO
    co_reasons: set[str] | None = None


def _figures(session: Session, claim_id: int, deposit_id: int) -> dict[int, _LineFigures]:
    """What this deposit posted on each line of the claim (reversal entries excluded)."""
    rows = session.execute(
        select(LedgerEntry.claim_line_id, LedgerEntry.kind, LedgerEntry.group_code, LedgerEntry.reason_code,
               LedgerEntry.amount)
        .where(
            LedgerEntry.claim_id == claim_id,
            LedgerEntry.source_type == "remittance",
            LedgerEntry.source_id == f"deposit:{deposit_id}",
            LedgerEntry.kind != "reversal",
        )
    )  # fmt: skip
    out: dict[int, _LineFigures] = {}
    for line_id, kind, group, reason, amount in rows:
        figures = out.setdefault(line_id, _LineFigures(co_reasons=set()))
        if kind == "insurance_payment":
            figures.paid += amount
        elif kind == "patient_responsibility":
            figures.patient_responsibility += amount
        elif group == "CO":
            figures.co_reasons.add(reason)
    return out


def check_claim(
    session: Session,
    claim: Claim,
    deposit_id: int,
    *,
    tolerance: Tolerance | None = None,
    remittance_claim_id: int | None = None,
) -> list[int]:
    """Flag the claim's lines this deposit paid short of the contract; ids of the underpayments added (none when the
    same line and deposit were flagged before). Runs in the caller's transaction, commits nothing."""
    tolerance = tolerance or tolerance_for(session, claim.payer_id)
    figures = _figures(session, claim.id, deposit_id)
    added: list[int] = []
    for line in claim.lines:
        posted = figures.get(line.id)
        if posted is None:
            continue  # this remittance did not speak of the line
        if posted.paid < 0 or (posted.paid == 0 and posted.co_reasons - CONTRACTUAL_REASONS):
            continue  # a take-back, or a denial: the denial queue's
        service = line.service_line
        expected = allowed_for(
            session, claim.payer_id, service.procedure_code, list(service.modifiers or []), line.charge,
            service.units, service.date_of_service,
        )  # fmt: skip
        if expected is None:
            continue
        received = money(posted.paid + posted.patient_responsibility)
        shortfall = money(expected - received)
        allowed_gap = tolerance.for_allowed(expected)
        if shortfall <= allowed_gap:
            continue
        new_id = session.scalar(
            insert(Underpayment)
            .values(
                claim_id=claim.id,
                claim_line_id=line.id,
                deposit_id=deposit_id,
                remittance_claim_id=remittance_claim_id,
                payer_id=claim.payer_id,
                procedure_code=service.procedure_code,
                expected_allowed=expected,
                paid=money(posted.paid),
                patient_responsibility=money(posted.patient_responsibility),
                shortfall=shortfall,
                tolerance=allowed_gap,
            )
            .on_conflict_do_nothing(index_elements=["claim_line_id", "deposit_id"])
            .returning(Underpayment.id)
        )
        if new_id is not None:
            added.append(new_id)
    return added


def check_claims(session: Session, claims: list[tuple[Claim, int | None, list]], deposit_id: int) -> list[int]:
    """`check_claim` for many claims of one deposit (claim, remittance claim id, its lines — ClaimLine or anything
    with the same attributes): what the deposit posted is read in one query, and contracts and rates once per payer,
    date and code. Ids of the underpayments added."""
    if not claims:
        return []
    figures: dict[int, dict[int, _LineFigures]] = {}
    for line_id, claim_id, kind, group, reason, amount in session.execute(
        select(LedgerEntry.claim_line_id, LedgerEntry.claim_id, LedgerEntry.kind, LedgerEntry.group_code,
               LedgerEntry.reason_code, LedgerEntry.amount)
        .where(
            LedgerEntry.source_type == "remittance",
            LedgerEntry.source_id == f"deposit:{deposit_id}",
            LedgerEntry.kind != "reversal",
        )
    ):  # fmt: skip
        f = figures.setdefault(claim_id, {}).setdefault(line_id, _LineFigures(co_reasons=set()))
        if kind == "insurance_payment":
            f.paid += amount
        elif kind == "patient_responsibility":
            f.patient_responsibility += amount
        elif group == "CO":
            f.co_reasons.add(reason)
    tolerances: dict[int, Tolerance] = {}
    contracts: dict[tuple, object] = {}
    rates: dict[tuple, dict[str, Decimal]] = {}

    def allowed(payer_id: int, service, billed: Decimal) -> Decimal | None:
        key = (payer_id, service.date_of_service)
        if key not in contracts:
            contracts[key] = contract_on(session, payer_id, service.date_of_service)
        contract = contracts[key]
        if contract is None:
            return None
        code_key = (contract.id, service.procedure_code)
        if code_key not in rates:
            rates[code_key] = {
                r.modifier: r.allowed
                for r in session.scalars(
                    select(ContractRate).where(
                        ContractRate.contract_id == contract.id, ContractRate.procedure_code == service.procedure_code
                    )
                )
            }
        found = rates[code_key]
        modifiers = list(service.modifiers or [])
        first = modifiers[0] if modifiers else ""
        rate = found.get(first) if first in found else found.get("")
        if rate is not None:
            return money(Decimal(rate) * Decimal(service.units))
        if contract.default_percent_of_billed is not None:
            return percent_of(billed, contract.default_percent_of_billed)
        return None

    rows = []
    for claim, remittance_claim_id, lines in claims:
        posted_lines = figures.get(claim.id, {})
        if not posted_lines:
            continue
        if claim.payer_id not in tolerances:
            tolerances[claim.payer_id] = tolerance_for(session, claim.payer_id)
        tolerance = tolerances[claim.payer_id]
        for line in lines:
            posted = posted_lines.get(line.id)
            if posted is None or posted.paid < 0 or (posted.paid == 0 and posted.co_reasons - CONTRACTUAL_REASONS):
                continue
            service = line.service_line
            expected = allowed(claim.payer_id, service, line.charge)
            if expected is None:
                continue
            received = money(posted.paid + posted.patient_responsibility)
            shortfall = money(expected - received)
            allowed_gap = tolerance.for_allowed(expected)
            if shortfall <= allowed_gap:
                continue
            rows.append(
                {
                    "claim_id": claim.id, "claim_line_id": line.id, "deposit_id": deposit_id,
                    "remittance_claim_id": remittance_claim_id, "payer_id": claim.payer_id,
                    "procedure_code": service.procedure_code, "expected_allowed": expected,
                    "paid": money(posted.paid), "patient_responsibility": money(posted.patient_responsibility),
                    "shortfall": shortfall, "tolerance": allowed_gap,
                }
            )  # fmt: skip
    added: list[int] = []
    for start in range(0, len(rows), 2000):  # well under PostgreSQL's 65,535 bind parameters
        added += session.scalars(
            insert(Underpayment)
            .values(rows[start : start + 2000])
            .on_conflict_do_nothing(index_elements=["claim_line_id", "deposit_id"])
            .returning(Underpayment.id)
        )
    return added


def list_open(
    session: Session, *, payer_id: int | None = None, claim_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[Underpayment]:
    """The underpayment queue: open rows, largest shortfall first."""
    query = select(Underpayment).where(Underpayment.status == "open")
    if payer_id is not None:
        query = query.where(Underpayment.payer_id == payer_id)
    if claim_id is not None:
        query = query.where(Underpayment.claim_id == claim_id)
    query = query.order_by(Underpayment.shortfall.desc(), Underpayment.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def resolve(session: Session, underpayment_id: int, *, user_id: int | None, note: str = "") -> Underpayment:
    """Take a line off the queue (appealed and repaid, accepted, written off...) with a note saying why."""
    row = session.get(Underpayment, underpayment_id, with_for_update=True)
    if row is None:
        raise NotFound(f"underpayment {underpayment_id} not found")
    if row.status == "resolved":
        raise Conflict(f"underpayment {underpayment_id} is already resolved")
    row.status = "resolved"
    row.resolved_at = datetime.now(UTC)
    row.resolved_by_user_id = user_id
    row.note = note[:2000]
    return row
