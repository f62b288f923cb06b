"""Appeal letters as PDF: the practice's letterhead, the date, the payer's address, then the letter text exactly as
the appeal template rendered it (billing.appeals), one page or more, "Page N of M" at the foot. Storing the bytes is
the caller's job.

The letter text is plain text: blank lines separate paragraphs, leading spaces indent (list items), long lines wrap.
fpdf2's core fonts cover latin-1 only, so every string goes through the EOB renderer's `to_latin1`, which
transliterates what it can and replaces the rest, so no name or payer text can make rendering fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from integrations.pdf.eob import to_latin1

__all__ = ["AppealLetter", "render_appeal_letter"]

_NB_ALIAS = "{medbill:nb}"
_BODY_PT = 10.5
_LINE_MM = 5.2


@dataclass(frozen=True)
class AppealLetter:
    letterhead: list[str]  # practice name first, then address and contact lines
    recipient: list[str]  # payer name and address lines
    letter_date: date
    body: str  # the rendered template
    reference: str = ""  # shown in the footer, e.g. "Appeal 12 - claim 345"
    attachments: list[str] = field(default_factory=list)


class _Letter(FPDF):
    def __init__(self, reference: str) -> None:
        super().__init__(format="Letter", unit="mm")
        self.reference = reference
        self.alias_nb_pages(_NB_ALIAS)
        self.set_margins(22, 20, 22)
        self.set_auto_page_break(True, margin=20)

    def normalize_text(self, text: str) -> str:
        return super().normalize_text(to_latin1(text))

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110, 110, 110)
        left = self.reference
        self.cell(0, 5, left, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        self.cell(0, 5, f"Page {self.page_no()} of {_NB_ALIAS}", align="R")
        self.set_text_color(0, 0, 0)


def render_appeal_letter(letter: AppealLetter) -> bytes:
    pdf = _Letter(letter.reference)
    pdf.set_title(to_latin1(letter.reference or "Appeal letter"))
    pdf.set_creator("medbill")
    # The letter's own date, so the same letter renders to the same bytes.
    pdf.set_creation_date(datetime.combine(letter.letter_date, time(12), tzinfo=UTC))
    pdf.add_page()
    width = pdf.epw
    name, *rest = letter.letterhead or [""]
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(width, 7, name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    for line in rest:
        pdf.cell(width, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_draw_color(150, 150, 150)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
    pdf.ln(6)
    pdf.set_font("Helvetica", size=_BODY_PT)
    pdf.cell(width, _LINE_MM, letter.letter_date.strftime("%B %d, %Y").replace(" 0", " "),
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.ln(4)
    for line in letter.recipient:
        pdf.cell(width, _LINE_MM, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    for raw in letter.body.replace("\r\n", "\n").split("\n"):
        text = raw.rstrip()
        if not text:
            pdf.ln(_LINE_MM * 0.6)
            continue
        indent = len(text) - len(text.lstrip(" "))
        bold = text.startswith("RE:")
        pdf.set_font("Helvetica", "B" if bold else "", _BODY_PT)
        pdf.set_x(pdf.l_margin + min(indent, 12) * 1.5)
        pdf.multi_cell(width - min(indent, 12) * 1.5, _LINE_MM, text.lstrip(" "),
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    if letter.attachments:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", _BODY_PT)
        pdf.cell(width, _LINE_MM, "Enclosures", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", size=_BODY_PT)
        for item in letter.attachments:
            pdf.multi_cell(width, _LINE_MM, f"- {item}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
