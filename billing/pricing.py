"""Pricing: the practice's billed charge from its fee schedule, and a payer's allowed amount from the contract in
force on the date of service (a rate per code/modifier, else the contract's percentage of billed)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billing.models import ContractRate, FeeScheduleItem, PayerContract
from billing.money import money, percent_of


def fee_for(session: Session, procedure_code: str, modifiers: list[str] | tuple[str, ...] = ()) -> Decimal | None:
    """The charge for a code: a row for its first modifier wins over the code's plain row."""
    rows = {
        row.modifier: row.charge
        for row in session.scalars(select(FeeScheduleItem).where(FeeScheduleItem.procedure_code == procedure_code))
    }
    first = modifiers[0] if modifiers else ""
    if first and first in rows:
        return money(rows[first])
    return money(rows[""]) if "" in rows else None


def contract_on(session: Session, payer_id: int, on: date) -> PayerContract | None:
    return session.scalar(
        select(PayerContract)
        .where(
            PayerContract.payer_id == payer_id,
            PayerContract.effective_from <= on,
            or_(PayerContract.effective_to.is_(None), PayerContract.effective_to >= on),
        )
        .order_by(PayerContract.effective_from.desc(), PayerContract.id.desc())
        .limit(1)
    )


def allowed_for(
    session: Session,
    payer_id: int,
    procedure_code: str,
    modifiers: list[str] | tuple[str, ...],
    billed: Decimal,
    units: Decimal,
    on: date,
) -> Decimal | None:
    """What the payer's contract allows for a line (rate × units), or None when no contract covers the date."""
    contract = contract_on(session, payer_id, on)
    if contract is None:
        return None
    rates = {
        r.modifier: r.allowed
        for r in session.scalars(
            select(ContractRate).where(
                ContractRate.contract_id == contract.id, ContractRate.procedure_code == procedure_code
            )
        )
    }
    first = modifiers[0] if modifiers else ""
    rate = rates.get(first) if first in rates else rates.get("")
    if rate is not None:
        return money(Decimal(rate) * Decimal(units))
    if contract.default_percent_of_billed is not None:
        return percent_of(billed, contract.default_percent_of_billed)
    return None
