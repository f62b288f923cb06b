"""837P writer: every scenario must pass pyx12 with no errors and read back through our own envelope reader; every
inconsistent input must be refused with a ValueError naming the claim and the field."""

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
    Payer,
    Person,
    Receiver,
    RenderingProvider,
    ServiceLine,
    Submitter,
    Subscriber,
    write_837p,
)
from integrations.x12.reader import Segment, parse_envelopes, read_segments
from tests.integrations.x12.pyx12_check import pyx12_valid

HOME = Address("12 Elm St", "Springfield", "IL", "62704")
CLINIC = Address("1 Clinic Way", "Springfield", "IL", "627011234", line2="Suite 200")
ADULT = Person("Smith", "Joan", date(1970, 3, 14), "F", HOME, middle_name="Q")
CHILD = Person("Smith", "Tim", date(2015, 7, 1), "M", HOME)
SUBSCRIBER = Subscriber(ADULT, "XYZ123456789", group_number="GRP-7")
PAYER = Payer("Blue Cross Blue Shield of Illinois", "BCBSIL", "BL")
DR_JONES = RenderingProvider("1497758544", "Jones", "Ann", taxonomy_code="207Q00000X")
DR_LEE = RenderingProvider("1861463961", "Lee", "Sam", taxonomy_code="208D00000X")


def line(n: int = 1, charge: str = "125.00", **changes: object) -> ServiceLine:
    base = ServiceLine(
        line_item_control_number=f"L{n}",
        procedure_code="99213",
        charge=Decimal(charge),
        units=Decimal("1"),
        date_of_service=date(2026, 11, 2),
        diagnosis_pointers=(1,),
    )
    return replace(base, **changes)


def claim(pcn: str = "PCN0001", lines: tuple[ServiceLine, ...] | None = None, **changes: object) -> Claim:
    lines = lines or (line(),)
    base = Claim(
        patient_control_number=pcn,
        total_charge=sum((ln.charge for ln in lines), Decimal(0)),
        place_of_service="11",
        diagnoses=("E11.9",),
        subscriber=SUBSCRIBER,
        payer=PAYER,
        lines=lines,
    )
    return replace(base, **changes)


def interchange(*claims: Claim, **changes: object) -> Interchange837:
    base = Interchange837(
        submitter=Submitter("Acme Billing LLC", "ACME0001", "Dana Clerk", "(217) 555-0100", "edi@acme.example"),
        receiver=Receiver("Example Clearinghouse", "CLEARHOUSE01"),
        billing_provider=BillingProvider(
            organization_name="Springfield Family Medicine",
            npi="1245319599",
            tax_id="37-1234567",
            address=CLINIC,
            taxonomy_code="207Q00000X",
        ),
        claims=claims or (claim(),),
        interchange_control_number=1201,
        group_control_number=88,
        first_transaction_control_number=1,
        created_at=datetime(2026, 11, 25, 9, 30),
        usage_indicator="T",
    )
    return replace(base, **changes)


def segments_of(text: str, segment_id: str) -> list[Segment]:
    return [seg for seg in read_segments(text) if seg.id == segment_id]


def write_and_validate(tmp_path: Path, ic: Interchange837, name: str = "claim.837") -> str:
    text = write_837p(ic)
    path = tmp_path / name
    path.write_text(text, encoding="ascii")
    ok, errors = pyx12_valid(path)
    assert ok, f"pyx12 rejected {name}:\n{errors}\n---\n{text}"
    assert "ERROR" not in errors, errors
    return read_back(ic, text)


def read_back(ic: Interchange837, text: str) -> str:
    """Our own reader must agree on the envelope (counts, control numbers) and find every claim."""
    interchanges = parse_envelopes(read_segments(text))
    assert len(interchanges) == 1
    assert interchanges[0].control_number == f"{ic.interchange_control_number:09d}"
    transactions = interchanges[0].transactions
    assert len(segments_of(text, "CLM")) == len(ic.claims)
    assert sum(1 for ts in transactions for seg in ts.body if seg.id == "CLM") == len(ic.claims)
    return text


SCENARIOS: dict[str, Interchange837] = {
    "self_single_line": interchange(),
    "dependent_child": interchange(claim(relationship_code="19", patient=CHILD)),
    "twelve_diagnoses_several_lines": interchange(
        claim(
            diagnoses=(
                "E11.9",
                "I10",
                "E78.5",
                "J45.909",
                "M54.5",
                "K21.9",
                "F41.1",
                "G43.909",
                "N39.0",
                "R51.9",
                "Z00.00",
                "E66.9",
            ),
            lines=(
                line(1, diagnosis_pointers=(1, 2, 3, 4)),
                line(2, "80.00", procedure_code="93000", diagnosis_pointers=(5, 6)),
                line(3, "35.50", procedure_code="36415", diagnosis_pointers=(12,)),
                line(4, "210.25", procedure_code="81003", diagnosis_pointers=(7, 8, 9, 10)),
                line(5, "12.00", procedure_code="85025", units=Decimal("1.5"), diagnosis_pointers=(11,)),
            ),
        )
    ),
    "modifiers_one_and_four": interchange(
        claim(
            lines=(
                line(1, modifiers=("25",)),
                line(2, "300.00", procedure_code="20610", modifiers=("RT", "59", "XS", "76")),
            )
        )
    ),
    "line_rendering_differs": interchange(
        claim(
            rendering_provider=DR_JONES,
            lines=(line(1, rendering_provider=DR_JONES), line(2, "60.00", rendering_provider=DR_LEE)),
        )
    ),
    "claim_rendering_provider": interchange(claim(rendering_provider=DR_JONES)),
    "replacement_7": interchange(claim(frequency_code="7", payer_claim_number="PAYERCLM123456")),
    "void_8": interchange(claim(frequency_code="8", payer_claim_number="PAYERCLM123456")),
    "pay_to_address": interchange(
        billing_provider=BillingProvider(
            "Springfield Family Medicine",
            "1245319599",
            "371234567",
            CLINIC,
            pay_to_address=Address("PO Box 99", "Springfield", "IL", "62705-0099"),
        )
    ),
    "several_claims": interchange(
        claim("PCN0001"),
        claim("PCN0002", relationship_code="19", patient=CHILD),
        claim("PCN0003", payer=replace(PAYER, address=Address("PO Box 1", "Chicago", "IL", "60601")), lines=(line(),)),
    ),
    "zip_plus_four_everywhere": interchange(
        claim(
            subscriber=replace(SUBSCRIBER, person=replace(ADULT, address=replace(HOME, postal_code="627041234"))),
            payer=replace(PAYER, address=Address("300 E Randolph St", "Chicago", "IL", "60601-5099")),
        )
    ),
    "line_place_of_service_differs": interchange(claim(lines=(line(1), line(2, "90.00", place_of_service="02")))),
    "five_digit_billing_zip": interchange(billing_provider=replace(interchange().billing_provider, address=HOME)),
    "chunked_5_claims_by_2": interchange(
        claim("PCN0001"),
        claim("PCN0002"),
        claim("PCN0003"),
        claim("PCN0004", relationship_code="19", patient=CHILD),
        claim("PCN0005"),
        max_claims_per_transaction=2,
        first_transaction_control_number=41,
    ),
    "no_group_number_medicare": interchange(
        claim(subscriber=Subscriber(ADULT, "1EG4TE5MK73"), payer=Payer("Medicare Part B", "00952", "MB"))
    ),
}


def scenario(name: str) -> str:
    """The scenario's file, read back; pyx12 validates each scenario once, in the parametrized test below."""
    return read_back(SCENARIOS[name], write_837p(SCENARIOS[name]))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_validate_with_pyx12(tmp_path: Path, name: str) -> None:
    write_and_validate(tmp_path, SCENARIOS[name], f"{name}.837")


def test_pyx12_helper_reports_why(tmp_path: Path) -> None:
    text = write_837p(interchange()).replace("DMG*D8*19700314*F~\n", "DMG*D8*19701314*F~\n")
    path = tmp_path / "bad_date.837"
    path.write_text(text, encoding="ascii")
    ok, errors = pyx12_valid(path)
    assert not ok
    assert "19701314" in errors or "DMG" in errors, errors


def test_self_subscriber_layout() -> None:
    text = scenario("self_single_line")
    lines = text.splitlines()
    assert lines[0].startswith("ISA*00*          *00*          *ZZ*ACME0001       *ZZ*CLEARHOUSE01   *261125*0930*")
    assert len(lines[0]) == 106  # fixed-width ISA including its terminator
    assert "GS*HC*ACME0001*CLEARHOUSE01*20261125*0930*88*X*005010X222A1~" in lines
    assert "ST*837*0001*005010X222A1~" in lines
    assert "BHT*0019*00*88-0001*20261125*0930*CH~" in lines
    assert "HL*1**20*1~" in lines
    assert "PRV*BI*PXC*207Q00000X~" in lines
    assert "N4*Springfield*IL*627011234~" in lines
    assert "REF*EI*371234567~" in lines
    assert "HL*2*1*22*0~" in lines
    assert "SBR*P*18*GRP-7******BL~" in lines
    assert "NM1*IL*1*Smith*Joan*Q***MI*XYZ123456789~" in lines
    assert "DMG*D8*19700314*F~" in lines
    assert "NM1*PR*2*Blue Cross Blue Shield of Illinois*****PI*BCBSIL~" in lines
    assert "CLM*PCN0001*125***11:B:1*Y*A*Y*Y~" in lines
    assert "HI*ABK:E119~" in lines
    assert "SV1*HC:99213*125*UN*1***1~" in lines
    assert "DTP*472*D8*20261102~" in lines
    assert "REF*6R*L1~" in lines
    assert "PER*IC*Dana Clerk*TE*2175550100*EM*edi@acme.example~" in lines
    assert not segments_of(text, "PAT")


def test_dependent_has_patient_loop() -> None:
    text = scenario("dependent_child")
    assert "HL*2*1*22*1~" in text
    assert "SBR*P**GRP-7******BL~" in text
    assert "HL*3*2*23*0~" in text
    assert "PAT*19~" in text
    assert "NM1*QC*1*Smith*Tim~" in text
    assert "DMG*D8*20150701*M~" in text
    # The subscriber's demographics are still written (situational for a dependent, but known).
    assert "DMG*D8*19700314*F~" in text


def test_diagnoses_pointers_and_amounts() -> None:
    text = scenario("twelve_diagnoses_several_lines")
    (hi,) = segments_of(text, "HI")
    assert hi.el(1) == "ABK:E119"
    assert [hi.component(n, 1) for n in range(2, 13)] == ["ABF"] * 11
    assert hi.component(4, 2) == "J45909" and hi.component(12, 2) == "E669"
    sv1 = segments_of(text, "SV1")
    assert [s.el(7) for s in sv1] == ["1:2:3:4", "5:6", "12", "7:8:9:10", "11"]
    assert [s.el(2) for s in sv1] == ["125", "80", "35.5", "210.25", "12"]
    assert sv1[4].el(4) == "1.5"
    assert segments_of(text, "CLM")[0].el(2) == "462.75"
    assert [s.el(1) for s in segments_of(text, "LX")] == ["1", "2", "3", "4", "5"]


def test_modifiers() -> None:
    text = scenario("modifiers_one_and_four")
    assert [s.el(1) for s in segments_of(text, "SV1")] == ["HC:99213:25", "HC:20610:RT:59:XS:76"]


def test_rendering_providers() -> None:
    text = scenario("line_rendering_differs")
    renderers = [s for s in segments_of(text, "NM1") if s.el(1) == "82"]
    # 2310B once for the claim, 2420A only for line 2 (line 1's renderer is the claim's).
    assert [(s.el(3), s.el(9)) for s in renderers] == [("Jones", "1497758544"), ("Lee", "1861463961")]
    assert [s.el(3) for s in segments_of(text, "PRV")] == ["207Q00000X", "207Q00000X", "208D00000X"]
    assert segments_of(text, "PRV")[1].el(1) == "PE"

    text = scenario("claim_rendering_provider")
    assert [s.el(9) for s in segments_of(text, "NM1") if s.el(1) == "82"] == ["1497758544"]


def test_replacement_and_void_carry_payer_claim_number() -> None:
    for name, frequency in (("replacement_7", "7"), ("void_8", "8")):
        text = scenario(name)
        assert segments_of(text, "CLM")[0].el(5) == f"11:B:{frequency}"
        assert "REF*F8*PAYERCLM123456~" in text
    original = write_837p(interchange(claim(payer_claim_number="PAYERCLM123456")))
    assert "REF*F8" not in original


def test_pay_to_and_zip_plus_four() -> None:
    text = scenario("pay_to_address")
    assert "NM1*87*2~\nN3*PO Box 99~\nN4*Springfield*IL*627050099~" in text
    text = scenario("zip_plus_four_everywhere")
    assert [s.el(3) for s in segments_of(text, "N4")] == ["627011234", "627041234", "606015099"]


def test_five_digit_billing_zip_is_written_and_pyx12_accepts_it() -> None:
    # The TR3 wants ZIP+4 for the billing provider; pyx12 4.0.0 does not check it, the scrubber does.
    text = scenario("five_digit_billing_zip")
    assert "N4*Springfield*IL*62704~" in text


def test_line_place_of_service_only_when_it_differs() -> None:
    text = scenario("line_place_of_service_differs")
    assert [s.el(5) for s in segments_of(text, "SV1")] == ["", "02"]


def test_several_claims_share_one_transaction() -> None:
    text = scenario("several_claims")
    assert [s.el(1) for s in segments_of(text, "CLM")] == ["PCN0001", "PCN0002", "PCN0003"]
    assert [(s.el(1), s.el(2), s.el(3)) for s in segments_of(text, "HL")] == [
        ("1", "", "20"),
        ("2", "1", "22"),
        ("3", "1", "22"),
        ("4", "3", "23"),
        ("5", "1", "22"),
    ]
    assert len(segments_of(text, "ST")) == 1


def test_chunked_into_three_transaction_sets() -> None:
    text = scenario("chunked_5_claims_by_2")
    (parsed,) = parse_envelopes(read_segments(text))
    (group,) = parsed.groups
    assert [ts.control_number for ts in group.transactions] == ["0041", "0042", "0043"]
    assert [sum(seg.id == "CLM" for seg in ts.segments) for ts in group.transactions] == [2, 2, 1]
    assert [ts.segments[1].el(3) for ts in group.transactions] == ["88-0041", "88-0042", "88-0043"]
    assert segments_of(text, "GE")[0].el(1) == "3"
    # Each transaction set starts its HL numbering again at the billing provider.
    assert [(ts.segments[5].id, ts.segments[5].el(1)) for ts in group.transactions] == [("HL", "1")] * 3


# ---------------------------------------------------------------------------------------------------------------
# refused input


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (claim(total_charge=Decimal("130.00")), r"claim 'PCN0001': total_charge: 130.00 is not the sum"),
        (claim(frequency_code="7"), r"claim 'PCN0001': payer_claim_number: required for frequency code 7"),
        (claim(frequency_code="8", payer_claim_number=" "), r"payer_claim_number: required for frequency code 8"),
        (claim(relationship_code="19"), r"claim 'PCN0001': patient: required when relationship_code is '19'"),
        (claim(diagnoses=tuple(f"Z00.{n:02d}" for n in range(13))), r"claim 'PCN0001': diagnoses: 13 diagnoses"),
        (claim(diagnoses=()), r"diagnoses: at least one diagnosis"),
        (claim(lines=(line(diagnosis_pointers=(2,)),)), r"lines\[0\]\.diagnosis_pointers: pointer 2 is outside 1\.\.1"),
        (claim(lines=(line(diagnosis_pointers=(0,)),)), r"lines\[0\]\.diagnosis_pointers: pointer 0 is outside"),
        (
            claim(diagnoses=("A", "B", "C", "D", "E"), lines=(line(diagnosis_pointers=(1, 2, 3, 4, 5)),)),
            r"lines\[0\]\.diagnosis_pointers: 5 pointers; at most 4",
        ),
        (claim(lines=(line(diagnosis_pointers=()),)), r"lines\[0\]\.diagnosis_pointers: at least one"),
        (claim(lines=(line(modifiers=("25", "59", "76", "77", "GT")),)), r"lines\[0\]\.modifiers: 5 modifiers"),
        (
            claim(lines=tuple(line(n, "1.00") for n in range(51))),
            r"claim 'PCN0001': lines: 51 service lines; the 837P allows at most 50",
        ),
        (replace(claim(), lines=(), total_charge=Decimal(0)), r"claim 'PCN0001': lines: a claim needs at least one"),
        (claim(lines=(line(charge="10.005"),)), r"10\.005 is not an amount in whole cents"),
        (claim(lines=(line(units=Decimal(0)),)), r"lines\[0\]\.units"),
        (claim(frequency_code="5"), r"frequency_code: '5'"),
        (claim(patient=CHILD), r"patient: differs from the subscriber"),
        (
            claim(service_date_range=(date(2026, 11, 3), date(2026, 11, 30))),
            r"lines\[0\]\.date_of_service: 2026-11-02 is outside",
        ),
        (
            claim(subscriber=replace(SUBSCRIBER, person=replace(ADULT, address=replace(HOME, postal_code="6270")))),
            r"subscriber\.person\.address\.postal_code: not a 5 or 9 digit",
        ),
        (claim(subscriber=replace(SUBSCRIBER, person=replace(ADULT, sex="X"))), r"subscriber\.person\.sex"),
    ],
)
def test_inconsistent_claims_are_refused(bad: Claim, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        write_837p(interchange(bad))


def test_float_charge_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lines\[0\]\.charge: must be a Decimal"):
        write_837p(interchange(replace(claim(), lines=(replace(line(), charge=125.0),))))


def test_duplicate_patient_control_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="'PCN0001': patient_control_number appears twice"):
        write_837p(interchange(claim(), claim()))


def test_delimiter_in_data_is_refused_naming_the_element() -> None:
    with pytest.raises(ValueError, match=r"NM103: the value contains the delimiter '\*'"):
        write_837p(interchange(claim(subscriber=replace(SUBSCRIBER, person=replace(ADULT, last_name="Smith*Jones")))))
    with pytest.raises(ValueError, match=r"CLM01: the value contains the delimiter '~'"):
        write_837p(interchange(claim("PCN~1")))


def test_non_ascii_is_refused_not_transliterated() -> None:
    with pytest.raises(ValueError, match=r"NM103: the value contains non-ASCII characters") as refused:
        write_837p(interchange(claim(subscriber=replace(SUBSCRIBER, person=replace(ADULT, last_name="Müller")))))
    # Exception text reaches logs and failed-job records: it names the element, never the patient's name.
    assert "Müller" not in str(refused.value)


def test_tax_id_and_phone_are_not_silently_mangled() -> None:
    provider = interchange().billing_provider
    with pytest.raises(ValueError, match=r"billing_provider.tax_id: not a 9 digit"):
        write_837p(interchange(billing_provider=replace(provider, tax_id="37-12345")))
    submitter = interchange().submitter
    with pytest.raises(ValueError, match=r"submitter.contact_phone: not a phone number"):
        write_837p(interchange(submitter=replace(submitter, contact_phone="217-555-0100 x12")))


def test_no_claims_is_refused() -> None:
    with pytest.raises(ValueError, match="no claims"):
        write_837p(replace(interchange(), claims=()))
