"""X12 reader: every shared fixture (837P, 999, 277CA, 835) either reads into envelopes or fails with a precise,
expected X12Error; delimiters are always read from the data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from integrations.x12.reader import (
    Delimiters,
    Segment,
    X12Error,
    parse_amount,
    parse_date,
    parse_envelopes,
    read_segments,
)
from tests.conftest import X12_FIXTURES  # noqa: E402

FIXTURES = X12_FIXTURES

# name -> (interchanges, groups, transaction sets) with every check on.
READS: dict[str, tuple[int, int, int]] = {
    "277ca/OopFactory.X12__277CA_5010_Deidentified_from_nth.txt": (1, 1, 1),
    "277ca/imsweb-x12-parser__x12_277CA_accepted.txt": (1, 1, 1),
    "277ca/imsweb-x12-parser__x12_277CA_rejected.txt": (1, 1, 1),
    "835/OopFactory.X12__835_4010_DeIdent_01.dat": (1, 1, 1),
    "835/OopFactory.X12__835_5010_Example1.txt": (1, 1, 1),
    "835/OopFactory.X12__835_5010_ExampleFromNth.txt": (3, 3, 3),
    "835/badX12__X221-dollars-and-data-sent-together.edi": (1, 1, 1),
    "835/badX12__X221-multiple-claims-single-check.edi": (1, 1, 1),
    "835/edi-835-parser__emedny_sample.txt": (1, 1, 1),
    "835/edi-835-parser__united_healthcare_legacy_sample.txt": (1, 1, 1),
    "835/moov-x12__example_5010_835_sample1.txt": (1, 1, 2),
    "835/pyx12__835_mult_loops.txt": (1, 1, 1),
    "835/tastypackets-x12-parser__multi-line-not-delimited.edi": (1, 1, 1),
    "835/tastypackets-x12-parser__profee-multiple.edi": (156, 156, 156),
    "837p/OopFactory.X12__837P_5010_Example1_2_And_3_Combined.txt": (1, 1, 2),
    "837p/OopFactory.X12__837P_5010_MedicaidExample_indented.txt": (1, 1, 1),
    "837p/badX12__X222-COB-claim-from-billing-provider-to-payer-b.edi": (1, 1, 1),
    "837p/badX12__X222-ambulance.edi": (1, 1, 1),
    "837p/badX12__X222-commercial-health-insurance.edi": (1, 1, 1),
    "837p/badX12__X222-drug-administered-in-the-physician-office.edi": (1, 1, 1),
    "837p/moov-x12__example_5010_837p_sample.txt": (1, 1, 1),
    "999/OopFactory.X12__999_DHS_Wisconsin_Sample.txt": (1, 1, 1),
    "999/imsweb-x12-parser__x12_999_rejected.txt": (1, 1, 1),
    "999/pyx12__834_lui_id_5010.999.txt": (1, 2, 4),
}

# Files whose trailers genuinely contradict their content: with every check on they fail exactly here
# (position, segment id, element, message fragment); with the checks relaxed they read, with the same warning.
BROKEN: dict[str, tuple[int, str, int, str, tuple[int, int, int]]] = {
    # Masking artefact noted in the manifest: the 10-character ST02 was masked differently from SE02 (and IEA02).
    "835/OopFactory.X12__835_4010_DeIdent_02.dat": (
        13000,
        "SE",
        2,
        "SE02 '999999999' does not match ST02 '9999999996'",
        (1, 1, 6),
    ),
    "835/affect-edi-835-parser__nevada_medicaid.txt": (
        67,
        "IEA",
        2,
        "IEA02 '100000301' does not match ISA13 '100000300'",
        (1, 1, 3),
    ),
    "835/edi-835-parser__blue_cross_nc_sample.txt": (
        32,
        "SE",
        1,
        "SE01 says 33 segments but the transaction set has 32",
        (1, 1, 1),
    ),
    # Masked GS06/ISA13 (all 9s) against unmasked GE02/IEA02.
    "837p/OopFactory.X12__837P_4010_DeIdent_01.dat": (
        4203,
        "GE",
        2,
        "GE02 '39834001' does not match GS06 '99999999'",
        (1, 1, 1),
    ),
    # Manifest: "NOT valid per pyx12 (SE count etc.)".
    "837p/imsweb-x12-parser__x12_many_claims.txt": (
        11488,
        "SE",
        1,
        "SE01 says 25 segments but the transaction set has 11486",
        (1, 1, 1),
    ),
    "837p/imsweb-x12-parser__x12_valid_different_separators.txt": (
        36,
        "SE",
        1,
        "SE01 says 25 segments but the transaction set has 34",
        (1, 1, 1),
    ),
    "999/imsweb-x12-parser__x12_999_accepted.txt": (
        10,
        "IEA",
        2,
        "IEA02 '000000001' does not match ISA13 '000000286'",
        (1, 1, 1),
    ),
}


def canonical(segments: list[Segment]) -> list[list[str]]:
    """Elements with ':' for the component separator, ISA left out (it names the delimiters themselves)."""
    return [[value.replace(s.delimiters.component, ":") for value in s.elements] for s in segments if s.id != "ISA"]


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def shape(interchanges: list) -> tuple[int, int, int]:
    return (
        len(interchanges),
        sum(len(i.groups) for i in interchanges),
        sum(len(i.transactions) for i in interchanges),
    )


def count(interchanges: list, segment_id: str) -> int:
    return sum(seg.id == segment_id for i in interchanges for ts in i.transactions for seg in ts.segments)


def test_every_fixture_is_classified() -> None:
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*") if p.is_file()}
    assert on_disk == set(READS) | set(BROKEN)


@pytest.mark.parametrize("name", sorted(READS))
def test_fixture_reads_into_envelopes(name: str) -> None:
    interchanges = parse_envelopes(read_segments(load(name)))
    assert shape(interchanges) == READS[name]
    assert not any(i.warnings for i in interchanges)
    for interchange in interchanges:
        for ts in interchange.transactions:
            assert ts.segments[0].id == "ST" and ts.segments[-1].id == "SE"
            assert int(ts.trailer.el(1)) == len(ts.segments)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixture_fails_precisely(name: str) -> None:
    position, segment_id, element, fragment, expected_shape = BROKEN[name]
    segments = read_segments(load(name))
    with pytest.raises(X12Error) as caught:
        parse_envelopes(segments)
    error = caught.value
    assert (error.segment_position, error.segment_id, error.element) == (position, segment_id, element)
    assert fragment in error.message
    assert str(error).startswith(f"segment {position} ({segment_id}), element {element}: ")

    relaxed = parse_envelopes(segments, check_counts=False, check_control_numbers=False)
    assert shape(relaxed) == expected_shape
    warnings = [w for i in relaxed for w in i.warnings]
    assert warnings and warnings[0].segment_position == position


def test_manifest_counts() -> None:
    profee = parse_envelopes(read_segments(load("835/tastypackets-x12-parser__profee-multiple.edi")))
    assert len(profee) == 156 and count(profee, "CLP") == 468
    nth = parse_envelopes(read_segments(load("835/OopFactory.X12__835_5010_ExampleFromNth.txt")))
    assert len(nth) == 3 and count(nth, "CLP") == 56
    assert [i.control_number for i in nth] == ["000000031", "000000032", "000000033"]
    deident = parse_envelopes(read_segments(load("835/OopFactory.X12__835_4010_DeIdent_01.dat")))
    assert count(deident, "CLP") == 96
    check = parse_envelopes(read_segments(load("835/badX12__X221-multiple-claims-single-check.edi")))
    assert count(check, "CLP") == 9 and count(check, "LX") == 9
    many = parse_envelopes(read_segments(load("837p/imsweb-x12-parser__x12_many_claims.txt")), check_counts=False)
    assert count(many, "CLM") == 820
    moov = parse_envelopes(read_segments(load("837p/moov-x12__example_5010_837p_sample.txt")))
    assert count(moov, "CLM") == 8 and count(moov, "LX") == 11
    medicaid = parse_envelopes(read_segments(load("837p/OopFactory.X12__837P_5010_MedicaidExample_indented.txt")))
    assert count(medicaid, "CLM") == 5


def test_bom_indentation_and_crlf() -> None:
    segments = read_segments(load("837p/OopFactory.X12__837P_5010_MedicaidExample_indented.txt"))
    assert segments[0].id == "ISA" and segments[0].position == 1
    assert segments[0].delimiters == Delimiters(element="*", component=">", repetition="|", segment="~")
    assert all("\r" not in value and "\n" not in value for s in segments for value in s.elements)
    assert all(s.elements[-1] == s.elements[-1].rstrip() for s in segments[1:])
    assert segments[1].id == "GS" and segments[1].el(8) == "005010X222A1"
    assert [s.position for s in segments] == list(range(1, len(segments) + 1))


def test_newline_terminator_reads_like_the_tilde_version() -> None:
    newline = read_segments(load("835/tastypackets-x12-parser__multi-line-not-delimited.edi"))
    tilde = read_segments(load("835/edi-835-parser__emedny_sample.txt"))
    assert newline[0].delimiters.segment == "\n"
    assert [s.elements for s in newline] == [s.elements for s in tilde]


def test_underscore_terminator_with_tilde_element_separator() -> None:
    name = "837p/imsweb-x12-parser__x12_valid_different_separators.txt"
    segments = read_segments(load(name))
    assert segments[0].delimiters == Delimiters(element="~", component="^", repetition=None, segment="_")
    clm = next(s for s in segments if s.id == "CLM")
    assert clm.el(1) == "A37YH556" and clm.components(5) == ["11", "B", "1"]
    sv1 = next(s for s in segments if s.id == "SV1")
    assert sv1.component(1, 2) == "99211" and sv1.component(1, 3) == "25"


def test_collapsed_isa() -> None:
    segments = read_segments(load("835/affect-edi-835-parser__nevada_medicaid.txt"))
    assert segments[0].delimiters == Delimiters(element="*", component=":", repetition="^", segment="~")
    (interchange,) = parse_envelopes(segments, check_control_numbers=False)
    assert (interchange.sender_id, interchange.receiver_id) == ("NVMED", "99999999")
    assert interchange.control_number == "100000300"
    # The third transaction set holds only a PLB: no claims at all.
    third = interchange.transactions[2]
    assert not any(s.id == "CLP" for s in third.segments) and any(s.id == "PLB" for s in third.segments)
    plb = next(s for s in third.segments if s.id == "PLB")
    assert plb.components(3) == ["CT", "888888888"] and plb.amount(4) == Decimal("-1092.46")


def test_st_only_file_gets_a_synthetic_envelope() -> None:
    segments = read_segments(load("835/edi-835-parser__blue_cross_nc_sample.txt"))
    assert segments[0].id == "ST"
    assert segments[0].delimiters == Delimiters(element="*", component=":", repetition=None, segment="~")
    (interchange,) = parse_envelopes(segments, check_counts=False)
    assert interchange.synthetic and interchange.groups[0].synthetic and interchange.header is None
    (ts,) = interchange.transactions
    assert ts.id_code == "835" and ts.control_number == "1234"
    svc = [s for s in ts.segments if s.id == "SVC"]
    assert [s.component(6, 2) for s in svc] == ["59410", "59410", ""]


def test_st_only_heuristics_for_other_delimiters() -> None:
    text = "ST|835|0001\nBPR|I|10|C|CHK\nSVC|HC>99213|10|10\nSE|4|0001\n"
    segments = read_segments(text)
    assert segments[0].delimiters == Delimiters(element="|", component=">", repetition=None, segment="\n")
    assert segments[2].components(1) == ["HC", "99213"]
    assert parse_envelopes(segments)[0].synthetic


def test_left_padded_ids_and_alphanumeric_repetition_separator() -> None:
    (interchange,) = parse_envelopes(read_segments(load("835/moov-x12__example_5010_835_sample1.txt")))
    assert (interchange.sender_qualifier, interchange.sender_id) == ("33", "54704")
    assert interchange.receiver_id == "PB000022"
    # ISA11 'U' in an 00501 file is not usable as a repetition separator ("INDEPENDENCE BLUE CROSS" contains U).
    assert interchange.delimiters.repetition is None
    n1 = next(s for ts in interchange.transactions for s in ts.segments if s.id == "N1")
    assert n1.repetitions(2) == ["INDEPENDENCE BLUE CROSS"]


def test_control_characters_as_delimiters() -> None:
    original = load("835/edi-835-parser__emedny_sample.txt").decode()
    assert not any(ch in original for ch in "\x1c\x1d\x1e\x1f")
    converted = original.translate(str.maketrans({"*": "\x1d", ":": "\x1f", "^": "\x1e", "~": "\x1c"}))
    segments = read_segments(converted.encode())
    assert segments[0].delimiters == Delimiters(element="\x1d", component="\x1f", repetition="\x1e", segment="\x1c")
    assert canonical(segments) == canonical(read_segments(original))
    assert segments[0].el(11) == "\x1e" and segments[0].el(16) == "\x1f"
    assert shape(parse_envelopes(segments)) == (1, 1, 1)


def test_concatenated_interchanges_each_use_their_own_delimiters() -> None:
    tilde = load("835/edi-835-parser__emedny_sample.txt").decode()
    control = tilde.translate(str.maketrans({"*": "\x1d", ":": "\x1f", "^": "\x1e", "~": "\x1c"}))
    newline = load("835/tastypackets-x12-parser__multi-line-not-delimited.edi").decode()
    segments = read_segments(tilde + "\r\n" + control + newline)
    interchanges = parse_envelopes(segments)
    assert len(interchanges) == 3
    assert [i.delimiters.segment for i in interchanges] == ["~", "\x1c", "\n"]
    first, second, third = (i.transactions[0].segments for i in interchanges)
    assert canonical(first) == canonical(second) == canonical(third)


def test_truncated_files_name_the_open_envelope() -> None:
    text = load("999/imsweb-x12-parser__x12_999_rejected.txt").decode()
    cut = text[: text.index("SE*7")]
    with pytest.raises(X12Error, match=r"transaction set '95832987' \(ST at segment 3\) has no SE") as caught:
        parse_envelopes(read_segments(cut))
    assert (caught.value.segment_position, caught.value.segment_id) == (8, "AK9")

    cut = text[: text.index("IEA")]
    with pytest.raises(X12Error, match=r"interchange begun at segment 1 has no IEA") as caught:
        parse_envelopes(read_segments(cut))
    assert (caught.value.segment_position, caught.value.segment_id) == (10, "GE")

    cut = text[: text.index("GE")]
    with pytest.raises(X12Error, match=r"group begun at segment 2 has no GE"):
        parse_envelopes(read_segments(cut))

    with pytest.raises(X12Error, match="ISA is truncated"):
        read_segments(text[:60])


def test_segments_outside_envelopes_and_out_of_order() -> None:
    text = load("999/imsweb-x12-parser__x12_999_rejected.txt").decode()
    stray = text.replace("GE*1*95832987~", "GE*1*95832987~\nREF*XX*1~")
    with pytest.raises(X12Error, match="outside any transaction set") as caught:
        parse_envelopes(read_segments(stray))
    assert (caught.value.segment_position, caught.value.segment_id) == (11, "REF")

    nested = text.replace("AK9*R*1*1*0~", "AK9*R*1*1*0~\nST*999*0002~")
    with pytest.raises(X12Error, match=r"ST inside transaction set '95832987' \(ST at segment 3\), which has no SE"):
        parse_envelopes(read_segments(nested))

    group = text[text.index("GS*") : text.index("IEA")]
    with pytest.raises(X12Error, match=r"GS outside any interchange") as caught:
        parse_envelopes(read_segments(text + group))
    assert (caught.value.segment_position, caught.value.segment_id) == (12, "GS")
    with pytest.raises(X12Error, match=r"segment 3 \(GS\): GS in a file that began without ISA/GS"):
        parse_envelopes(read_segments("ST*999*0001~SE*2*0001~" + group))


def test_count_and_control_number_mismatches() -> None:
    text = load("999/pyx12__834_lui_id_5010.999.txt").decode()
    with pytest.raises(X12Error) as caught:
        parse_envelopes(read_segments(text.replace("GE*2*344666205~", "GE*3*344666205~")))
    assert str(caught.value) == "segment 15 (GE), element 1: GE01 says 3 transaction sets but the group has 2"
    with pytest.raises(X12Error, match=r"GE02 '1' does not match GS06 '344666205'"):
        parse_envelopes(read_segments(text.replace("GE*2*344666205~", "GE*2*1~")))
    with pytest.raises(X12Error, match=r"IEA01 says 1 functional groups but the interchange has 2"):
        parse_envelopes(read_segments(text.replace("IEA*2*", "IEA*1*")))
    with pytest.raises(X12Error, match=r"segment 8 \(SE\), element 2: SE02 '0009' does not match ST02 '0001'"):
        parse_envelopes(read_segments(text.replace("SE*6*0001~", "SE*6*0009~")))
    with pytest.raises(X12Error, match=r"segment 8 \(SE\), element 1: not a number: 'X'"):
        parse_envelopes(read_segments(text.replace("SE*6*0001~", "SE*X*0001~")))
    # Leading zeros are padding: '000000286' and '286' are the same control number.
    assert parse_envelopes(read_segments(text.replace("IEA*2*308082146", "IEA*2*0308082146")))


def test_garbage_is_refused() -> None:
    with pytest.raises(X12Error, match="does not start with an ISA or ST segment"):
        read_segments(b"hello world")
    with pytest.raises(X12Error, match="no X12 segments"):
        parse_envelopes(read_segments(b"  \r\n"))
    text = load("999/imsweb-x12-parser__x12_999_rejected.txt").decode()
    with pytest.raises(X12Error, match=r"not a segment identifier: 'ak9'") as caught:
        read_segments(text.replace("AK9*", "ak9*"))
    assert caught.value.segment_position == 8


def test_segment_helpers() -> None:
    seg = read_segments("ST*835*0001~SVC*HC:99213:25*100*80**1~N1*PR*A^B~SE*4*0001~")[1]
    assert seg.id == "SVC" and seg.position == 2 and seg.element_count == 5
    assert seg.el(1) == "HC:99213:25" and seg.el(4) == "" and seg.el(9) == ""
    assert seg.components(1) == ["HC", "99213", "25"] and seg.component(1, 3) == "25" and seg.component(1, 4) == ""
    assert seg.amount(2) == Decimal("100") and seg.amount(4) is None
    assert str(seg) == "SVC*HC:99213:25*100*80**1"


def test_amount_and_date_helpers_locate_errors() -> None:
    clp = Segment("CLP", ["CLP", "PCN", "1", "12.3.4"], 12)
    with pytest.raises(X12Error) as caught:
        parse_amount(clp.el(3), clp, 3)
    assert str(caught.value) == "segment 12 (CLP), element 3: not a decimal amount: '12.3.4'"
    assert parse_amount("-6173.5") == Decimal("-6173.5")
    assert parse_amount(".5") == Decimal("0.5") and parse_amount("125.") == Decimal("125")
    assert parse_amount("99999.99") == Decimal("99999.99")
    for bad in ("", "1e5", "1,000", "+-1", "NaN"):
        with pytest.raises(X12Error):
            parse_amount(bad)

    dtm = Segment("DTM", ["DTM", "472", "20110231"], 7)
    with pytest.raises(X12Error) as caught:
        dtm.date(2)
    assert str(caught.value) == "segment 7 (DTM), element 2: not a valid date: '20110231'"
    assert parse_date("20240229") == date(2024, 2, 29)
    with pytest.raises(X12Error, match=r"not a date \(CCYYMMDD\): '240229'"):
        parse_date("240229")
