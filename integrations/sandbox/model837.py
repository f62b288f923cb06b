"""What the sandbox reads out of an 837P transaction set: submitter, billing providers, subscribers, patients,
payers, claims and service lines, as plain dataclasses.

Owns the walk over the 837P loops (2000A/2010AA, 2000B/2010BA/2010BB, 2000C/2010CA, 2300, 2310B, 2320/2330 skipped,
2400/2420A/2430). It keeps only what a clearinghouse and payer need to acknowledge and adjudicate; structural
validity is pyx12's job (see ``validate``), so this reader is forgiving and never raises on odd content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from .edi import Segment, Transaction, parse_amount

__all__ = ["Batch", "Claim", "Line", "Party", "parse_837", "parse_date"]


def parse_date(text: str) -> date | None:
    """CCYYMMDD -> date, None when absent or impossible."""
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


@dataclass
class Party:
    entity_type: str = ""  # NM102: 1 person, 2 organisation
    last: str = ""
    first: str = ""
    middle: str = ""
    id_qualifier: str = ""
    id: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    birth_date_text: str = ""
    gender: str = ""
    tax_id: str = ""

    @classmethod
    def from_nm1(cls, seg: Segment) -> Party:
        return cls(
            entity_type=seg.get(2),
            last=seg.get(3),
            first=seg.get(4),
            middle=seg.get(5),
            id_qualifier=seg.get(8),
            id=seg.get(9),
        )

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first, self.middle, self.last) if p) if self.entity_type == "1" else self.last

    @property
    def birth_date(self) -> date | None:
        return parse_date(self.birth_date_text)


@dataclass
class Line:
    number: int
    position: int  # SV1 segment position in the transaction set (for IK3)
    qualifier: str = "HC"
    code: str = ""
    modifiers: list[str] = field(default_factory=list)
    charge: Decimal | None = None
    units: str = "1"
    date_from: date | None = None
    date_to: date | None = None
    date_text: str = ""
    control_number: str = ""  # REF*6R, echoed in the 277CA (REF*FJ) and the 835 (REF*6R)
    rendering: Party | None = None
    prior_paid: Decimal = Decimal("0")  # 2430 SVD02: what an earlier payer paid on this line


@dataclass
class Claim:
    pcn: str
    position: int  # CLM segment position in the transaction set
    charge: Decimal | None
    charge_text: str
    place_of_service: str
    frequency: str
    billing: Party
    subscriber: Party
    patient: Party
    payer: Party
    payer_responsibility: str = "P"  # SBR01
    relationship: str = "18"  # SBR02 / PAT01
    group_number: str = ""
    filing_indicator: str = ""  # SBR09
    is_dependent: bool = False
    original_reference: str = ""  # REF*F8 payer claim control number, for replacements and voids
    rendering: Party | None = None
    lines: list[Line] = field(default_factory=list)

    @property
    def member_id(self) -> str:
        return self.subscriber.id

    @property
    def service_dates(self) -> tuple[date | None, date | None]:
        starts = [ln.date_from for ln in self.lines if ln.date_from]
        ends = [ln.date_to or ln.date_from for ln in self.lines if ln.date_from]
        return (min(starts) if starts else None, max(ends) if ends else None)


@dataclass
class Batch:
    """One 837 transaction set."""

    control_number: str
    bht03: str = ""
    submitter: Party = field(default_factory=Party)
    receiver: Party = field(default_factory=Party)
    claims: list[Claim] = field(default_factory=list)


@dataclass
class _Level:
    code: str
    parent: str
    party: Party | None = None  # billing provider (20), subscriber (22), patient (23)
    payer: Party | None = None
    sbr: Segment | None = None
    relationship: str = ""


def _parse_dtp(seg: Segment) -> tuple[date | None, date | None, str]:
    fmt, value = seg.get(2), seg.get(3)
    if fmt == "RD8" and "-" in value:
        a, b = value.split("-", 1)
        return parse_date(a), parse_date(b), value
    return parse_date(value), None, value


def parse_837(txn: Transaction) -> Batch:
    """Read one 837P transaction set; unknown segments are skipped."""
    batch = Batch(control_number=txn.control_number)
    levels: dict[str, _Level] = {}
    level: _Level | None = None
    claim: Claim | None = None
    line: Line | None = None
    party: Party | None = None  # where N3/N4/DMG/REF of the current NM1 go
    in_other_payer = False  # inside 2320/2330: their NM1*IL/PR/SBR are not this claim's subscriber or payer

    for seg in txn.segments:
        sid = seg.id
        if sid == "BHT":
            batch.bht03 = seg.get(3)
        elif sid == "HL":
            level = _Level(code=seg.get(3), parent=seg.get(2))
            levels[seg.get(1)] = level
            claim, line, party, in_other_payer = None, None, None, False
        elif sid == "NM1":
            kind = seg.get(1)
            if level is None:
                if kind == "41":
                    batch.submitter = party = Party.from_nm1(seg)
                elif kind == "40":
                    batch.receiver = party = Party.from_nm1(seg)
                else:
                    party = None
            elif claim is None:
                party = Party.from_nm1(seg)
                if kind == "85" and level.code == "20":
                    level.party = party
                elif kind == "IL" and level.code == "22":
                    level.party = party
                elif kind == "PR" and level.code == "22":
                    level.payer = party
                elif kind == "QC" and level.code == "23":
                    level.party = party
            elif kind == "82" and not in_other_payer:
                party = Party.from_nm1(seg)
                if line is not None:
                    line.rendering = party
                else:
                    claim.rendering = party
            else:
                party = None
        elif sid == "N3" and party is not None:
            party.address1, party.address2 = seg.get(1), seg.get(2)
        elif sid == "N4" and party is not None:
            party.city, party.state, party.zip = seg.get(1), seg.get(2), seg.get(3)
        elif sid == "DMG" and party is not None:
            party.birth_date_text, party.gender = seg.get(2), seg.get(3)
        elif sid == "REF" and claim is None and party is not None and seg.get(1) in ("EI", "SY"):
            party.tax_id = seg.get(2)
        elif sid == "SBR":
            if claim is not None:
                in_other_payer = True
            elif level is not None:
                level.sbr = seg
        elif sid == "PAT" and level is not None:
            level.relationship = seg.get(1)
        elif sid == "CLM" and level is not None:
            claim = _new_claim(seg, level, levels)
            line, party, in_other_payer = None, None, False
            if claim is not None:
                batch.claims.append(claim)
        elif claim is None:
            continue
        elif sid == "REF" and seg.get(1) == "F8" and line is None and not in_other_payer:
            claim.original_reference = seg.get(2)
        elif sid == "LX":
            try:
                number = int(seg.get(1))
            except ValueError:
                number = len(claim.lines) + 1
            line = Line(number=number, position=seg.position)
            claim.lines.append(line)
            in_other_payer = False
        elif line is None:
            continue
        elif sid == "SV1":
            parts = seg.comps(1)
            line.position = seg.position
            line.qualifier = parts[0] if parts else "HC"
            line.code = parts[1] if len(parts) > 1 else ""
            line.modifiers = [m for m in parts[2:6] if m]
            try:
                line.charge = parse_amount(seg.get(2))
            except ValueError:
                line.charge = None
            line.units = seg.get(4, "1")
        elif sid == "DTP" and seg.get(1) == "472":
            line.date_from, line.date_to, line.date_text = _parse_dtp(seg)
        elif sid == "REF" and seg.get(1) == "6R":
            line.control_number = seg.get(2)
        elif sid == "SVD":
            try:
                line.prior_paid += parse_amount(seg.get(2))
            except ValueError:
                pass
    return batch


def _new_claim(seg: Segment, level: _Level, levels: dict[str, _Level]) -> Claim | None:
    if level.code == "22":
        sub_level, pat_level = level, None
    elif level.code == "23":
        sub_level, pat_level = levels.get(level.parent), level
    else:
        return None
    if sub_level is None:
        return None
    bill_level = levels.get(sub_level.parent)
    billing = (bill_level.party if bill_level else None) or Party()
    subscriber = sub_level.party or Party()
    patient = (pat_level.party if pat_level else None) or subscriber
    sbr = sub_level.sbr
    try:
        charge: Decimal | None = parse_amount(seg.get(2))
    except ValueError:
        charge = None
    return Claim(
        pcn=seg.get(1),
        position=seg.position,
        charge=charge,
        charge_text=seg.get(2),
        place_of_service=seg.comp(5, 1),
        frequency=seg.comp(5, 3, "1"),
        billing=billing,
        subscriber=subscriber,
        patient=patient,
        payer=sub_level.payer or Party(),
        payer_responsibility=sbr.get(1, "P") if sbr else "P",
        relationship=(pat_level.relationship if pat_level else "") or (sbr.get(2) if sbr else "") or "18",
        group_number=sbr.get(3) if sbr else "",
        filing_indicator=sbr.get(9) if sbr else "",
        is_dependent=pat_level is not None,
    )
