"""999 parser: the shared 999 fixtures read into statuses and errors in words; malformed files raise X12Error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from integrations.x12.ack999 import parse_999
from integrations.x12.reader import X12Error
from tests.conftest import X12_FIXTURES

FIXTURES = X12_FIXTURES / "999"
WISCONSIN = "OopFactory.X12__999_DHS_Wisconsin_Sample.txt"
ACCEPTED = "imsweb-x12-parser__x12_999_accepted.txt"
REJECTED = "imsweb-x12-parser__x12_999_rejected.txt"
PYX12_834 = "pyx12__834_lui_id_5010.999.txt"


def text(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8-sig")


def test_accepted() -> None:
    (ack,) = parse_999((FIXTURES / ACCEPTED).read_bytes())
    assert (ack.sender_id, ack.receiver_id) == ("12345", "987654321")
    assert (ack.functional_id, ack.group_control_number, ack.group_version) == ("HC", "17456", "005010X223A2")
    assert (ack.group_status, ack.group_status_text) == ("A", "Accepted")
    assert (ack.transactions_included, ack.transactions_received, ack.transactions_accepted) == (1, 1, 1)
    (ts,) = ack.transactions
    assert (ts.transaction_id, ts.control_number, ts.status, ts.errors) == ("837", "0001", "A", [])
    assert ts.accepted
    # The sample's IEA02 does not match its ISA13: the acknowledgement is intact, the defect is reported.
    assert ack.warnings == [
        "segment 10 (IEA), element 2: IEA02 '000000001' does not match ISA13 '000000286' (segment 1)"
    ]


def test_rejected_names_the_segment_in_words() -> None:
    (ack,) = parse_999((FIXTURES / REJECTED).read_bytes())
    assert (ack.sender_id, ack.receiver_id, ack.group_control_number) == ("EMEDNYBAT", "ETIN", "28")
    assert (ack.group_status, ack.group_status_text) == ("R", "Rejected")
    assert (ack.transactions_included, ack.transactions_received, ack.transactions_accepted) == (1, 1, 0)
    (ts,) = ack.transactions
    assert (ts.control_number, ts.status, ts.status_text) == ("0028", "R", "Rejected")
    assert not ts.accepted
    assert ts.errors == [
        "segment NM at position 17: Unrecognized segment ID",
        "transaction set: One or More Segments in Error",
    ]
    assert ack.warnings == []


def test_wisconsin_partial_acceptance_with_element_errors() -> None:
    (ack,) = parse_999((FIXTURES / WISCONSIN).read_bytes())  # BOM, indentation, CR LF
    assert (ack.group_status, ack.group_status_text) == (
        "P",
        "Partially Accepted, At Least One Transaction Set Was Rejected",
    )
    assert (ack.transactions_included, ack.transactions_received, ack.transactions_accepted) == (3, 3, 1)
    assert [(t.control_number, t.status) for t in ack.transactions] == [("0001", "A"), ("002", "R"), ("0003", "R")]
    second, third = ack.transactions[1].errors, ack.transactions[2].errors
    assert second[0] == "segment CLM at position 22: Segment Has Data Element Errors [context CLM01=123456789]"
    assert second[1] == "segment CLM at position 22, element CLM02 (data element 782): Required Data Element Missing"
    assert third[0] == (
        "segment REF at position 57: Required Segment Missing "
        "[situational trigger: segment CLM at position 43, element CLM05-3] [context CLM01=987654321]"
    )
    assert second[-1] == third[-1] == "transaction set: One or More Segments in Error"


def test_pyx12_834_acknowledgement_two_groups_four_sets() -> None:
    acks = parse_999((FIXTURES / PYX12_834).read_bytes())
    assert [a.control_number for a in acks] == ["0001", "0002", "0003", "0004"]
    assert {(a.functional_id, a.group_control_number, a.group_status) for a in acks} == {("BE", "13360001", "A")}
    assert all(t.transaction_id == "834" and t.status == "A" for a in acks for t in a.transactions)


def test_bad_element_value_and_unknown_codes_in_words() -> None:
    data = (
        text(ACCEPTED)
        .replace("IK5*A~", "IK3*NM1*8*2010BA*8~\nIK4*9:2*67*Q1*ABC~\nIK5*E~")
        .replace("SE*6*0001", "SE*8*0001")
    )
    (ack,) = parse_999(data)
    assert ack.transactions[0].errors == [
        "segment NM1 at position 8 in loop 2010BA: Segment Has Data Element Errors",
        "segment NM1 at position 8, element NM109-2 (data element 67): code Q1, bad value 'ABC'",
    ]
    assert ack.transactions[0].status_text == "Accepted But Errors Were Noted"


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        (REJECTED, lambda t: t[: t.index("AK9")], r"segment 7 \(IK5\): data ends here but transaction set '95832987'"),
        (REJECTED, lambda t: t.replace("SE*7*", "SE*8*"), r"segment 9 \(SE\), element 1: SE01 says 8 segments"),
        (
            REJECTED,
            lambda t: t.replace("AK1*HC*28*005010X223A2~\n", "").replace("SE*7*", "SE*6*"),
            r"segment 4 \(AK2\): 999 has no AK1",
        ),
        (
            REJECTED,
            lambda t: t.replace("IK5*R*5~\n", "").replace("SE*7*", "SE*6*"),
            r"segment 7 \(AK9\): AK2 at segment 5 has no IK5 before AK9",
        ),
        (
            REJECTED,
            lambda t: t.replace("AK9*R*1*1*0~\n", "").replace("SE*7*", "SE*6*"),
            r"segment 8 \(SE\): 999 has no AK9",
        ),
        (
            REJECTED,
            lambda t: t.replace("IK5*R*5", "IK5*Q*5"),
            r"segment 7 \(IK5\), element 1: unknown transaction set acknowledgment code 'Q'",
        ),
        (
            REJECTED,
            lambda t: t.replace("AK9*R*", "AK9*Z*"),
            r"segment 8 \(AK9\), element 1: unknown functional group acknowledgment code 'Z'",
        ),
        (
            REJECTED,
            lambda t: t.replace("AK9*R*1*1*0", "AK9*R*1*one*0"),
            r"segment 8 \(AK9\), element 3: not a number: 'one'",
        ),
        (
            REJECTED,
            lambda t: t.replace("IK3*NM*17**1~\n", "IK3*NM*17**1~\nNM1*XX~\n").replace("SE*7*", "SE*8*"),
            r"segment 7 \(NM1\): segment not expected in a 999",
        ),
    ],
)
def test_malformed_999_raises_naming_the_segment(name: str, change: Callable[[str], str], expected: str) -> None:
    with pytest.raises(X12Error, match=expected):
        parse_999(change(text(name)))


def test_all_or_nothing() -> None:
    # Three good acknowledgements then a broken fourth: nothing is returned.
    broken = text(PYX12_834).replace("SE*6*0004", "SE*5*0004")
    with pytest.raises(X12Error, match=r"SE01 says 5 segments"):
        parse_999(broken)


def test_not_a_999() -> None:
    other = (FIXTURES.parent / "277ca" / "imsweb-x12-parser__x12_277CA_accepted.txt").read_bytes()
    with pytest.raises(X12Error, match=r"segment 3 \(ST\), element 1: not a 999 transaction set: ST01 is '277'"):
        parse_999(other)
