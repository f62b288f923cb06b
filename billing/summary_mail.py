"""The message that tells a practice's doctors their monthly summary is ready: the month's headline figures in
words and a link to the portal (never patient data: the figures are the practice's totals)."""

from __future__ import annotations

from datetime import date

from billing.reports import MonthFigures


def _rate(value) -> str:
    return "n/a" if value is None else f"{value}%"


def summary_message(
    figures: MonthFigures, *, practice_name: str, month: date, portal_url: str, recipient_name: str
) -> tuple[str, str]:
    """(subject, plain-text body) of one doctor's monthly summary message."""
    label = month.strftime("%B %Y")
    subject = f"{practice_name}: monthly summary for {label}"
    body = "\n".join(
        [
            f"Dear {recipient_name},",
            "",
            f"The monthly revenue summary of {practice_name} for {label} is ready.",
            "",
            f"  Charges:                 ${figures.charges:,}",
            f"  Payments:                ${figures.payments:,}",
            f"  Adjustments:             ${figures.adjustments:,}",
            f"  Net collection rate:     {_rate(figures.net_collection_rate)}",
            f"  Outstanding at month end: ${figures.ar_end:,}",
            "",
            f"See the charts, A/R aging and the PDF in the portal: {portal_url}",
            "",
            "You receive this message because you are a doctor of the practice in medbill.",
        ]
    )
    return subject, body
