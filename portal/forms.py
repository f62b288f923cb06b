"""Form fields shared by the portal's pages: the one amount input (`MoneyField`)."""

from __future__ import annotations

from wtforms import DecimalField
from wtforms.validators import StopValidation

from billing.money import AMOUNT_RULE, entered_amount


class MoneyField(DecimalField):
    """The portal's one amount input, checked by billing.money.entered_amount: exact cents (50.001 is refused, never
    rounded to 50.00) and at most 99,999,999.99. A blank input leaves `data` None for DataRequired/Optional to judge;
    what was typed stays in the input when the form comes back."""

    def process_formdata(self, valuelist) -> None:
        if not valuelist or not valuelist[0].strip():
            self.data = None
            return
        try:
            self.data = entered_amount(valuelist[0])
        except ValueError as exc:
            self.data = None
            raise ValueError(AMOUNT_RULE[:1].upper() + AMOUNT_RULE[1:] + ".") from exc

    def pre_validate(self, form) -> None:
        # A refused amount keeps its own message: DataRequired would replace it with "enter the amount".
        if self.process_errors:
            raise StopValidation()
