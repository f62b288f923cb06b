"""SegmentWriter: values are checked (never escaped), trailing empties trimmed, envelopes fixed-width and counted."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from integrations.x12.reader import Delimiters, parse_envelopes, read_segments
from integrations.x12.writer import SegmentWriter, format_decimal

WHEN = datetime(2026, 11, 25, 14, 5)


def envelope(w: SegmentWriter, transactions: int = 1, groups: int = 1) -> None:
    w.isa(
        sender_qualifier="ZZ",
        sender_id="SENDER",
        receiver_qualifier="ZZ",
        receiver_id="RECEIVER",
        control_number=42,
        created_at=WHEN,
        usage_indicator="T",
    )
    for g in range(groups):
        w.gs(
            functional_id="HC",
            sender_id="SENDER",
            receiver_id="RECEIVER",
            control_number=7 + g,
            created_at=WHEN,
            version="005010X222A1",
        )
        for t in range(transactions):
            w.st("837", 1 + t, "005010X222A1")
            w.segment("BHT", "0019", "00", "REF1", "20261125", "1405", "CH")
            w.segment("REF", "87", "x")
            w.se()
        w.ge()
    w.iea()


def test_trims_trailing_empty_elements_and_components_but_keeps_inner_ones() -> None:
    w = SegmentWriter(newline=False)
    w.segment("NM1", "85", "2", "  Springfield Clinic ", None, "", None, None, "XX", "1234567893")
    w.segment("N3", "1 Main St", "", None)
    w.segment("SV1", ("HC", "99213", "", None), Decimal("125.50"), "UN", 1, None, None, ("1", "2", None))
    w.segment("CLM", "PCN1", Decimal("0"), None, None, ("11", "", "1"))
    assert w.text() == (
        "NM1*85*2*Springfield Clinic*****XX*1234567893~N3*1 Main St~SV1*HC:99213*125.5*UN*1***1:2~CLM*PCN1*0***11::1~"
    )


def test_keeps_case() -> None:
    w = SegmentWriter(newline=False)
    w.segment("NM1", "41", "2", "Acme billing llc")
    assert w.text() == "NM1*41*2*Acme billing llc~"


@pytest.mark.parametrize("bad", ["A*B", "A:B", "A^B", "A~B"])
def test_rejects_any_delimiter_in_a_value_naming_segment_and_element(bad: str) -> None:
    w = SegmentWriter()
    with pytest.raises(ValueError, match=r"NM103: the value contains the delimiter"):
        w.segment("NM1", "IL", "1", bad)
    with pytest.raises(ValueError, match=r"SV101-2: the value contains the delimiter"):
        w.segment("SV1", ("HC", bad))


def test_rejects_control_characters_and_floats() -> None:
    w = SegmentWriter()
    with pytest.raises(ValueError, match=r"N301: the value contains a control character"):
        w.segment("N3", "12 Main\nSt")
    with pytest.raises(ValueError, match=r"NM103: the value contains non-ASCII characters"):
        w.segment("NM1", "IL", "1", "Müller")
    with pytest.raises(TypeError, match="floats"):
        w.segment("AMT", "D", 12.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a segment identifier"):
        w.segment("nm1", "IL")


def test_custom_delimiters_are_checked_too() -> None:
    w = SegmentWriter(element="|", component=">", repetition="!", terminator="\x1c", newline=False)
    with pytest.raises(ValueError, match=r"NM103: the value contains the delimiter '\|'"):
        w.segment("NM1", "IL", "1", "A|B")
    w.segment("NM1", "IL", "1", "A*B:C~D")  # the default delimiters are ordinary data here
    assert w.text() == "NM1|IL|1|A*B:C~D\x1c"
    with pytest.raises(ValueError, match="delimiters must be four distinct"):
        SegmentWriter(element="*", component="*")
    with pytest.raises(ValueError, match="delimiters must be four distinct"):
        SegmentWriter(terminator="\n")


def test_format_decimal() -> None:
    assert format_decimal(Decimal("125.00")) == "125"
    assert format_decimal(Decimal("125.50")) == "125.5"
    assert format_decimal(Decimal("125.55")) == "125.55"
    assert format_decimal(Decimal("100")) == "100"
    assert format_decimal(Decimal("1E+3")) == "1000"
    assert format_decimal(Decimal("-0.00")) == "0"
    assert format_decimal(Decimal("-6173.50")) == "-6173.5"
    assert format_decimal(Decimal("0.000001")) == "0.000001"
    with pytest.raises(TypeError):
        format_decimal(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        format_decimal(Decimal("NaN"))


def test_envelopes_are_fixed_width_and_counted() -> None:
    w = SegmentWriter()
    envelope(w, transactions=2, groups=2)
    text = w.text()
    lines = text.splitlines()
    assert lines[0] == (
        "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261125*1405*^*00501*000000042*0*T*:~"
    )
    assert len(lines[0]) == 106
    assert lines[1] == "GS*HC*SENDER*RECEIVER*20261125*1405*7*X*005010X222A1~"
    assert lines[2] == "ST*837*0001*005010X222A1~"
    assert lines[5] == "SE*4*0001~"
    assert "GE*2*7~" in lines and "GE*2*8~" in lines
    assert lines[-1] == "IEA*2*000000042~"
    interchanges = parse_envelopes(read_segments(text))
    assert [len(g.transactions) for g in interchanges[0].groups] == [2, 2]
    assert interchanges[0].delimiters == Delimiters()


def test_newline_is_optional() -> None:
    w = SegmentWriter(newline=False)
    envelope(w)
    assert "\n" not in w.text()
    assert len(parse_envelopes(read_segments(w.text()))[0].transactions) == 1


def test_control_character_delimiters_round_trip() -> None:
    w = SegmentWriter(element="\x1d", component="\x1f", repetition="\x1e", terminator="\x1c", newline=False)
    envelope(w)
    (interchange,) = parse_envelopes(read_segments(w.text()))
    assert interchange.delimiters == Delimiters("\x1d", "\x1f", "\x1e", "\x1c")
    assert interchange.transactions[0].segments[2].elements == ["REF", "87", "x"]


def test_envelope_values_are_checked() -> None:
    w = SegmentWriter()
    with pytest.raises(ValueError, match=r"ISA06: the value is longer than 15"):
        w.isa(
            sender_qualifier="ZZ",
            sender_id="A-SENDER-ID-LONGER-THAN-15",
            receiver_qualifier="ZZ",
            receiver_id="R",
            control_number=1,
            created_at=WHEN,
        )
    with pytest.raises(ValueError, match="ISA13"):
        w.isa(
            sender_qualifier="ZZ",
            sender_id="S",
            receiver_qualifier="ZZ",
            receiver_id="R",
            control_number=1_000_000_000,
            created_at=WHEN,
        )
    with pytest.raises(RuntimeError, match="no open functional group"):
        w.st("837", 1)
    with pytest.raises(RuntimeError, match="no open transaction set"):
        w.se()


def test_segment_count_includes_st() -> None:
    w = SegmentWriter()
    w.isa(
        sender_qualifier="ZZ",
        sender_id="S",
        receiver_qualifier="ZZ",
        receiver_id="R",
        control_number=1,
        created_at=WHEN,
    )
    w.gs(functional_id="HC", sender_id="S", receiver_id="R", control_number=1, created_at=WHEN, version="V")
    w.st("837", "123456789")
    w.segment("BHT", "0019")
    assert w.segment_count == 2
    w.se()
    assert w.text().splitlines()[-1] == "SE*3*123456789~"
