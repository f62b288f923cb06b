"""Patient statements as PDF, from plain dataclasses (billing/statements.py fills them from the ledger).

One statement: the practice header (name, address, phone), the recipient's mailing block (the guarantor when there
is one), account number and statement date, the amount due in a box, the itemised visits (each visit's lines: code,
billed, insurance paid, adjusted, patient paid, patient owes, with a visit subtotal), the aging of the balance
(current, 31-60, 61-90, 91-120, over 120 days), the dunning message of the balance's age, and the payment
instructions with a tear-off stub. The PDF creation date is the statement date, so the same statement renders to
the same bytes. Strings go through `to_latin1` (core fonts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace

from integrations.pdf.eob import format_money, to_latin1

__all__ = ["AGING_LABELS", "StatementDocument", "StatementLine", "StatementVisit", "render_statement"]

AGING_LABELS = {
    "current": "Current (0-30)",
    "31_60": "31-60 days",
    "61_90": "61-90 days",
    "91_120": "91-120 days",
    "over_120": "Over 120 days",
}
_HEADING_FILL = (230, 236, 243)


@dataclass(frozen=True)
class StatementLine:
    procedure_code: str
    billed: Decimal
    insurance_paid: Decimal
    adjusted: Decimal
    patient_paid: Decimal
    patient_owes: Decimal


@dataclass(frozen=True)
class StatementVisit:
    date_of_service: date
    provider: str
    lines: Sequence[StatementLine]

    @property
    def patient_owes(self) -> Decimal:
        return sum((line.patient_owes for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True)
class StatementDocument:
    practice_name: str
    practice_address: Sequence[str]
    practice_phone: str
    recipient_name: str
    recipient_address: Sequence[str]
    patient_name: str
    account_number: str
    statement_date: date
    due_date: date
    amount_due: Decimal
    visits: Sequence[StatementVisit]
    aging: dict[str, Decimal]
    message: str
    payment_instructions: str
    credit: Decimal = Decimal("0.00")
    reference: str = ""  # e.g. "Statement 42"
    extra: dict = field(default_factory=dict)


class _StatementPdf(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="Letter")
        self.footer_text = footer_text
        self.set_margins(14, 12, 14)
        self.set_auto_page_break(True, margin=18)
        self.alias_nb_pages("{nb}")
        self.set_creator("medbill")
        self.set_author("medbill")

    def normalize_text(self, text: str) -> str:
        return super().normalize_text(to_latin1(text))

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("helvetica", size=7)
        self.set_text_color(110)
        y = self.get_y()
        self.cell(w=0, h=4, text=self.footer_text, align=Align.L)
        self.set_xy(self.l_margin, y)
        self.cell(w=0, h=4, text=f"Page {self.page_no()} of {{nb}}", align=Align.R)
        self.set_text_color(0)


def _block(pdf: FPDF, lines: Sequence[str], *, bold_first: bool = False, size: float = 9) -> None:
    for i, text in enumerate(lines):
        pdf.set_font("helvetica", "B" if bold_first and i == 0 else "", size)
        pdf.cell(w=90, h=4.5, text=text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_statement(doc: StatementDocument) -> bytes:
    pdf = _StatementPdf(f"{doc.practice_name} - account {doc.account_number} - {doc.reference}".strip(" -"))
    pdf.set_creation_date(datetime.combine(doc.statement_date, time(12), tzinfo=UTC))
    pdf.set_title(f"Statement {doc.account_number} {doc.statement_date.isoformat()}")
    pdf.add_page()

    # Header: practice on the left, the statement box on the right.
    top = pdf.get_y()
    pdf.set_font("helvetica", "B", 14)
    pdf.cell(w=110, h=7, text=doc.practice_name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _block(pdf, [*doc.practice_address, f"Billing questions: {doc.practice_phone}"])
    pdf.set_xy(130, top)
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(w=0, h=8, text="STATEMENT", align=Align.R, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    for label, value in (
        ("Statement date", doc.statement_date.strftime("%m/%d/%Y")),
        ("Account number", doc.account_number),
        ("Patient", doc.patient_name),
        ("Please pay by", doc.due_date.strftime("%m/%d/%Y")),
    ):
        pdf.set_x(120)
        pdf.cell(w=35, h=4.5, text=label)
        pdf.cell(w=0, h=4.5, text=value, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(120)
    pdf.set_font("helvetica", "B", 11)
    pdf.set_fill_color(*_HEADING_FILL)
    pdf.cell(w=35, h=8, text="Amount due", fill=True)
    pdf.cell(w=0, h=8, text=format_money(doc.amount_due), align=Align.R, fill=True, new_x=XPos.LMARGIN,
             new_y=YPos.NEXT)  # fmt: skip

    # The mailing block, where a window envelope shows it.
    pdf.set_y(max(pdf.get_y(), top + 42))
    _block(pdf, [doc.recipient_name, *doc.recipient_address], bold_first=True, size=10)
    pdf.ln(4)

    if doc.message:
        pdf.set_font("helvetica", "B", 10)
        pdf.set_fill_color(253, 243, 224)
        pdf.multi_cell(w=0, h=5.5, text=doc.message, border=1, fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)

    # Itemised visits.
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(w=0, h=6, text="Your visits", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=8.5)
    with pdf.table(
        col_widths=(24, 40, 22, 24, 22, 22, 24),
        text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        headings_style=FontFace(emphasis="BOLD", fill_color=_HEADING_FILL),
        line_height=4.2,
        padding=(0.8, 1),
        repeat_headings=1,
    ) as table:
        heading = table.row()
        for text in ("Date", "Service", "Billed", "Insurance paid", "Adjusted", "You paid", "You owe"):
            heading.cell(text)
        for visit in doc.visits:
            for line in visit.lines:
                row = table.row()
                row.cell(visit.date_of_service.strftime("%m/%d/%Y"))
                row.cell(f"{line.procedure_code}  {visit.provider}".strip())
                for amount in (line.billed, line.insurance_paid, line.adjusted, line.patient_paid, line.patient_owes):
                    row.cell(format_money(amount))
            row = table.row(style=FontFace(emphasis="BOLD"))
            row.cell("")
            row.cell(f"Visit of {visit.date_of_service.strftime('%m/%d/%Y')}", colspan=5)
            row.cell(format_money(visit.patient_owes))
    pdf.ln(3)

    # Aging.
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(w=0, h=6, text="Account aging", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=8.5)
    with pdf.table(
        col_widths=(30, 30, 30, 30, 30, 32),
        text_align="RIGHT",
        borders_layout=TableBordersLayout.ALL,
        headings_style=FontFace(emphasis="BOLD", fill_color=_HEADING_FILL),
        line_height=4.5,
    ) as table:
        heading = table.row()
        for label in (*AGING_LABELS.values(), "Total due"):
            heading.cell(label)
        row = table.row()
        for key in AGING_LABELS:
            row.cell(format_money(doc.aging.get(key, Decimal("0.00"))))
        row.cell(format_money(doc.amount_due))
    if doc.credit:
        pdf.set_font("helvetica", size=9)
        pdf.cell(w=0, h=5, text=f"Credit on your account: {format_money(doc.credit)}", new_x=XPos.LMARGIN,
                 new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(3)

    # Payment instructions and the stub.
    pdf.set_font("helvetica", "B", 11)
    pdf.cell(w=0, h=6, text="How to pay", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    pdf.multi_cell(w=0, h=4.5, text=doc.payment_instructions, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    pdf.set_draw_color(150)
    pdf.set_dash_pattern(dash=2, gap=1.5)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    pdf.set_dash_pattern()
    pdf.ln(2)
    pdf.set_font("helvetica", size=8)
    pdf.cell(w=0, h=4, text="Please detach and return this part with your payment.", new_x=XPos.LMARGIN,
             new_y=YPos.NEXT)  # fmt: skip
    pdf.set_font("helvetica", "B", 9)
    stub = (
        f"Account {doc.account_number}   Patient {doc.patient_name}   Statement date "
        f"{doc.statement_date.strftime('%m/%d/%Y')}   Amount due {format_money(doc.amount_due)}   "
        "Amount enclosed $__________"
    )
    pdf.multi_cell(w=0, h=5, text=stub, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("helvetica", size=9)
    pdf.multi_cell(
        w=0, h=4.5, text="Make checks payable to " + doc.practice_name + "\n" + "\n".join(doc.practice_address)
    )
    return bytes(pdf.output())
