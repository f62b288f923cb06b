"""The doctor's monthly summary as a PDF: the month's headline figures beside the month before, the rates, the last
12 months (a chart and the table of its figures), A/R aging by payer and for patients, payments by rendering
provider and the top denial reasons. Figures come from `billing.reports` (the same as the API and the portal); the
charts are matplotlib PNGs from `integrations.charts`. Storing the bytes is the caller's job.

House style of the EOBs (integrations/pdf/eob.py): Letter pages, Helvetica core fonts (every string through
`to_latin1`), a running header from page 2, "Page N of M" and a provenance line in the footer. The creation date is
the last day of the month, so the same figures render to the same bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos
from fpdf.fonts import FontFace

from integrations import charts
from integrations.pdf.eob import format_money, to_latin1

if TYPE_CHECKING:
    from billing.reports import AgingRow, Allocation, MonthlySummary

__all__ = ["render_monthly_summary"]

_GREY = (90, 90, 90)
_BAND = (224, 232, 242)
_HEADING_FILL = (236, 236, 236)
_NB_ALIAS = "{medbill:nb}"
_BODY_PT = 9
_TABLE_PT = 8

HEADLINE: tuple[tuple[str, str], ...] = (
    ("charges", "Charges"),
    ("insurance_payments", "Insurance payments"),
    ("patient_payments", "Patient payments"),
    ("refunds", "Refunds"),
    ("payments", "Payments (net of refunds)"),
    ("contractual_adjustments", "Contractual adjustments"),
    ("other_adjustments", "Other adjustments and write-offs"),
    ("ar_end", "A/R at the end of the month"),
)
RATES: tuple[tuple[str, str, str], ...] = (
    ("net_collection_rate", "Net collection rate", "%"),
    ("gross_collection_rate", "Gross collection rate", "%"),
    ("days_in_ar", "Days in A/R", ""),
    ("denial_rate", "Denial rate", "%"),
    ("clean_claim_rate", "Clean-claim rate", "%"),
)


def month_name(first: date) -> str:
    return first.strftime("%B %Y")


def short_month(first: date) -> str:
    return first.strftime("%b %y")


def rate_text(value: Decimal | None, unit: str = "%") -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def change_text(now: Decimal, before: Decimal | None) -> str:
    if before is None:
        return ""
    diff = now - before
    sign = "+" if diff > 0 else ""
    shown = f"{sign}{format_money(diff)}"
    if before:
        shown += f" ({sign}{(diff * 100 / abs(before)).quantize(Decimal('0.1'))}%)"
    return shown


class _SummaryPdf(FPDF):
    def __init__(self, running_title: str, provenance: str) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.running_title = running_title
        self.provenance = provenance
        self.set_margins(14, 12, 14)
        self.set_auto_page_break(True, margin=18)
        self.alias_nb_pages(_NB_ALIAS)
        self.set_creator("medbill")
        self.set_author("medbill")

    def normalize_text(self, text: str) -> str:
        return super().normalize_text(to_latin1(text))

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font("helvetica", size=7)
        self.set_text_color(*_GREY)
        self.cell(w=0, h=4, text=self.running_title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_draw_color(180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1)
        self.set_font("helvetica", size=7)
        self.set_text_color(*_GREY)
        y = self.get_y()
        self.cell(w=0, h=4, text=self.provenance, align=Align.L)
        self.set_xy(self.l_margin, y)
        self.cell(w=0, h=4, text=f"Page {self.page_no()} of {_NB_ALIAS}", align=Align.R)
        self.set_text_color(0)


class _Renderer:
    def __init__(self, pdf: _SummaryPdf) -> None:
        self.pdf = pdf

    def band(self, text: str) -> None:
        pdf = self.pdf
        pdf.ln(3)
        pdf.set_font("helvetica", "B", 11)
        pdf.set_fill_color(*_BAND)
        pdf.cell(w=0, h=7, text=text, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)

    def paragraph(self, text: str, *, size: float = _BODY_PT) -> None:
        self.pdf.set_font("helvetica", size=size)
        self.pdf.multi_cell(w=0, h=4.5, text=text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float], *,
              numeric_from: int = 1, bold_last: bool = False) -> None:  # fmt: skip
        pdf = self.pdf
        pdf.set_font("helvetica", size=_TABLE_PT)
        aligns = tuple("LEFT" if i < numeric_from else "RIGHT" for i in range(len(header)))
        with pdf.table(
            col_widths=widths,
            width=sum(widths),
            align="LEFT",
            text_align=aligns,
            headings_style=FontFace(emphasis="BOLD", fill_color=_HEADING_FILL),
            line_height=4.6,
            repeat_headings=1,
        ) as table:
            table.row(list(header))
            for index, values in enumerate(rows):
                style = FontFace(emphasis="BOLD") if bold_last and index == len(rows) - 1 else None
                table.row(list(values), style=style)

    def chart(self, png: bytes, width: float) -> None:
        pdf = self.pdf
        pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width)
        pdf.ln(2)


def render_monthly_summary(
    *,
    practice_name: str,
    summary: MonthlySummary,
    aging: Sequence[AgingRow],
    aging_as_of: date,
    allocations: Sequence[Allocation],
    company_name: str = "",
) -> bytes:
    """The PDF of `summary.current`'s month: headline figures with the change from the month before, rates, the
    months of `summary` (chart and table), A/R aging at `aging_as_of`, payments by provider and denial reasons."""
    current, previous = summary.current, summary.previous
    title = f"{practice_name} - monthly summary, {month_name(current.month)}"
    pdf = _SummaryPdf(title, f"Generated by medbill from the ledger of {practice_name}")
    last = (current.month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    pdf.set_creation_date(datetime.combine(last, time(12, 0), tzinfo=UTC))
    pdf.set_title(title)
    pdf.add_page()
    out = _Renderer(pdf)

    pdf.set_font("helvetica", "B", 16)
    pdf.cell(w=0, h=9, text=practice_name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=11)
    pdf.cell(w=0, h=6, text=f"Monthly summary - {month_name(current.month)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if company_name:
        out.paragraph(f"Billed by {company_name}")

    out.band("The month at a glance")
    before = month_name(previous.month) if previous else "previous month"
    rows = [
        [label, format_money(getattr(current, key)),
         format_money(getattr(previous, key)) if previous else "",
         change_text(getattr(current, key), getattr(previous, key) if previous else None)]
        for key, label in HEADLINE
    ]  # fmt: skip
    out.table(["Figure", month_name(current.month), before, "Change"], rows, [62, 36, 36, 48])
    pdf.ln(2)
    rate_rows = [
        [label, rate_text(getattr(current, key), unit), rate_text(getattr(previous, key), unit) if previous else ""]
        for key, label, unit in RATES
    ]
    out.table(["Rate", month_name(current.month), before], rate_rows, [62, 36, 36])
    out.paragraph(
        "Net collection rate = payments / (charges - contractual adjustments). Gross collection rate = payments / "
        "charges. Days in A/R = A/R at the month's end / average daily charges of the last 90 days. Clean-claim rate "
        "= claims accepted on their first submission.",
        size=7,
    )

    out.band(f"The last {len(summary.months)} months")
    labels = [short_month(m.month) for m in summary.months]
    out.chart(
        charts.charges_payments_chart(
            labels, [m.charges for m in summary.months], [m.payments for m in summary.months], fmt="png"
        ),
        pdf.epw,
    )
    month_rows = [
        [month_name(m.month), format_money(m.charges), format_money(m.payments), format_money(m.adjustments),
         format_money(m.ar_end), rate_text(m.net_collection_rate)]
        for m in summary.months
    ]  # fmt: skip
    out.table(["Month", "Charges", "Payments", "Adjustments", "A/R at end", "Net collection"], month_rows,
              [38, 30, 30, 30, 30, 28])  # fmt: skip

    out.band(f"Accounts receivable by age on {aging_as_of.strftime('%m/%d/%Y')}")
    buckets = list(aging[0].buckets) if aging else []
    patients = next((row for row in aging if row.key == "patients"), None)
    insurance = [sum((r.buckets[b] for r in aging if r.key != "patients"), Decimal(0)) for b in buckets]
    if buckets:
        out.chart(
            charts.aging_chart(
                buckets, insurance, [patients.buckets[b] if patients else Decimal(0) for b in buckets], fmt="png"
            ),  # fmt: skip
            pdf.epw * 0.75,
        )
    aging_rows = [
        [row.label, *(format_money(row.buckets[b]) for b in buckets), format_money(row.total)] for row in aging
    ]
    totals = [sum((row.buckets[b] for row in aging), Decimal(0)) for b in buckets]
    aging_rows.append(["Total", *(format_money(t) for t in totals), format_money(sum(totals, Decimal(0)))])
    out.table(["Owed by", *(f"{b} days" for b in buckets), "Total"], aging_rows,
              [47, *([22] * len(buckets)), 25], bold_last=True)  # fmt: skip

    out.band(f"Payments by rendering provider, {month_name(current.month)}")
    by_provider: dict[str, Decimal] = {}
    for a in allocations:
        by_provider[a.provider] = by_provider.get(a.provider, Decimal(0)) + a.amount
    if allocations:
        names = sorted(by_provider, key=lambda n: (-by_provider[n], n))
        out.chart(charts.provider_chart(names, [by_provider[n] for n in names], fmt="png"), pdf.epw * 0.75)
        alloc_rows = [[a.provider, a.payer, format_money(a.amount)] for a in allocations]
        alloc_rows.append(["Total", "", format_money(sum((a.amount for a in allocations), Decimal(0)))])
        out.table(["Provider", "Paid by", "Payments"], alloc_rows, [70, 70, 40], numeric_from=2, bold_last=True)
    else:
        out.paragraph("No payments were posted this month.")

    out.band(f"Top denial reasons, {month_name(current.month)}")
    if summary.top_denial_reasons:
        reason_rows = [[f"{r.group}-{r.reason}", r.description, str(r.count), format_money(r.amount)]
                       for r in summary.top_denial_reasons]  # fmt: skip
        out.table(["Code", "Reason", "Claims", "Amount"], reason_rows, [18, 118, 18, 28], numeric_from=2)
    else:
        out.paragraph("No claim was denied this month.")
    return bytes(pdf.output())
