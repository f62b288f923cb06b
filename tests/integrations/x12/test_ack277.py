"""277CA parser: the shared fixtures read into per-claim verdicts with reasons in words; malformed files raise."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import pytest

from integrations.x12.ack277 import parse_277ca
from integrations.x12.reader import X12Error
from integrations.x12.writer import SegmentWriter
from tests.conftest import X12_FIXTURES

FIXTURES = X12_FIXTURES / "277ca"
ACCEPTED = "imsweb-x12-parser__x12_277CA_accepted.txt"
REJECTED = "imsweb-x12-parser__x12_277CA_rejected.txt"
NTH = "OopFactory.X12__277CA_5010_Deidentified_from_nth.txt"


def text(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8-sig")


def test_accepted() -> None:
    (ack,) = parse_277ca((FIXTURES / ACCEPTED).read_bytes())
    assert (ack.sender_id, ack.receiver_id, ack.control_number) == ("EMEDNYBAT", "ETIN", "000014420")
    assert (ack.information_source, ack.receiver_trace_number, ack.reference_id) == ("NYSDOH", "000000674", "000000674")
    assert [s.text for s in ack.batch_statuses] == ["A1 Acknowledgement/Receipt: 20 Accepted for processing"]
    (claim,) = ack.claims
    assert claim.patient_control_number == "5781"
    assert claim.payer_claim_number == "1107000000014420"
    assert (claim.billing_provider_npi, claim.billing_provider_tax_id) == ("1234567890", None)
    assert claim.accepted and claim.reasons == []
    assert claim.total_charge == Decimal("125")
    (status,) = claim.statuses
    assert (status.category_code, status.status_code, status.entity_code) == ("A2", "20", "")
    assert status.category == "Acknowledgement/Acceptance into adjudication system"
    assert (status.effective_date, status.action_code, status.amount) == (date(2011, 3, 11), "WQ", Decimal("125"))
    assert (claim.patient_last_name, claim.patient_first_name, claim.member_id) == ("TPATIENT", "THEBE", "LL99999X")
    assert claim.service_date_from == date(1001, 1, 1)  # the sample's placeholder date
    assert claim.segment_position == 21


def test_rejected_reason_in_words() -> None:
    (ack,) = parse_277ca((FIXTURES / REJECTED).read_bytes())  # component separator '|', one line
    (claim,) = ack.claims
    assert claim.patient_control_number == "3920394930203"
    assert claim.payer_claim_number == "1107000000001120"
    assert claim.billing_provider_npi == "123456789"
    assert not claim.accepted
    assert claim.total_charge == Decimal("199.14")
    assert claim.reasons == [
        "A7 Acknowledgement/Rejected for Invalid Information: "
        "562 Entity's National Provider Identifier (NPI) (85 Billing Provider)"
    ]
    (status,) = claim.statuses
    assert (status.category_code, status.status_code, status.entity_code) == ("A7", "562", "85")
    assert claim.service_date_from == claim.service_date_to == date(2009, 3, 11)


def test_nth_deidentified_masked_codes() -> None:
    (ack,) = parse_277ca((FIXTURES / NTH).read_bytes())  # BOM, indentation, CR LF
    assert (ack.sender_id, ack.receiver_id) == ("PCACE", "0002459")
    assert [c.patient_control_number for c in ack.claims] == ["99999999-99999"] * 3
    assert [c.total_charge for c in ack.claims] == [Decimal("220"), Decimal("340"), Decimal("340")]
    assert [c.service_date_from for c in ack.claims] == [date(2012, 1, 9), date(2011, 3, 16), date(2011, 10, 10)]
    assert {c.billing_provider_npi for c in ack.claims} == {"9999999999"}
    assert [len(c.statuses) for c in ack.claims] == [3, 3, 3]
    assert all(c.payer_claim_number is None for c in ack.claims)
    # Masked category 'X9' is no known acknowledgement: not accepted, and shown as a code rather than guessed.
    assert not any(c.accepted for c in ack.claims)
    assert ack.claims[0].reasons[0] == "X9 code X9: 999 code 999 (99 code 99)"
    assert [len(c.provider_statuses) for c in ack.claims] == [1, 1, 1]


def synthetic_277ca() -> str:
    """Two claims for one patient under a provider known by tax id; line statuses; STC10 secondary status."""
    w = SegmentWriter()
    when = datetime(2026, 11, 25, 8, 0)
    w.isa(
        sender_qualifier="ZZ",
        sender_id="CLEARHOUSE01",
        receiver_qualifier="ZZ",
        receiver_id="ACME0001",
        control_number=5,
        created_at=when,
    )
    w.gs(
        functional_id="HN", sender_id="CH", receiver_id="ACME", control_number=5, created_at=when, version="005010X214"
    )
    w.st("277", 1, "005010X214")
    w.segment("BHT", "0085", "08", "B1", "20261125", "0800", "TH")
    w.segment("HL", 1, None, "20", "1")
    w.segment("NM1", "AY", "2", "Example Clearinghouse", None, None, None, None, "46", "CH")
    w.segment("TRN", "1", "T1")
    w.segment("DTP", "050", "D8", "20261125")
    w.segment("DTP", "009", "D8", "20261125")
    w.segment("HL", 2, 1, "21", "1")
    w.segment("NM1", "41", "2", "Acme Billing", None, None, None, None, "46", "ACME0001")
    w.segment("TRN", "2", "88-0001")
    w.segment("STC", ("A1", "19", "PR"), "20261125", "WQ", Decimal("300"))
    w.segment("HL", 3, 2, "19", "1")
    w.segment("NM1", "85", "2", "Springfield Family Medicine", None, None, None, None, "FI", "371234567")
    w.segment("TRN", "1", "0")
    w.segment("HL", 4, 3, "PT")
    w.segment("NM1", "QC", "1", "Smith", "Joan", None, None, None, "MI", "XYZ123456789")
    w.segment("TRN", "2", "PCN0001")
    w.segment("STC", ("A2", "20"), "20261125", "WQ", Decimal("125"))
    w.segment("REF", "1K", "PAYER0001")
    w.segment("REF", "D9", "CHTRACE1")
    w.segment("DTP", "472", "RD8", "20261101-20261102")
    w.segment("SVC", ("HC", "99213"), Decimal("125"), None, None, None, None, 1)
    w.segment("STC", ("A7", "454"), "20261125", "U", Decimal("125"))  # a line status: not the claim's verdict
    w.segment("REF", "FJ", "L1")
    w.segment("DTP", "472", "D8", "20261101")
    w.segment("TRN", "2", "PCN0002")
    w.segment(
        "STC",
        ("A6", "33", "IL"),
        "20261125",
        "U",
        Decimal("175"),
        None,
        None,
        None,
        None,
        None,
        ("A7", "562", "82"),
    )
    w.segment("DTP", "472", "D8", "20261103")
    w.se()
    w.ge()
    w.iea()
    return w.text()


def test_multiple_claims_per_patient_line_statuses_and_stc10() -> None:
    (ack,) = parse_277ca(synthetic_277ca())
    assert ack.information_source == "Example Clearinghouse"
    assert ack.receiver_trace_number == "88-0001"
    first, second = ack.claims
    assert (first.patient_control_number, first.payer_claim_number) == ("PCN0001", "PAYER0001")
    assert first.clearinghouse_trace_number == "CHTRACE1"
    assert (first.billing_provider_npi, first.billing_provider_tax_id) == (None, "371234567")
    assert first.accepted and [s.category_code for s in first.statuses] == ["A2"]
    assert (first.service_date_from, first.service_date_to) == (date(2026, 11, 1), date(2026, 11, 2))
    assert second.patient_control_number == "PCN0002" and second.payer_claim_number is None
    assert not second.accepted
    assert second.total_charge == Decimal("175")
    assert second.reasons == [
        "A6 Acknowledgement/Rejected for Missing Information: 33 Subscriber and Subscriber Id not found "
        "(IL Insured or Subscriber)",
        "A7 Acknowledgement/Rejected for Invalid Information: "
        "562 Entity's National Provider Identifier (NPI) (82 Rendering Provider)",
    ]
    assert second.patient_last_name == "Smith"


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        (ACCEPTED, lambda t: t[: t.index("REF*1K")], r"segment 22 \(STC\): data ends here but transaction set"),
        (ACCEPTED, lambda t: t.replace("SE*23*", "SE*22*"), r"segment 25 \(SE\), element 1: SE01 says 22 segments"),
        (
            ACCEPTED,
            lambda t: t.replace("TRN*2*5781~\n", "").replace("SE*23*", "SE*22*"),
            r"segment 21 \(STC\): STC in a patient loop with no TRN",
        ),
        (
            ACCEPTED,
            lambda t: (
                t.replace("TRN*2*5781~\nSTC*A2:20*20110311*WQ*125~\nREF*1K*1107000000014420~\n", "")
                .replace("DTP*472*D8*10010101~\n", "")
                .replace("SE*23*", "SE*19*")
            ),
            r"segment 19 \(HL\): patient loop has no TRN",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("STC*A2:20*20110311*WQ*125~\n", "").replace("SE*23*", "SE*22*"),
            r"segment 21 \(TRN\): claim has no claim-level STC",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("TRN*2*5781", "TRN*1*5781"),
            r"segment 21 \(TRN\), element 1: unknown trace type code '1' for a claim",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("HL*4*3*PT", "HL*4*3*QQ"),
            r"segment 19 \(HL\), element 3: unknown hierarchical",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("*XX*1234567890", "*ZZ*1234567890"),
            r"segment 17 \(NM1\), element 8: unknown billing provider identification code qualifier 'ZZ'",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("STC*A2:20*20110311*", "STC*A2:20*20111311*"),
            r"segment 22 \(STC\), element 2: not a valid date: '20111311'",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("STC*A2:20*20110311*WQ*125~", "STC*A2:20*20110311*WQ*12.5.0~"),
            r"segment 22 \(STC\), element 4: not a decimal amount: '12.5.0'",
        ),
        (
            ACCEPTED,
            lambda t: t.replace("STC*A2:20*", "STC*:20*"),
            r"segment 22 \(STC\), element 1: status category code is missing",
        ),
    ],
)
def test_malformed_277ca_raises_naming_the_segment(name: str, change: Callable[[str], str], expected: str) -> None:
    with pytest.raises(X12Error, match=expected):
        parse_277ca(change(text(name)))


def test_not_a_277() -> None:
    other = (FIXTURES.parent / "999" / "imsweb-x12-parser__x12_999_rejected.txt").read_bytes()
    with pytest.raises(X12Error, match=r"not a 277 transaction set: ST01 is '999'"):
        parse_277ca(other)
