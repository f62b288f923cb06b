"""835 parser: every shared 835 fixture reads into remittances (claims, lines, adjustments, PLB) with the figures of
the file; balancing, content keys and malformed data are checked on edited copies of the TR3 examples."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from integrations.x12.reader import X12Error
from integrations.x12.remit835 import Remittance, content_key, parse_835
from tests.conftest import X12_FIXTURES

FIXTURES = X12_FIXTURES / "835"
NTH = "OopFactory.X12__835_5010_ExampleFromNth.txt"
DEIDENT_01 = "OopFactory.X12__835_4010_DeIdent_01.dat"
DEIDENT_02 = "OopFactory.X12__835_4010_DeIdent_02.dat"
EXAMPLE1 = "OopFactory.X12__835_5010_Example1.txt"
NEVADA = "affect-edi-835-parser__nevada_medicaid.txt"
DOLLARS = "badX12__X221-dollars-and-data-sent-together.edi"
MULTI = "badX12__X221-multiple-claims-single-check.edi"
BCNC = "edi-835-parser__blue_cross_nc_sample.txt"
EMEDNY = "edi-835-parser__emedny_sample.txt"
UHC = "edi-835-parser__united_healthcare_legacy_sample.txt"
MOOV = "moov-x12__example_5010_835_sample1.txt"
PYX12 = "pyx12__835_mult_loops.txt"
NEWLINES = "tastypackets-x12-parser__multi-line-not-delimited.edi"
PROFEE = "tastypackets-x12-parser__profee-multiple.edi"

# name -> (parse_835 keyword arguments, transaction sets, claims, service lines, PLB pairs).
# strict_balancing=False only where the file cannot balance: masked amounts (99999.99) or, for Example1 and the
# BCBS NC sample, required amounts left empty by the sample's author. check_counts=False only for the BCBS NC sample,
# whose SE01 says 33 for 32 segments (see test_reader BROKEN).
EXPECTED: dict[str, tuple[dict[str, bool], int, int, int, int]] = {
    NTH: ({"strict_balancing": False}, 3, 56, 91, 0),
    DEIDENT_01: ({"strict_balancing": False}, 1, 96, 365, 0),
    DEIDENT_02: ({"strict_balancing": False}, 6, 375, 1552, 1),
    EXAMPLE1: ({"strict_balancing": False}, 1, 10, 9, 1),
    NEVADA: ({}, 3, 3, 0, 6),
    DOLLARS: ({}, 1, 2, 0, 1),
    MULTI: ({}, 1, 9, 33, 0),
    BCNC: ({"strict_balancing": False, "check_counts": False}, 1, 1, 3, 0),
    EMEDNY: ({}, 1, 3, 10, 0),
    UHC: ({}, 1, 2, 5, 0),
    MOOV: ({"strict_balancing": False}, 2, 2, 2, 2),
    PYX12: ({}, 1, 1, 3, 0),
    NEWLINES: ({}, 1, 3, 10, 0),
    PROFEE: ({}, 156, 468, 1560, 0),
}


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> list[Remittance]:
    return parse_835(load(name), **EXPECTED[name][0])


def text(name: str) -> str:
    return load(name).decode("utf-8-sig")


def test_every_835_fixture_is_classified() -> None:
    assert {p.name for p in FIXTURES.iterdir() if p.is_file()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses(name: str) -> None:
    _, sets, claims, lines, plb_pairs = EXPECTED[name]
    remittances = parse(name)
    assert len(remittances) == sets
    assert sum(len(r.claims) for r in remittances) == claims
    assert sum(len(c.lines) for r in remittances for c in r.claims) == lines
    assert sum(len(r.provider_adjustments) for r in remittances) == plb_pairs
    for r in remittances:
        assert isinstance(r.total_payment, Decimal)
        assert all(isinstance(c.paid, Decimal) and isinstance(c.total_charge, Decimal) for c in r.claims)
        assert len(r.content_key) == 64


@pytest.mark.parametrize("name", sorted(n for n, (kw, *_) in EXPECTED.items() if kw.get("strict_balancing") is False))
def test_masked_fixtures_do_not_balance_strictly(name: str) -> None:
    kwargs = {k: v for k, v in EXPECTED[name][0].items() if k != "strict_balancing"}
    with pytest.raises(X12Error, match="835 does not balance"):
        parse_835(load(name), **kwargs)


@pytest.mark.parametrize("name", sorted(n for n, (kw, *_) in EXPECTED.items() if not kw))
def test_unmasked_fixtures_balance_with_no_warnings_but_envelope_ones(name: str) -> None:
    for r in parse_835(load(name)):
        assert all("does not match" in w for w in r.warnings), r.warnings


# ---------------------------------------------------------------------------------------------------------------
# per file


def test_example_from_nth() -> None:
    remittances = parse(NTH)  # BOM, indented lines, 3 interchanges, component '>'
    assert [r.interchange_control_number for r in remittances] == ["000000031", "000000032", "000000033"]
    assert [r.control_number for r in remittances] == ["8001", "9001", "10001"]
    assert [len(r.claims) for r in remittances] == [19, 23, 14]
    first = remittances[0]
    assert (first.sender_id, first.receiver_id) == ("MMISNEBR", "WWWWW")
    assert (first.handling_code, first.total_payment, first.credit_debit, first.payment_method) == (
        "I",
        Decimal("999.99"),
        "C",
        "ACH",
    )
    assert first.payment_date == date(2012, 2, 1) and first.production_date == date(2012, 1, 28)
    assert (first.trace_number, first.payer_identifier) == ("999999999", "9999999999")
    assert (first.payee_npi, first.payee_tax_id) == ("9999999999", "999999999")
    assert remittances[2].total_payment == Decimal("482.13")
    statuses = Counter(c.status_code for r in remittances for c in r.claims)
    assert statuses == {"1": 39, "4": 16, "2": 1}
    assert sum(c.is_denied for r in remittances for c in r.claims) == 16
    claim = first.claims[0]
    assert (claim.status_text, claim.total_charge, claim.paid, claim.patient_responsibility) == (
        "Denied",
        Decimal("999.99"),
        Decimal("0"),
        Decimal("0"),
    )
    assert (claim.filing_indicator, claim.facility_code, claim.frequency) == ("MC", "11", "1")
    assert claim.patient is not None and claim.patient.name == "DAK"
    assert claim.corrected_insured is not None and claim.corrected_insured.middle_name == "N"
    assert (claim.statement_from, claim.statement_to, claim.received_date) == (
        date(2012, 1, 16),
        date(2012, 1, 16),
        date(2012, 1, 27),
    )
    line = claim.lines[1]
    assert (line.procedure_qualifier, line.procedure_code, line.units) == ("HC", "90716", Decimal("9.999"))
    assert line.line_item_control_number == "999X999999999999999999"
    assert line.remark_codes == ["N1"]
    adj = line.adjustments[0]
    assert (adj.group, adj.reason, adj.amount, adj.quantity) == ("CO", "24", Decimal("99.99"), Decimal("0"))
    assert adj.segment_position == 31
    # Masked amounts cannot balance: every failure is a warning naming its segment.
    assert first.warnings[:2] == [
        "transaction set 8001 at segment 4 (BPR): total payment 999.99 ≠ claims paid 776.06 "
        "- provider adjustments 0.00",
        "claim 9999999999-999 at segment 18 (CLP): charge 999.99 ≠ paid 0.00 + adjustments 1099.98",
    ]
    assert sum(len(r.warnings) for r in remittances) == 104


def test_profee_multiple_156_interchanges() -> None:
    remittances = parse(PROFEE)
    assert len({r.interchange_control_number for r in remittances}) == 1  # the same interchange, 156 times
    assert len({r.content_key for r in remittances}) == 1  # hence one content key: duplicates are detectable
    assert sum(r.total_payment for r in remittances) == Decimal("45.75") * 156
    assert [r.segment_position for r in remittances[:3]] == [3, 72, 141]


def test_newline_terminator_reads_like_the_tilde_file() -> None:
    (newline,) = parse(NEWLINES)
    (tilde,) = parse(EMEDNY)
    assert newline.content_key == tilde.content_key
    assert [c.paid for c in newline.claims] == [Decimal("34.25"), Decimal("0"), Decimal("11.5")]


def test_emedny() -> None:
    (r,) = parse(EMEDNY)
    assert (r.payer_name, r.payee_name, r.payee_npi, r.payee_tax_id) == (
        "NYSDOH",
        "MAJOR MEDICAL PROVIDER",
        "9999999995",
        "000000000",
    )
    assert r.references == {"EV": ["ETIN"]}
    first, denied_lines, partial = r.claims
    # The same CLP01 on every claim: positions tell them apart.
    assert {c.patient_control_number for c in r.claims} == {"PATIENT ACCOUNT NUMBER"}
    assert [c.segment_position for c in r.claims] == [15, 34, 46]
    assert first.amounts == {"AU": Decimal("34.25")}
    assert first.references == {"EA": ["PATIENT ACCOUNT NUMBER"]}
    line = first.lines[0]
    assert (line.procedure, line.modifiers, line.charge, line.paid, line.allowed) == (
        "HC:V2020:RB",
        ["RB"],
        Decimal("6"),
        Decimal("6"),
        Decimal("6"),
    )
    assert first.lines[3].units == Decimal("2")
    assert denied_lines.status_code == "2" and denied_lines.paid == 0
    assert [a.reason for line in denied_lines.lines for a in line.adjustments] == ["29", "29"]
    assert [line.remark_codes for line in partial.lines] == [[], [], ["N206"], ["N206"]]
    assert partial.lines[2].allowed is None  # AMT*B6 may be absent
    assert partial.lines[1].service_date == date(2013, 9, 17)
    assert partial.corrected_insured is not None and partial.corrected_insured.name == "CORRECTED LAST"


def test_nevada_collapsed_isa_and_plb_only_set() -> None:
    remittances = parse(NEVADA)
    assert [r.control_number for r in remittances] == ["0001", "0002", "0003"]
    assert [(r.handling_code, r.total_payment, r.payment_method) for r in remittances] == [
        ("H", Decimal("0"), "NON"),
        ("H", Decimal("0"), "NON"),
        ("I", Decimal("1812.27"), "CHK"),
    ]
    # The masked IEA02 contradicts ISA13: kept as a warning, the content is intact.
    assert remittances[0].warnings == [
        "segment 67 (IEA), element 2: IEA02 '100000301' does not match ISA13 '100000300' (segment 1)"
    ]
    claim = remittances[0].claims[0]
    assert (claim.status_code, claim.total_charge, claim.lines) == ("4", Decimal("72232"), [])
    # No SVC lines: only the claim-level CAS balance the claim.
    assert [(a.group, a.reason, a.amount, a.quantity) for a in claim.adjustments] == [
        ("OA", "147", Decimal("50016"), Decimal("0")),
        ("CO", "26", Decimal("22216"), Decimal("0")),
    ]
    assert claim.corrected_priority_payer is not None
    assert (claim.corrected_priority_payer.name, claim.corrected_priority_payer.identifier) == ("PACIFI", "9999")
    assert claim.other_subscriber is not None and claim.other_subscriber.name == "BARRY"
    assert claim.references == {"EA": ["8888888"]}
    plb_only = remittances[2]
    assert plb_only.claims == []
    pairs = [(p.reason, p.reference, p.amount, p.pair) for p in plb_only.provider_adjustments]
    assert pairs == [
        ("CT", "888888888", Decimal("-1092.46"), 1),
        ("CT", "888888888", Decimal("-719.81"), 2),
        ("CS", "8888888888887", Decimal("-181.55"), 3),
        ("CS", "8888888888887", Decimal("181.55"), 4),
        ("CS", "8888888888888", Decimal("-130"), 5),
        ("CS", "8888888888888", Decimal("130"), 6),
    ]
    assert {(p.provider_id, p.fiscal_period_date, p.segment_position) for p in plb_only.provider_adjustments} == {
        ("8888888888", date(2018, 12, 31), 64)
    }
    assert plb_only.provider_adjustment_total == Decimal("-1812.27")  # negative PLB: money added to the payment


def test_moov_negative_payment_offset_by_plb() -> None:
    first, second = parse(MOOV)
    assert (first.sender_id, first.receiver_id) == ("54704", "PB000022")  # left-padded in the ISA
    assert (first.total_payment, first.handling_code, first.payment_method) == (Decimal("-6173.5"), "H", "NON")
    (plb,) = first.provider_adjustments
    assert (plb.provider_id, plb.reason, plb.reference, plb.amount) == ("NPI Number", "50", "111", Decimal("6173.5"))
    assert first.claims_paid - first.provider_adjustment_total == first.total_payment
    # The masked claim's line pays 0.01 where the claim pays 0: the one failure, as a warning.
    assert first.warnings == ["claim 9999999 at segment 18 (CLP): charge 385.21 ≠ paid 0.00 + adjustments 385.20"]
    assert second.warnings == []
    line = first.claims[0].lines[0]
    assert (line.revenue_code, line.units, line.paid, line.line_item_control_number) == (
        "0424",
        Decimal("1"),
        Decimal("0.01"),
        "1",
    )
    claim = first.claims[0]
    assert claim.insured is not None and claim.insured.first_name == "HARRY"
    assert claim.rendering_provider is not None and claim.rendering_provider.name == "JEANES HOSPITAL"
    assert (claim.facility_code, claim.frequency, claim.patient_responsibility) == ("13", "2", Decimal("385.20"))
    assert first.payee_tax_id == "Federal Tax ID"
    assert first.content_key != second.content_key


def test_blue_cross_nc_st_only_with_svc06() -> None:
    (r,) = parse(BCNC)
    assert (r.sender_id, r.interchange_control_number, r.segment_position) == ("", "", 1)
    assert (r.payee_npi, r.payee_tax_id, r.production_date) == ("0987654321", "123456789", date(2011, 1, 4))
    assert r.references == {"F2": ["LCLA438D"]}
    (claim,) = r.claims
    assert claim.patient is not None and claim.patient.identifier == "YPB123456789001"
    assert claim.received_date == date(2011, 1, 3)
    recoded = [
        (line.procedure_code, line.original_procedure_qualifier, line.original_procedure_code) for line in claim.lines
    ]
    assert recoded == [("59430", "HC", "59410"), ("59440", "HC", "59410"), ("59426", "", "")]
    assert [line.line_item_control_number for line in claim.lines] == ["0001", "0002", "0003"]
    assert [line.allowed for line in claim.lines] == [Decimal("1175.4"), None, Decimal("742")]
    assert claim.adjustment_total == Decimal("177.14") and claim.paid + claim.adjustment_total == claim.total_charge
    assert r.warnings == [
        "segment 32 (SE), element 1: SE01 says 33 segments but the transaction set has 32 (ST through SE)",
        "segment 28 (SVC): SVC has 10 elements, at most 7 are defined; the rest is ignored",
        "line HC:59426 of claim 200200964A52 at segment 28 (SVC): SVC02 (line charge) is empty",
        "line HC:59426 of claim 200200964A52 at segment 28 (SVC): SVC03 (line payment) is empty",
    ]
    with pytest.raises(X12Error, match="SE01 says 33 segments") as exc:
        parse_835(load(BCNC))  # counts are strict by default
    assert exc.value.segment_position == 32


def test_tr3_multiple_claims_single_check() -> None:
    (r,) = parse(MULTI)
    assert (r.total_payment, r.payment_method, r.payment_date) == (Decimal("810.8"), "CHK", date(2014, 3, 31))
    assert (r.payer_name, r.payee_name, r.payee_tax_id, r.payee_npi) == (
        "DENTAL OF ABC",
        "BAN DDS LLC",
        "999994703",
        None,
    )
    assert r.claims_paid == Decimal("810.8")
    assert [c.header_number for c in r.claims] == [str(n) for n in range(1, 10)]
    third = r.claims[2]
    assert (third.paid, third.patient_responsibility) == (Decimal("108"), Decimal("24"))
    assert [(a.group, a.reason, a.amount) for a in third.lines[1].adjustments] == [
        ("PR", "3", Decimal("14")),
        ("CO", "131", Decimal("11")),
    ]
    assert third.lines[0].procedure == "AD:D0120" and third.lines[0].service_date == date(2014, 3, 24)
    assert r.claims[1].insured is not None and r.claims[1].insured.identifier == "123456"
    assert r.claims[3].lines[1].allowed is None


def test_tr3_dollars_and_data() -> None:
    (r,) = parse(DOLLARS)
    assert (r.handling_code, r.total_payment, r.payment_method) == ("C", Decimal("150000"), "ACH")
    assert (r.payer_id, r.payee_npi, r.production_date) == ("999", "6543210903", date(2002, 9, 16))
    assert [c.paid for c in r.claims] == [Decimal("138018.4"), Decimal("11980.33")]
    (plb,) = r.provider_adjustments
    assert (plb.reason, plb.reference, plb.amount, plb.fiscal_period_date) == (
        "CV",
        "CP",
        Decimal("-1.27"),
        date(2002, 12, 31),
    )
    assert [c.remark_codes for c in r.claims] == [[], ["MA02"]]  # MOA*** MA02
    assert r.claims[0].quantities == {"CA": Decimal("8")}
    assert r.claims[0].payer_claim_number == "1999999444444"


def test_pyx12_mult_loops() -> None:
    (r,) = parse(PYX12)
    (claim,) = r.claims
    assert (r.handling_code, r.total_payment, r.payment_method, r.payee_tax_id) == ("H", 0, "NON", "444313000")
    assert claim.is_denied and claim.status_text == "Denied"
    assert [(line.units, line.service_period_start, line.service_period_end) for line in claim.lines] == [
        (Decimal("68"), date(2003, 11, 29), date(2003, 11, 29)),
        (Decimal("16"), date(2003, 10, 30), date(2003, 10, 30)),
        (Decimal("36"), date(2003, 10, 31), date(2003, 10, 31)),
    ]
    assert [line.adjustments[0].group for line in claim.lines] == ["CO", "OA", "OA"]
    assert [line.remark_codes for line in claim.lines] == [["N14"]] * 3


def test_united_healthcare() -> None:
    (r,) = parse(UHC)  # component separator '>'
    assert (r.payer_id, r.payer_name, r.trace_number) == ("87726", "UNITED HEALTHCARE INSURANCE COMPANY", "1234567890")
    assert (r.payee_npi, r.payee_tax_id) == ("1922164458", "333333333")
    second = r.claims[1]
    line = second.lines[2]
    assert (line.procedure_qualifier, line.procedure_code, line.units) == ("HC", "B4154", Decimal("178"))
    # 'CAS*PR*2*5.13**1*110': two triplets, the first without quantity.
    assert [(a.group, a.reason, a.amount, a.quantity) for a in line.adjustments] == [
        ("PR", "2", Decimal("5.13"), None),
        ("PR", "1", Decimal("110"), None),
        ("CO", "45", Decimal("184.32"), None),
    ]
    assert (line.line_item_control_number, line.allowed) == ("123456789014", Decimal("144.18"))
    assert second.references == {"1L": ["12345"], "CE": ["ILLINOIS DEPARTMENT OF CMS"]}
    assert (second.total_charge, second.paid, second.patient_responsibility) == (
        Decimal("816.24"),
        Decimal("261.07"),
        Decimal("115.13"),
    )


def test_deident_01_reversals_and_cr_group() -> None:
    (r,) = parse(DEIDENT_01)
    reversals = [c for c in r.claims if c.is_reversal]
    assert len(reversals) == 19
    assert all(c.total_charge < 0 and c.status_text == "Reversal of previous payment" for c in reversals)
    groups = Counter(a.group for c in r.claims for line in c.lines for a in line.adjustments)
    assert groups["CR"] == 69
    assert sum(c.corrected_insured is not None for c in r.claims) == 26
    assert sum(1 for c in r.claims for line in c.lines if line.line_item_control_number) == 344
    assert all(line.references["HPI"] for c in r.claims for line in c.lines)
    assert all(w.endswith(tuple("0123456789")) for w in r.warnings)  # balancing failures only, figures last


def test_deident_02_crossovers_moa_svc06_and_masked_st02() -> None:
    remittances = parse(DEIDENT_02)
    assert [(r.handling_code, r.payment_method) for r in remittances][0] == ("H", "NON")
    claims = [c for r in remittances for c in r.claims]
    crossovers = [c for c in claims if c.status_code == "19"]
    assert len(crossovers) == 292
    assert sum(c.crossover_payer is not None for c in claims) == 300
    assert all(c.remark_codes for c in claims)  # MOA on every claim
    assert claims[0].remark_codes == ["XX99", "XX99"]
    recoded = [line for c in claims for line in c.lines if line.recoded]
    assert [(line.procedure, line.original_procedure_code) for line in recoded] == [
        ("XX:99999:99:99", "99999"),
        ("XX:99999:99", "99999"),
    ]
    assert sum(c.is_reversal for c in claims) == 8
    assert remittances[-1].warnings[0] == (
        "segment 13000 (SE), element 2: SE02 '999999999' does not match ST02 '9999999996' (segment 12772)"
    )
    # The SE02 mismatch belongs to the last set only; GE/IEA ones to every set of the interchange.
    assert not any("SE02" in w for r in remittances[:-1] for w in r.warnings)
    (plb,) = [p for r in remittances for p in r.provider_adjustments]
    assert (plb.reason, plb.amount) == ("XX", Decimal("99.99"))


def test_example1_statuses_reversals_and_multi_triplet_cas() -> None:
    (r,) = parse(EXAMPLE1)
    assert [c.status_code for c in r.claims] == ["1", "4", "4", "2", "4", "1", "25", "22", "22", "22"]
    assert r.claims[6].status_text == "Predetermination pricing only - no payment"
    reversal = r.claims[7]
    assert (reversal.total_charge, reversal.paid, reversal.lines[0].units) == (
        Decimal("-42.58"),
        Decimal("-42.58"),
        Decimal("-2"),
    )
    assert [(a.group, a.reason) for a in reversal.lines[0].adjustments] == [
        ("CR", "141"),
        ("CR", "42"),
        ("CR", "22"),
        ("OA", "141"),
    ]
    assert r.claims[4].lines[0].adjustments[-1].amount == Decimal("-1.08")
    # The same CLP01 for a reversal and a bare CLP*090909*22: two claims, told apart by position.
    same = [c for c in r.claims if c.patient_control_number == "090909"]
    assert [c.segment_position for c in same] == [85, 98]
    assert [c.references["F8"] for c in r.claims[:2]] == [["A76B04054"], ["H57B10401"]]
    (plb,) = r.provider_adjustments
    assert (plb.reason, plb.reference, plb.amount) == ("CV", "9876514", Decimal("-1.27"))
    assert r.warnings == [
        "transaction set 07504123 at segment 4 (BPR): total payment 5.75 ≠ claims paid 5.75 "
        "- provider adjustments -1.27",
        "claim 090909 at segment 98 (CLP): CLP03 (total charge) is empty",
        "claim 090909 at segment 98 (CLP): CLP04 (payment) is empty",
    ]


# ---------------------------------------------------------------------------------------------------------------
# balancing, content key and malformed data, on edited copies of the TR3 example

ISA = "ISA*00*          *00*          *ZZ*123456789      *ZZ*987654321      *140401*0820*^*00501*{isa13}*0*P*:~"


def body(name: str = MULTI) -> list[str]:
    """The segments strictly between ST and SE, as text."""
    segments = [s.strip() for s in text(name).split("~") if s.strip()]
    start = next(i for i, s in enumerate(segments) if s.startswith("ST*"))
    end = next(i for i, s in enumerate(segments) if s.startswith("SE*"))
    return segments[start + 1 : end]


def wrap(segments: list[str], *, isa13: str = "000000195", st_type: str = "835") -> str:
    """An interchange around `segments` with correct counts and control numbers."""
    st = [f"ST*{st_type}*35681", *segments, f"SE*{len(segments) + 2}*35681"]
    return "\n".join(
        [
            ISA.format(isa13=isa13),
            "GS*HP*3123456789*987654321*20140401*0820*278*X*005010X221A1~",
            *(s + "~" for s in st),
            "GE*1*278~",
            f"IEA*1*{isa13}~",
        ]
    )


def replace(segments: list[str], old: str, new: str) -> list[str]:
    """`segments` with the first segment equal to `old` replaced by `new`."""
    index = segments.index(old)
    return [*segments[:index], new, *segments[index + 1 :]]


def test_wrapped_tr3_body_parses_and_balances() -> None:
    (r,) = parse_835(wrap(body()))
    assert r.claims_paid == r.total_payment == Decimal("810.8")
    assert r.warnings == []


def test_balancing_failure_names_segment_and_figures() -> None:
    data = wrap(
        replace(body(), "CLP*7722337*1*226*132**12*119932404007801", "CLP*7722337*1*230*132**12*119932404007801")
    )
    with pytest.raises(X12Error) as exc:
        parse_835(data)
    assert exc.value.segment_position == 13 and exc.value.segment_id == "CLP"
    assert "claim 7722337 at segment 13 (CLP): charge 230.00 ≠ paid 132.00 + adjustments 94.00" in str(exc.value)
    (r,) = parse_835(data, strict_balancing=False)
    assert r.warnings == ["claim 7722337 at segment 13 (CLP): charge 230.00 ≠ paid 132.00 + adjustments 94.00"]
    assert r.claims[0].total_charge == Decimal("230")


def test_every_balancing_failure_in_one_error() -> None:
    segments = replace(body(), "CLP*7722337*1*226*132**12*119932404007801", "CLP*7722337*1*226*133**12*119932404007801")
    segments = replace(segments, "SVC*AD:D0120*46*25", "SVC*AD:D0120*47*25")  # the first claim's first line
    with pytest.raises(X12Error) as exc:
        parse_835(wrap(segments))
    message = str(exc.value)
    assert exc.value.segment_position == 4 and exc.value.segment_id == "BPR"  # the first failure in the file
    assert "835 does not balance (3 failure(s))" in message
    assert (
        "transaction set 35681 at segment 4 (BPR): total payment 810.80 ≠ claims paid 811.80 "
        "- provider adjustments 0.00" in message
    )
    assert "claim 7722337 at segment 13 (CLP): charge 226.00 ≠ paid 133.00 + adjustments 94.00" in message
    assert (
        "line AD:D0120 of claim 7722337 at segment 17 (SVC): charge 47.00 ≠ paid 25.00 + adjustments 21.00" in message
    )
    (r,) = parse_835(wrap(segments), strict_balancing=False)
    assert [w.split(" at segment ")[1].split(":")[0] for w in r.warnings] == ["4 (BPR)", "13 (CLP)", "17 (SVC)"]


def test_plb_counts_in_the_set_balance() -> None:
    # 810.80 paid on claims, less a 10.80 recoupment (WO) of an earlier claim: 800.00 paid.
    segments = replace(body(), "BPR*I*810.8*C*CHK************20140331", "BPR*I*800*C*CHK************20140331")
    (r,) = parse_835(wrap([*segments, "PLB*1811901945*20141231*WO:CLAIM123*10.8"]))
    (plb,) = r.provider_adjustments
    assert (plb.reason, plb.reference, plb.amount) == ("WO", "CLAIM123", Decimal("10.8"))
    with pytest.raises(X12Error, match="claims paid 810.80 - provider adjustments 0.00"):
        parse_835(wrap(segments))


def test_content_key_ignores_the_envelope_and_delimiters() -> None:
    (original,) = parse(MULTI)
    (rewrapped,) = parse_835(wrap(body(), isa13="000000999"))
    assert rewrapped.interchange_control_number == "000000999"
    assert rewrapped.content_key == original.content_key
    # Other delimiters ('|' element, '>' component, newline terminator) and no envelope at all: the same set.
    other = text(MULTI).replace("*", "|").replace(":", ">").replace("~", "\n")
    assert parse_835(other)[0].content_key == original.content_key
    st_only = "~".join(["ST*835*35681", *body(), f"SE*{len(body()) + 2}*35681"])
    assert parse_835(st_only)[0].content_key == original.content_key
    # Any changed amount (balanced or not) changes the key.
    changed = replace(body(), "AMT*B6*25", "AMT*B6*26")
    assert parse_835(wrap(changed))[0].content_key != original.content_key


def test_content_key_of_segments() -> None:
    from integrations.x12.reader import read_segments

    a = read_segments("ST*835*1~BPR*I*1*C*CHK~SE*3*1~")
    b = read_segments("ST*835*1~BPR*I*1*C*CHK*~SE*3*1~")  # a trailing empty element carries nothing
    assert content_key(a) == content_key(b)


# ---------------------------------------------------------------------------------------------------------------
# malformed


def raises_at(data: str, position: int, fragment: str, element: int | None = None) -> X12Error:
    with pytest.raises(X12Error) as exc:
        parse_835(data)
    assert exc.value.segment_position == position, str(exc.value)
    assert fragment in str(exc.value)
    if element is not None:
        assert exc.value.element == element
    return exc.value


def test_incomplete_cas_triplet() -> None:
    raises_at(wrap(replace(body(), "CAS*CO*131*21", "CAS*CO*131")), 19, "reason '131' has no amount", 3)
    raises_at(wrap(replace(body(), "CAS*CO*131*21", "CAS*CO*131*21**45")), 19, "triplet 2", 6)
    raises_at(wrap(replace(body(), "CAS*CO*131*21", "CAS*CO**21")), 19, "without a reason code", 2)
    many = "CAS*CO" + "*45*1*1" * 7
    raises_at(wrap(replace(body(), "CAS*CO*131*21", many)), 19, "at most 6 reason triplets")


def test_non_numeric_amounts() -> None:
    raises_at(wrap(replace(body(), "CAS*CO*131*21", "CAS*CO*131*2I")), 19, "not a decimal amount: '2I'", 3)
    clp = "CLP*7722337*1*226*132**12*119932404007801"
    raises_at(wrap(replace(body(), clp, clp.replace("*132*", "*13,2*"))), 13, "not a decimal amount", 4)
    raises_at(wrap(replace(body(), "SVC*AD:D0120*46*25", "SVC*AD:D0120*46*abc")), 17, "not a decimal amount", 3)
    bpr = "BPR*I*810.8*C*CHK************20140331"
    raises_at(wrap(replace(body(), bpr, bpr.replace("810.8", "810.8.0"))), 4, "not a decimal amount", 2)


def test_svc_outside_a_claim() -> None:
    segments = body()
    index = segments.index("LX*1")
    segments.insert(index + 1, "SVC*HC:99213*100*80")
    raises_at(wrap(segments), 13, "SVC outside a claim")
    raises_at(wrap(replace(body(), "LX*1", "CAS*CO*45*10")), 12, "CAS outside a claim")


def test_header_defects() -> None:
    segments = body()
    clp_index = segments.index("CLP*7722337*1*226*132**12*119932404007801")
    payer_index = segments.index("N1*PR*DENTAL OF ABC")
    early = [*segments[:payer_index], segments[clp_index], *segments[payer_index:]]
    raises_at(wrap(early), 7, "CLP before the 835 header is complete: no payer identification (N1*PR)")
    no_payee = [s for s in segments if not s.startswith("N1*PE")]
    raises_at(wrap(no_payee), 11, "no payee identification (N1*PE)")
    no_trn = [s for s in segments if not s.startswith("TRN")]
    raises_at(wrap(no_trn), 6, "no TRN")
    no_bpr = [s for s in segments if not s.startswith("BPR")]
    raises_at(wrap(no_bpr), 4, "835 has no BPR")
    raises_at(wrap([segments[0]]), 5, "no TRN")


def test_plb_defects() -> None:
    base = body(DOLLARS)
    plb = "PLB*6543210903*20021231*CV:CP*-1.27"
    segments = [s for s in base if not s.startswith("SE")]
    position = 3 + segments.index(plb) + 1
    raises_at(wrap(replace(segments, plb, "PLB*6543210903*20021231*CV:CP")), position, "has no amount", 4)
    raises_at(wrap(replace(segments, plb, "PLB*6543210903*20021231**-1.27")), position, "without a reason code", 3)
    raises_at(wrap(replace(segments, plb, "PLB*6543210903*20021231")), position, "PLB has no adjustment")
    after = [*segments, "CLP*1*1*10*10**MB"]
    raises_at(wrap(after), position + 1, "CLP after PLB")


def test_not_an_835() -> None:
    raises_at(text_of("999/OopFactory.X12__999_DHS_Wisconsin_Sample.txt"), 3, "not an 835 transaction set", 1)
    raises_at(wrap(body(), st_type="277"), 3, "ST01 is '277'", 1)


def test_truncated_file() -> None:
    data = wrap(body())
    cut = data[: data.index("LX*5")]
    with pytest.raises(X12Error, match="truncated"):
        parse_835(cut)


def test_invalid_date_is_a_warning() -> None:
    (r,) = parse_835(wrap(replace(body(), "DTM*472*20140324", "DTM*472*20140231")))
    assert r.claims[0].lines[0].service_date is None
    assert r.warnings == ["segment 18 (DTM), element 2: not a valid date: '20140231'"]


def text_of(relative: str) -> str:
    return (X12_FIXTURES / relative).read_bytes().decode("utf-8-sig")
