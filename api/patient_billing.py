"""Patient billing: statement runs, patient payments and refunds, credits, payment plans (API)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "patient_billing",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Patient billing: statement runs, patient payments and refunds, credits, payment plans",
)
