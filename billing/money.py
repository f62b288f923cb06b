"""The one money type: `Decimal` quantised to cents, rounded half-up once, at the step that produces an amount."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Numeric

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Column type for every amount: exact, two places.
MoneyColumn = Numeric(12, 2)


def money(value: Decimal | int | str) -> Decimal:
    """An exact amount in dollars and cents. Floats are refused: they cannot carry cents exactly."""
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a Decimal, int or str")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def percent_of(amount: Decimal, percent: Decimal) -> Decimal:
    """`percent` of `amount` (e.g. 80 for 80%), rounded to the cent."""
    return money(Decimal(amount) * Decimal(percent) / Decimal(100))


def total(amounts) -> Decimal:
    return money(sum((Decimal(a) for a in amounts), ZERO))
