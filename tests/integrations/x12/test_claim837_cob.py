"""837P secondary and tertiary claims (coordination of benefits, loops 2320/2330A/2330B/2430): every scenario must
pass pyx12 with no errors, its segments must come in the TR3's loop order (checked with our own reader), and
inconsistent prior-payer data must be refused with a ValueError naming the claim and the field."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from integrations.x12.claim837 import (
    Address,
    BillingProvider,
    Claim,
    Interchange837,
    LineAdjudication,
    OtherPayer,
    Payer,
    Person,
    Receiver,
    ServiceLine,
    Submitter,
    Subscriber,
    write_837p,
)
from integrations.x12.reader import Segment, parse_envelopes, read_segments
from tests.integrations.x12.pyx12_check import pyx12_valid

D = Decimal
HOME = Address("12 Elm St", "Springfield", "IL", "62704")
CLINIC = Address("1 Clinic Way", "Springfield", "IL", "627011234", line2="Suite 200")
MOM = Person("Smith", "Joan", date(1970, 3, 14), "F", HOME, middle_name="Q")
DAD = Person("Smith", "John", date(1968, 9, 2), "M", HOME)
CHILD = Person("Smith", "Tim", date(2015, 7, 1), "M", HOME)
BCBS = Payer("Blue Cross Blue Shield of Illinois", "BCBSIL", "BL")
AETNA = Payer("Aetna", "60054", "CI", address=Address("PO Box 981106", "El Paso", "TX", "799981106"))
UHC = Payer("UnitedHealthcare", "87726", "CI")
MEDICAID = Payer("Illinois Medicaid", "ILMCD", "MC")
PAID_ON = date(2026, 11, 20)
PAID_ON_2 = date(2026, 12, 4)


def line(n: int, charge: str, code: str = "99213", **changes: object) -> ServiceLine:
    base = ServiceLine(
        line_item_control_number=f"L{n}",
        procedure_code=code,
        charge=D(charge),
        units=D(1),
        date_of_service=date(2026, 11, 2),
        diagnosis_pointers=(1,),
    )
    return replace(base, **changes)


def adjudication(
    payer: Payer, paid: str, code: str = "99213", *adjustments: tuple[str, str, str], **changes: object
) -> LineAdjudication:
    base = LineAdjudication(
        payer_id=payer.payer_id,
        paid=D(paid),
        procedure_code=code,
        adjustments=tuple((group, reason, D(amount)) for group, reason, amount in adjustments),
        adjudication_date=PAID_ON,
    )
    return replace(base, **changes)


def prior(payer: Payer, paid: str, responsibility: str = "P", **changes: object) -> OtherPayer:
    base = OtherPayer(
        payer=payer,
        subscriber=Subscriber(MOM, "W123456789", group_number="AET-55"),
        relationship_code="18",
        responsibility=responsibility,
        paid=D(paid),
    )
    return replace(base, **changes)


def claim(lines: tuple[ServiceLine, ...], *others: OtherPayer, pcn: str = "PCN0001", **changes: object) -> Claim:
    base = Claim(
        patient_control_number=pcn,
        total_charge=sum((ln.charge for ln in lines), D(0)),
        place_of_service="11",
        diagnoses=("E11.9", "I10"),
        subscriber=Subscriber(MOM, "XYZ123456789", group_number="GRP-7"),
        payer=BCBS,
        lines=lines,
        payer_responsibility="S",
        other_payers=others,
    )
    return replace(base, **changes)


def interchange(*claims: Claim) -> Interchange837:
    return Interchange837(
        submitter=Submitter("Acme Billing LLC", "ACME0001", "Dana Clerk", "(217) 555-0100", "edi@acme.example"),
        receiver=Receiver("Example Clearinghouse", "CLEARHOUSE01"),
        billing_provider=BillingProvider(
            organization_name="Springfield Family Medicine",
            npi="1245319599",
            tax_id="37-1234567",
            address=CLINIC,
            taxonomy_code="207Q00000X",
        ),
        claims=claims,
        interchange_control_number=1301,
        group_control_number=89,
        first_transaction_control_number=1,
        created_at=datetime(2026, 12, 10, 14, 5),
        usage_indicator="T",
    )


# One line, 125.00: the primary paid 80, wrote off 25 (CO-45) and left 20 coinsurance (PR-2) to the patient.
ONE_LINE = (
    line(1, "125.00", adjudications=(adjudication(AETNA, "80.00", "99213", ("CO", "45", "25"), ("PR", "2", "20")),)),
)
# Two lines: CO-45 write-offs, deductible (PR-1) on line 1, coinsurance (PR-2) on line 2; 112.00 paid in all.
TWO_LINES = (
    line(
        1,
        "125.00",
        modifiers=("25",),
        adjudications=(
            adjudication(AETNA, "72.00", "99213", ("CO", "45", "28.00"), ("PR", "1", "25.00"), modifiers=("25",)),
        ),
    ),
    line(
        2,
        "80.00",
        "93000",
        diagnosis_pointers=(2,),
        adjudications=(
            adjudication(
                AETNA, "40.00", "93000", ("CO", "45", "30.00"), ("PR", "2", "10.00"), adjudication_date=PAID_ON_2
            ),
        ),
    ),
)
UNADJUDICATED = (line(1, "125.00"), line(2, "80.00", "93000", diagnosis_pointers=(2,)))


def _adjustments(*triples: tuple[str, str, str]) -> tuple[tuple[str, str, Decimal], ...]:
    return tuple((group, reason, D(amount)) for group, reason, amount in triples)


SCENARIOS: dict[str, Interchange837] = {
    "secondary_self": interchange(claim(ONE_LINE, prior(AETNA, "80.00"))),
    "secondary_dependent_other_subscriber": interchange(
        claim(
            ONE_LINE,
            prior(AETNA, "80.00", relationship_code="19"),  # the child is on mother's Aetna policy (primary)
            subscriber=Subscriber(DAD, "XYZ987654321", group_number="GRP-9"),  # ... and on father's BCBS
            relationship_code="19",
            patient=CHILD,
        )
    ),
    "two_lines_line_level": interchange(
        claim(TWO_LINES, prior(AETNA, "112.00", remaining_patient_liability=D("35.00")))
    ),
    "claim_level_only": interchange(
        claim(
            UNADJUDICATED,
            prior(
                AETNA,
                "112.00",
                claim_adjustments=_adjustments(("CO", "45", "58.00"), ("PR", "1", "25.00"), ("PR", "2", "10.00")),
                adjudication_date=PAID_ON,
                remaining_patient_liability=D("35.00"),
            ),
        )
    ),
    "claim_level_seven_reasons_split": interchange(
        claim(
            (line(1, "125.00"),),
            prior(
                AETNA,
                "113.00",
                claim_adjustments=_adjustments(
                    *[("CO", reason, "1.00") for reason in ("45", "253", "59", "97", "94", "131", "144")],
                    ("PR", "3", "5.00"),
                    ("PR", "2", "0.00"),  # zero: not sent
                ),
                adjudication_date=PAID_ON,
            ),
        )
    ),
    "line_and_claim_level_adjustments": interchange(
        claim(
            (line(1, "125.00", adjudications=(adjudication(AETNA, "100.00", "99213", ("CO", "45", "25.00")),)),),
            # TR3 1.4.4.1: AMT*D = line payments (100) - claim-level adjustments (2).
            prior(AETNA, "98.00", claim_adjustments=_adjustments(("CO", "253", "2.00"))),
        )
    ),
    "tertiary_both_line_level": interchange(
        claim(
            (
                line(
                    1,
                    "125.00",
                    adjudications=(
                        adjudication(AETNA, "80.00", "99213", ("CO", "45", "25.00"), ("PR", "2", "20.00")),
                        adjudication(
                            UHC, "15.00", "99213", ("OA", "23", "105.00"), ("PR", "2", "5.00"), adjudication_date=None
                        ),
                    ),
                ),
            ),
            prior(AETNA, "80.00", "P"),
            prior(
                UHC,
                "15.00",
                "S",
                subscriber=Subscriber(DAD, "U55501234"),
                relationship_code="01",  # spouse
                adjudication_date=PAID_ON_2,  # the line's DTP*573 falls back to it
            ),
            payer=MEDICAID,
            subscriber=Subscriber(MOM, "IL00012345"),
            payer_responsibility="T",
        )
    ),
    "tertiary_mixed_levels": interchange(
        claim(
            TWO_LINES,
            prior(AETNA, "112.00", "P", remaining_patient_liability=D("35.00")),
            prior(
                UHC,
                "30.00",
                "S",
                subscriber=Subscriber(DAD, "U55501234", group_number="UHC-1"),
                relationship_code="01",
                claim_adjustments=_adjustments(("OA", "23", "170.00"), ("PR", "2", "5.00")),
                adjudication_date=PAID_ON_2,
                remaining_patient_liability=D("5.00"),
            ),
            payer=MEDICAID,
            subscriber=Subscriber(MOM, "IL00012345"),
            payer_responsibility="T",
        )
    ),
    "secondary_and_primary_claims_together": interchange(
        claim((line(1, "60.00", "36415"),), pcn="PCN0000", payer_responsibility="P"),
        claim(ONE_LINE, prior(AETNA, "80.00")),
    ),
}


def segments_of(text: str, segment_id: str) -> list[Segment]:
    return [seg for seg in read_segments(text) if seg.id == segment_id]


def tags(text: str, pcn: str = "PCN0001") -> list[str]:
    """The claim's segments from CLM to the next HL or SE, as 'ID' or 'ID*qualifier' for qualified segments."""
    out: list[str] = []
    inside = False
    for seg in read_segments(text):
        if seg.id == "CLM":
            inside = seg.el(1) == pcn
        elif seg.id in ("HL", "SE"):
            inside = False
        if inside:
            out.append(f"{seg.id}*{seg.el(1)}" if seg.id in ("NM1", "AMT", "DTP", "REF", "CAS") else seg.id)
    return out


# Segments each loop may hold, in their TR3 order (a segment may repeat; CAS and N3/N4 do).
_LOOP_ORDER = {
    "2300": ["CLM", "REF*F8", "HI"],
    "2310B": ["NM1*82", "PRV"],
    "2320": ["SBR", "CAS", "AMT*D", "AMT*EAF", "OI"],
    "2330A": ["NM1*IL", "N3", "N4"],
    "2330B": ["NM1*PR", "N3", "N4", "DTP*573"],
    "2400": ["LX", "SV1", "DTP*472", "REF*6R"],
    "2420A": ["NM1*82", "PRV"],
    "2430": ["SVD", "CAS", "DTP*573", "AMT*EAF"],
}
# Which loop a segment opens, given the loop it follows.
_OPENS = {
    ("2300", "NM1*82"): "2310B",
    ("2300", "SBR"): "2320",
    ("2310B", "SBR"): "2320",
    ("2330B", "SBR"): "2320",
    ("2320", "NM1*IL"): "2330A",
    ("2330A", "NM1*PR"): "2330B",
    ("2400", "NM1*82"): "2420A",
    ("2400", "SVD"): "2430",
    ("2420A", "SVD"): "2430",
    ("2430", "SVD"): "2430",
}
_NEXT_LOOPS = {
    "2300": {"2310B", "2320", "2400"},
    "2310B": {"2320", "2400"},
    "2320": {"2330A"},
    "2330A": {"2330B"},
    "2330B": {"2320", "2400"},
    "2400": {"2420A", "2430", "2400"},
    "2420A": {"2430", "2400"},
    "2430": {"2430", "2400"},
}


def assert_loop_order(text: str, pcn: str = "PCN0001") -> list[str]:
    """Walk the claim's segments as the TR3 nests them; returns the loops in the order they were opened."""
    loop, position, loops = "2300", 0, ["2300"]
    for tag in tags(text, pcn):
        tag = "CAS" if tag.startswith("CAS*") else tag  # any group code
        opened = "2400" if tag == "LX" else _OPENS.get((loop, tag))
        if opened is not None:
            assert opened in _NEXT_LOOPS[loop], f"{tag} opens loop {opened} after loop {loop}: {tags(text, pcn)}"
            loop, position = opened, 0
            loops.append(loop)
        order = _LOOP_ORDER[loop]
        assert tag in order, f"{tag} does not belong in loop {loop}: {tags(text, pcn)}"
        assert order.index(tag) >= position, f"{tag} out of order in loop {loop}: {tags(text, pcn)}"
        position = order.index(tag)
    assert loop in ("2400", "2420A", "2430"), f"claim {pcn} ends in loop {loop}"
    return loops


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_cob_scenarios_validate_with_pyx12(tmp_path: Path, name: str) -> None:
    ic = SCENARIOS[name]
    text = write_837p(ic)
    path = tmp_path / f"{name}.837"
    path.write_text(text, encoding="ascii")
    ok, errors = pyx12_valid(path)
    assert ok, f"pyx12 rejected {name}:\n{errors}\n---\n{text}"
    assert "ERROR" not in errors, errors
    (parsed,) = parse_envelopes(read_segments(text))
    assert [seg.el(1) for ts in parsed.transactions for seg in ts.body if seg.id == "CLM"] == [
        c.patient_control_number for c in ic.claims
    ]
    for c in ic.claims:
        loops = assert_loop_order(text, c.patient_control_number)
        assert loops.count("2320") == loops.count("2330A") == loops.count("2330B") == len(c.other_payers)
        assert loops.count("2430") == sum(len(ln.adjudications) for ln in c.lines)


def test_secondary_self_layout() -> None:
    text = write_837p(SCENARIOS["secondary_self"])
    assert "SBR*S*18*GRP-7******BL~" in text  # the destination payer is the secondary
    assert tags(text) == [
        "CLM",
        "HI",
        "SBR",  # 2320: no claim-level CAS, this payer's adjustments are all on the line
        "AMT*D",
        "OI",
        "NM1*IL",  # 2330A
        "N3",
        "N4",
        "NM1*PR",  # 2330B: no DTP*573, the line carries it
        "N3",
        "N4",
        "LX",  # 2400
        "SV1",
        "DTP*472",
        "REF*6R",
        "SVD",  # 2430
        "CAS*CO",
        "CAS*PR",
        "DTP*573",
    ]
    lines = text.splitlines()
    start = lines.index("SBR*P*18*AET-55******CI~")
    assert lines[start : start + 9] == [
        "SBR*P*18*AET-55******CI~",
        "AMT*D*80~",
        "OI***Y***Y~",
        "NM1*IL*1*Smith*Joan*Q***MI*W123456789~",
        "N3*12 Elm St~",
        "N4*Springfield*IL*62704~",
        "NM1*PR*2*Aetna*****PI*60054~",
        "N3*PO Box 981106~",
        "N4*El Paso*TX*799981106~",
    ]
    start = lines.index("SVD*60054*80*HC:99213**1~")
    assert lines[start : start + 4] == [
        "SVD*60054*80*HC:99213**1~",
        "CAS*CO*45*25~",
        "CAS*PR*2*20~",
        "DTP*573*D8*20261120~",
    ]
    assert "AMT*EAF" not in text  # no remaining patient liability given
    # This payer adjudicated at line level: the dates are in 2430, none in 2330B.
    assert [s.el(1) for s in segments_of(text, "DTP")] == ["472", "573"]


def test_dependent_with_other_subscriber() -> None:
    text = write_837p(SCENARIOS["secondary_dependent_other_subscriber"])
    assert "HL*2*1*22*1~\nSBR*S**GRP-9******BL~\nNM1*IL*1*Smith*John****MI*XYZ987654321~" in text
    assert "HL*3*2*23*0~\nPAT*19~\nNM1*QC*1*Smith*Tim~" in text
    # 2320 SBR02 is the patient's relationship to the other policy's subscriber (the mother), who is 2330A.
    assert "SBR*P*19*AET-55******CI~" in text
    assert "NM1*IL*1*Smith*Joan*Q***MI*W123456789~" in text
    assert [s.el(1) for s in segments_of(text, "NM1") if s.el(1) in ("IL", "QC")] == ["IL", "QC", "IL"]


def test_two_lines_line_level_adjudication() -> None:
    text = write_837p(SCENARIOS["two_lines_line_level"])
    assert tags(text) == [
        "CLM",
        "HI",
        "SBR",
        "AMT*D",  # no claim-level CAS and no 2320 AMT*EAF: the liability goes per line
        "OI",
        "NM1*IL",
        "N3",
        "N4",
        "NM1*PR",
        "N3",
        "N4",
        "LX",
        "SV1",
        "DTP*472",
        "REF*6R",
        "SVD",
        "CAS*CO",
        "CAS*PR",
        "DTP*573",
        "AMT*EAF",
        "LX",
        "SV1",
        "DTP*472",
        "REF*6R",
        "SVD",
        "CAS*CO",
        "CAS*PR",
        "DTP*573",
        "AMT*EAF",
    ]
    assert [str(s) for s in segments_of(text, "AMT")] == ["AMT*D*112", "AMT*EAF*25", "AMT*EAF*10"]
    assert [(s.el(1), s.el(2), s.el(3), s.el(5)) for s in segments_of(text, "SVD")] == [
        ("60054", "72", "HC:99213:25", "1"),
        ("60054", "40", "HC:93000", "1"),
    ]
    assert [str(s) for s in segments_of(text, "CAS")] == [
        "CAS*CO*45*28",
        "CAS*PR*1*25",
        "CAS*CO*45*30",
        "CAS*PR*2*10",
    ]
    assert [str(s) for s in segments_of(text, "DTP") if s.el(1) == "573"] == [
        "DTP*573*D8*20261120",
        "DTP*573*D8*20261204",
    ]


def test_claim_level_only() -> None:
    text = write_837p(SCENARIOS["claim_level_only"])
    lines = text.splitlines()
    start = lines.index("SBR*P*18*AET-55******CI~")
    assert lines[start : start + 6] == [
        "SBR*P*18*AET-55******CI~",
        "CAS*CO*45*58~",
        "CAS*PR*1*25**2*10~",  # one CAS per group, reasons side by side
        "AMT*D*112~",
        "AMT*EAF*35~",
        "OI***Y***Y~",
    ]
    # 2330B carries the adjudication date when no line has a 2430.
    assert lines[start + 9 : start + 13] == [
        "NM1*PR*2*Aetna*****PI*60054~",
        "N3*PO Box 981106~",
        "N4*El Paso*TX*799981106~",
        "DTP*573*D8*20261120~",
    ]
    assert not segments_of(text, "SVD")


def test_more_than_six_reasons_in_a_group_take_a_second_cas() -> None:
    text = write_837p(SCENARIOS["claim_level_seven_reasons_split"])
    assert [str(s) for s in segments_of(text, "CAS")] == [
        "CAS*CO*45*1**253*1**59*1**97*1**94*1**131*1",
        "CAS*CO*144*1",
        "CAS*PR*3*5",
    ]


def test_tertiary_claims() -> None:
    text = write_837p(SCENARIOS["tertiary_both_line_level"])
    assert "SBR*T**" not in text and "SBR*T*18*******MC~" in text
    assert [(s.el(1), s.el(2)) for s in segments_of(text, "SBR")] == [("T", "18"), ("P", "18"), ("S", "01")]
    assert [(s.el(1), s.el(2)) for s in segments_of(text, "SVD")] == [("60054", "80"), ("87726", "15")]
    # The secondary's line has no date of its own: it takes the payer's.
    assert [s.el(3) for s in segments_of(text, "DTP") if s.el(1) == "573"] == ["20261120", "20261204"]
    assert assert_loop_order(text) == [
        "2300",
        "2320",
        "2330A",
        "2330B",
        "2320",
        "2330A",
        "2330B",
        "2400",
        "2430",
        "2430",
    ]

    text = write_837p(SCENARIOS["tertiary_mixed_levels"])
    loops = assert_loop_order(text)
    assert loops == ["2300", "2320", "2330A", "2330B", "2320", "2330A", "2330B", "2400", "2430", "2400", "2430"]
    # The primary adjudicated per line (its liability per 2430); the secondary only at claim level (2320 + DTP).
    assert [str(s) for s in segments_of(text, "AMT")] == [
        "AMT*D*112",
        "AMT*D*30",
        "AMT*EAF*5",
        "AMT*EAF*25",
        "AMT*EAF*10",
    ]
    assert [s.el(3) for s in segments_of(text, "DTP") if s.el(1) == "573"] == ["20261204", "20261120", "20261204"]
    assert [str(s) for s in segments_of(text, "NM1") if s.el(1) == "PR"] == [
        "NM1*PR*2*Illinois Medicaid*****PI*ILMCD",
        "NM1*PR*2*Aetna*****PI*60054",
        "NM1*PR*2*UnitedHealthcare*****PI*87726",
    ]


def test_claims_without_other_payers_are_unchanged() -> None:
    text = write_837p(SCENARIOS["secondary_and_primary_claims_together"])
    assert tags(text, "PCN0000") == ["CLM", "HI", "LX", "SV1", "DTP*472", "REF*6R"]
    assert [s.el(1) for s in segments_of(text, "SBR")] == ["P", "S", "P"]


# ---------------------------------------------------------------------------------------------------------------
# refused input


def _with_line_paid(paid: str) -> Claim:
    ln = ONE_LINE[0]
    return claim((replace(ln, adjudications=(replace(ln.adjudications[0], paid=D(paid)),)),), prior(AETNA, "80.00"))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            # line balances (70 + 25 + 30 = 125) but the payer's AMT*D is not the sum of its line payments
            claim(
                (line(1, "125.00", adjudications=(adjudication(AETNA, "70.00", "99213", ("CO", "45", "55")),)),),
                prior(AETNA, "80.00"),
            ),
            r"claim 'PCN0001': other_payers\[0\]\.paid: 80\.00 is not the sum of payer '60054'.s line adjudications' "
            r"paid amounts \(70\.00\)",
        ),
        (
            claim(TWO_LINES, prior(AETNA, "100.00")),
            r"other_payers\[0\]\.paid: 100\.00 is not the sum .* \(112\.00\)",
        ),
        (
            claim(
                (line(1, "125.00", adjudications=(adjudication(AETNA, "100.00", "99213", ("CO", "45", "25.00")),)),),
                prior(AETNA, "100.00", claim_adjustments=_adjustments(("CO", "253", "2.00"))),
            ),
            r"other_payers\[0\]\.paid: 100\.00 is not the sum .* \(100\.00\) minus its claim_adjustments \(2\.00\)",
        ),
        (
            claim(ONE_LINE, prior(UHC, "80.00")),
            r"claim 'PCN0001': lines\[0\]\.adjudications\[0\]\.payer_id: '60054' is not the payer_id of any of "
            r"other_payers \('87726'\)",
        ),
        (
            claim(ONE_LINE),
            r"lines\[0\]\.adjudications\[0\]\.payer_id: '60054' is not the payer_id of any of other_payers \(none\)",
        ),
        (
            _with_line_paid("79.00"),
            r"lines\[0\]\.adjudications: payer '60054': paid \+ adjustments = 124\.00, not the line charge 125\.00",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00"), payer_responsibility="P"),
            r"claim 'PCN0001': payer_responsibility: 'P' \(primary\) although other_payers",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00", "T")),
            r"other_payers\[0\]\.responsibility: 'T' comes after the claim's payer_responsibility 'S'",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00", "S")),
            r"other_payers\[0\]\.responsibility: 'S' is already another payer's place",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00"), prior(replace(UHC, payer_id="60054"), "0.00", "S")),
            r"other_payers\[1\]\.payer\.payer_id: '60054' is also other_payers\[0\]",
        ),
        (
            claim(UNADJUDICATED, prior(AETNA, "112.00", claim_adjustments=_adjustments(("CO", "45", "58.00")))),
            r"other_payers\[0\]\.adjudication_date: required \(2330B DTP\*573\) when the payer has no line",
        ),
        (
            claim(
                UNADJUDICATED,
                prior(
                    AETNA, "112.00", claim_adjustments=_adjustments(("CO", "45", "58.00")), adjudication_date=PAID_ON
                ),
            ),
            r"claim 'PCN0001': other_payers\[0\]: paid \+ claim and line adjustments of payer '60054' = 170\.00, "
            r"not the claim's total_charge 205\.00",
        ),
        (
            claim(
                (replace(ONE_LINE[0], adjudications=(replace(ONE_LINE[0].adjudications[0], adjudication_date=None),)),),
                prior(AETNA, "80.00"),
            ),
            r"lines\[0\]\.adjudications\[0\]\.adjudication_date: required \(2430 DTP\*573\) unless "
            r"other_payers\[0\]\.adjudication_date",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00", remaining_patient_liability=D("30.00"))),
            r"other_payers\[0\]\.remaining_patient_liability: 30\.00 is not the sum of the PR adjustments .* \(20\)",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00", relationship_code="99")),
            r"other_payers\[0\]\.relationship_code: '99'",
        ),
        (
            claim(
                UNADJUDICATED,
                prior(AETNA, "205.00", claim_adjustments=_adjustments(("XX", "45", "1.00")), adjudication_date=PAID_ON),
            ),
            r"other_payers\[0\]\.claim_adjustments\[0\]: group 'XX' is not one of CO, CR, OA, PI, PR",
        ),
        (
            claim(
                UNADJUDICATED,
                prior(
                    AETNA,
                    "195.00",
                    claim_adjustments=_adjustments(
                        *[("CO", str(reason), "1.00") for reason in range(1, 8)],  # 2 CAS
                        ("CR", "1", "0.50"),
                        ("CR", "2", "0.50"),
                        ("OA", "23", "1.00"),
                        ("PI", "45", "0.50"),
                        ("PR", "1", "0.50"),
                    ),
                    adjudication_date=PAID_ON,
                ),
            ),
            r"other_payers\[0\]\.claim_adjustments: needs 6 CAS segments .* at most 5",
        ),
        (
            claim(ONE_LINE, prior(AETNA, "80.00", subscriber=Subscriber(MOM, " "))),
            r"other_payers\[0\]\.subscriber\.member_id: required",
        ),
        (
            claim(
                (replace(ONE_LINE[0], adjudications=(replace(ONE_LINE[0].adjudications[0], units=D(-1)),)),),
                prior(AETNA, "80.00"),
            ),
            r"lines\[0\]\.adjudications\[0\]\.units",
        ),
        (
            claim(
                (replace(ONE_LINE[0], adjudications=ONE_LINE[0].adjudications * 16),),
                prior(AETNA, "80.00"),
            ),
            r"lines\[0\]\.adjudications: 16 line adjudications; at most 15",
        ),
    ],
)
def test_inconsistent_cob_claims_are_refused(bad: Claim, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        write_837p(interchange(bad))


def test_float_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match=r"other_payers\[0\]\.paid: must be a Decimal"):
        write_837p(interchange(claim(ONE_LINE, replace(prior(AETNA, "80.00"), paid=80.0))))
    with pytest.raises(
        ValueError, match=r"lines\[0\]\.adjudications\[0\]\.adjustments\[1\]\.amount: must be a Decimal"
    ):
        bad = replace(ONE_LINE[0].adjudications[0], adjustments=(("CO", "45", D(25)), ("PR", "2", 20.0)))
        write_837p(interchange(claim((replace(ONE_LINE[0], adjudications=(bad,)),), prior(AETNA, "80.00"))))
