"""The one money type: `Decimal` quantised to cents, rounded half-up once, at the step that produces an amount.

`entered_amount` is the one check of an amount a person or a file gives us (API fields, portal forms, agency payment
files): exact cents and a ceiling well below what the column holds, so sums of entered amounts still fit."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Numeric

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Column type for every amount: exact, two places.
MoneyColumn = Numeric(12, 2)
# The largest amount anyone may enter: far above any real medical bill, and a hundred of them still fit MoneyColumn.
MAX_AMOUNT = Decimal("99999999.99")
AMOUNT_RULE = "an amount with at most two decimal places, at most 99,999,999.99"


def money(value: Decimal | int | str) -> Decimal:
    """An exact amount in dollars and cents. Floats are refused: they cannot carry cents exactly."""
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a Decimal, int or str")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        # The value stays out of the message: exception text reaches logs and failed-job records.
        raise ValueError("not an amount") from exc
    if not amount.is_finite():
        raise ValueError("not an amount")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def entered_amount(value: Decimal | int | str) -> Decimal:
    """An amount as entered: exact to the cent (50.001 is refused, never rounded to 50.00) and within +/-MAX_AMOUNT.
    Raises ValueError with `AMOUNT_RULE` (never the value) when it is not one."""
    if isinstance(value, float) or isinstance(value, bool):
        raise ValueError(AMOUNT_RULE)
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(AMOUNT_RULE) from exc
    if not amount.is_finite():
        raise ValueError(AMOUNT_RULE)
    if amount.is_zero():
        return ZERO
    # Magnitude first (adjusted() is the exponent of the leading digit): "1e999999999" is refused without arithmetic.
    if amount.adjusted() > MAX_AMOUNT.adjusted():
        raise ValueError(AMOUNT_RULE)
    cents = amount.quantize(CENT)
    if cents != amount or abs(cents) > MAX_AMOUNT:
        raise ValueError(AMOUNT_RULE)
    return cents


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    """`percent` of `amount` (e.g. 80 for 80%), rounded to the cent."""
    return money(Decimal(amount) * Decimal(percent) / Decimal(100))


def total(amounts) -> Decimal:
    return money(sum((Decimal(a) for a in amounts), ZERO))
