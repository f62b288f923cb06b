"""The sandbox's own X12 reader on files nobody on the team wrote (delimiters from the ISA, odd layouts)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from integrations.sandbox import process_inbox_once
from integrations.sandbox.edi import X12Error, money, read_interchanges
from integrations.sandbox.model837 import parse_837
from tests.sandbox.conftest import FIXTURES, drop, make_config
from tests.sandbox.helpers import assert_balanced, assert_valid, find, read_835, segments


@pytest.mark.parametrize(
    "name, interchanges, sets",
    [
        ("835/tastypackets-x12-parser__profee-multiple.edi", 156, 156),  # concatenated interchanges
        ("835/OopFactory.X12__835_5010_ExampleFromNth.txt", 3, 3),  # BOM, indentation
        ("835/affect-edi-835-parser__nevada_medicaid.txt", 1, 3),  # ISA padding collapsed
        ("835/tastypackets-x12-parser__multi-line-not-delimited.edi", 1, 1),  # newline as terminator
        ("837p/OopFactory.X12__837P_5010_Example1_2_And_3_Combined.txt", 1, 2),
    ],
)
def test_reads_real_layouts(name: str, interchanges: int, sets: int) -> None:
    ics = read_interchanges((FIXTURES / name).read_bytes())
    assert len(ics) == interchanges
    assert sum(len(g.transactions) for ic in ics for g in ic.groups) == sets
    for ic in ics:
        for g in ic.groups:
            for t in g.transactions:
                assert t.se is not None and int(t.se.get(1)) == len(t.segments)


def test_reads_unusual_delimiters() -> None:
    (ic,) = read_interchanges((FIXTURES / "837p/imsweb-x12-parser__x12_valid_different_separators.txt").read_bytes())
    assert (ic.delimiters.element, ic.delimiters.component, ic.delimiters.terminator) == ("~", "^", "_")
    claims = parse_837(ic.groups[0].transactions[0]).claims
    assert [(c.pcn, c.charge, c.lines[0].code, c.lines[0].modifiers) for c in claims] == [
        ("A37YH556", Decimal("500"), "99211", ["25"]),
        ("A37YH667", Decimal("500"), "478331", ["25"]),
    ]


def test_837_model_of_the_cob_example() -> None:
    (ic,) = read_interchanges(
        (FIXTURES / "837p/badX12__X222-COB-claim-from-billing-provider-to-payer-b.edi").read_bytes()
    )
    (c,) = parse_837(ic.groups[0].transactions[0]).claims
    # The 2330 other-subscriber/other-payer loops must not replace the claim's own subscriber and payer.
    assert (c.subscriber.last, c.subscriber.first, c.member_id) == ("SMITH", "JACK", "222334444")
    assert (c.payer.id, c.patient.first, c.is_dependent, c.payer_responsibility) == ("567890", "TED", True, "S")
    assert [ln.prior_paid for ln in c.lines] == [Decimal("40"), Decimal("15"), Decimal("21.04")]
    assert c.billing.id == "1999996666" and c.billing.tax_id == "123456789"


@pytest.mark.parametrize("data", [b"", b"hello", b"ISA*00*", b"  junk ISA*00*"])
def test_unreadable(data: bytes) -> None:
    with pytest.raises(X12Error):
        read_interchanges(data)


def test_money_format() -> None:
    assert [money(Decimal(v)) for v in ("100.00", "100.50", "100.555", "-12.30", "0.00", "7")] == [
        "100",
        "100.5",
        "100.56",
        "-12.3",
        "0",
        "7",
    ]


def test_bom_file_refused_and_cob_claim_adjudicated_as_secondary(tmp_path: Path) -> None:
    config = make_config(tmp_path / "root", payers={"default": {"check_npi": False, "denial_rate": "0"}})
    for name in (
        "OopFactory.X12__837P_5010_Example1_2_And_3_Combined.txt",
        "badX12__X222-COB-claim-from-billing-provider-to-payer-b.edi",
    ):
        drop(config, name, (FIXTURES / "837p" / name).read_bytes())
    written = process_inbox_once(config)
    for path in written:
        assert_valid(path)
    # A UTF-8 byte-order mark (and GS08 005010X222 without A1): both sets rejected, nothing goes further.
    combined = [p for p in written if p.name.startswith("OopFactory")]
    assert [p.suffix for p in combined] == [".999"]
    s999 = segments(combined[0])
    assert find(s999, "AK9")[0][1:5] == ["R", "2", "2", "0"] and [s[1] for s in find(s999, "IK5")] == ["R", "R"]

    (remit,) = [r for p in written if p.suffix == ".835" for r in read_835(p)]
    assert_balanced(remit)
    assert remit.claims[0].clp[1:3] == ["26407789", "2"]
    assert [a for ln in remit.claims[0].lines for a in ln.adjustments if a[0] == "OA"] == [
        ("OA", "23", Decimal("26.66")),  # what the primary paid, capped at what this payer allows (62 % of 43)
        ("OA", "23", Decimal("9.3")),
        ("OA", "23", Decimal("13.04")),
    ]
