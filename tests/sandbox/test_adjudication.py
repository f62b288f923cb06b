"""Payer behaviour: pricing, deductible consumed across claims, copays, denials, voids and replacements, interest,
remittance delay, and the JSON payer file. Every 835 is validated with pyx12 and checked for balance."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from integrations.sandbox import SandboxConfig, load_payers, process_inbox_once
from integrations.sandbox.ack277 import npi_valid
from tests.sandbox.conftest import drop, make_config
from tests.sandbox.helpers import (
    Remit,
    Txn,
    assert_balanced,
    assert_valid,
    build_837,
    claim,
    find,
    read_835,
    segments,
    subscriber,
)

NO_RANDOM_DENIALS = {"denial_rate": "0"}


def one_claim_837(pcn: str, lines, icn: int, **claim_kwargs) -> bytes:
    return build_837([Txn(entries=[(subscriber("MBR9001"), None, [claim(pcn, lines, **claim_kwargs)])])], icn=icn)


def run(config: SandboxConfig, name: str, data: bytes, *, validate: bool = True) -> list[Remit]:
    """Drop one file, run a pass, return the 835 payments (each checked for balance, and by pyx12 if asked).

    Only the 835s are validated here: pyx12 takes ~0.5 s a file, and the acknowledgments are covered elsewhere."""
    drop(config, name, data)
    written = process_inbox_once(config)
    remits = []
    for path in written:
        if path.suffix == ".835":
            if validate:
                assert_valid(path)
            for remit in read_835(path):
                assert_balanced(remit)
                remits.append(remit)
    return remits


def adjustments(remit: Remit) -> list[list[tuple[str, str, Decimal]]]:
    return [ln.adjustments for c in remit.claims for ln in c.lines]


def test_fee_schedule_deductible_consumed_across_claims_then_coinsurance(tmp_path: Path) -> None:
    payers = {"SBX01": {**NO_RANDOM_DENIALS, "fee_schedule": {"99213": "80.00"}, "deductible": "100"}}
    config = make_config(tmp_path / "root", payers=payers)

    (first,) = run(config, "a.837", one_claim_837("PCN-A", [("99213", "150", "LA-1")], icn=1))
    (line,) = first.claims[0].lines
    assert line.allowed == Decimal("80")
    assert line.adjustments == [("CO", "45", Decimal("70")), ("PR", "1", Decimal("80"))]
    assert first.claims[0].clp[3:6] == ["150", "0", "80"]
    assert first.bpr[1:5] == ["H", "0", "C", "NON"]  # nothing paid: a notification, no money moves

    (second,) = run(config, "b.837", one_claim_837("PCN-B", [("99213", "150", "LB-1")], icn=2))
    (line,) = second.claims[0].lines
    # 20 of deductible left, then 20 % coinsurance on the remaining 60.
    assert line.adjustments == [("CO", "45", Decimal("70")), ("PR", "1", Decimal("20")), ("PR", "2", Decimal("12"))]
    assert second.claims[0].clp[3:6] == ["150", "48", "32"]
    assert second.bpr[1:5] == ["I", "48", "C", "ACH"]

    state = json.loads((config.root / ".sandbox" / "state.json").read_text())
    assert list(state["deductible_used"].values()) == ["100.00"]


def test_percent_of_charge_copay_and_cents(tmp_path: Path) -> None:
    payers = {
        "default": {
            **NO_RANDOM_DENIALS,
            "deductible": "0",
            "allowed_percent_of_charge": "62.5",
            "copay_by_place_of_service": {"11": "25"},
            "payment_method": "CHK",
        }
    }
    config = make_config(tmp_path / "root", payers=payers)
    (remit,) = run(config, "c.837", one_claim_837("PCN-C", [("99213", "99.99", "L1"), ("36415", "10.01", "L2")], 3))
    first, second = remit.claims[0].lines
    # 62.5 % of 99.99 = 62.49375 -> 62.49; the visit copay is taken once, on the first line.
    assert first.allowed == Decimal("62.49")
    assert first.adjustments == [("CO", "45", Decimal("37.5")), ("PR", "2", Decimal("7.5")), ("PR", "3", Decimal("25"))]
    assert second.allowed == Decimal("6.26")
    assert second.adjustments == [("CO", "45", Decimal("3.75")), ("PR", "2", Decimal("1.25"))]
    assert remit.bpr[4] == "CHK"


def test_every_line_denied_with_real_codes(tmp_path: Path) -> None:
    config = make_config(tmp_path / "root", payers={"default": {"denial_rate": "1"}})
    lines = [(code, "100", f"L{n}") for n, code in enumerate(["99213", "99214", "85025", "87880", "36415", "81002"])]
    (remit,) = run(config, "d.837", one_claim_837("PCN-D", lines, 4))
    (c,) = remit.claims
    assert c.clp[2] == "4" and c.clp[4] == "0"
    known = {("CO", "50"), ("CO", "16"), ("CO", "97"), ("CO", "29"), ("CO", "197"), ("PR", "204"), ("CO", "18")}
    for ln in c.lines:
        ((group, reason, amount),) = ln.adjustments
        assert (group, reason) in known and amount == Decimal("100")
        assert ln.allowed is None
        if (group, reason) in {("CO", "50"), ("CO", "16"), ("CO", "97"), ("CO", "197"), ("PR", "204")}:
            assert ln.remarks, f"{group}-{reason} comes with a remark code"
    # Deterministic: the same claim in a fresh sandbox is denied for the same reasons.
    again = make_config(tmp_path / "other", payers={"default": {"denial_rate": "1"}})
    (remit2,) = run(again, "d.837", one_claim_837("PCN-D", lines, 4), validate=False)
    assert adjustments(remit2) == adjustments(remit)


def test_replacement_reverses_the_original_and_void_takes_it_back(tmp_path: Path) -> None:
    config = make_config(tmp_path / "root", payers={"default": {**NO_RANDOM_DENIALS, "deductible": "0"}})
    (original,) = run(config, "o.837", one_claim_837("PCN-R", [("99213", "150", "LR-1")], icn=10))
    (orig_claim,) = original.claims
    first_number = orig_claim.clp[7]
    assert orig_claim.clp[4] == "74.4"

    replacement = one_claim_837("PCN-R", [("99214", "200", "LR-1")], icn=11, frequency="7", original=first_number)
    (remit,) = run(config, "r.837", replacement)
    reversal, corrected = remit.claims
    assert reversal.clp[1:5] == ["PCN-R", "22", "-150", "-74.4"] and reversal.clp[7] == first_number
    assert reversal.lines[0].adjustments == [("CO", "45", Decimal("-57")), ("PR", "2", Decimal("-18.6"))]
    assert corrected.clp[1:3] == ["PCN-R", "1"] and corrected.clp[7] != first_number
    assert remit.bpr[2] == str(Decimal("99.2") - Decimal("74.4"))

    void = one_claim_837("PCN-R", [("99214", "200", "LR-1")], icn=12, frequency="8", original=corrected.clp[7])
    (taken_back,) = run(config, "v.837", void)
    (only,) = taken_back.claims
    assert only.clp[1:5] == ["PCN-R", "22", "-200", "-99.2"]
    # More taken back than paid in this run: carried forward (PLB FB), so the payment itself is zero.
    assert taken_back.bpr[1:3] == ["H", "0"]
    assert taken_back.plb and taken_back.plb[0][3].startswith("FB:") and taken_back.plb[0][4] == "-99.2"

    # A second void of the same claim finds nothing left to reverse: acknowledged, no 835.
    drop(config, "v2.837", one_claim_837("PCN-R", [("99214", "200", "")], icn=13, frequency="8", original="0"))
    written = process_inbox_once(config)
    assert [p.suffix for p in written] == [".999", ".277ca"]


def test_interest_plb_when_configured(tmp_path: Path) -> None:
    payers = {"default": {**NO_RANDOM_DENIALS, "deductible": "0", "interest_probability": "1", "interest_percent": "1"}}
    config = make_config(tmp_path / "root", payers=payers)
    (remit,) = run(config, "i.837", one_claim_837("PCN-I", [("99213", "1000", "LI-1")], 20))
    (plb,) = remit.plb
    assert plb[1] == "1234567893" and plb[2] == "20251231"
    assert plb[3].startswith("L6:") and plb[4] == "-4.96"
    assert remit.bpr[2] == "500.96"  # 496 paid + 4.96 interest


def test_remittance_waits_for_its_delay(tmp_path: Path) -> None:
    now = [datetime(2025, 3, 10, 10, 30)]
    config = make_config(tmp_path / "root", remit_delay_seconds=3600, clock=lambda: now[0])
    drop(config, "late.837", one_claim_837("PCN-L", [("99213", "150", "LL-1")], 30))
    first = process_inbox_once(config)
    assert sorted(p.suffix for p in first) == [".277ca", ".999"]
    now[0] += timedelta(minutes=59)
    assert process_inbox_once(config) == []
    now[0] += timedelta(minutes=1)
    (remit,) = process_inbox_once(config)
    assert remit.suffix == ".835"
    assert_valid(remit)
    assert [c.clp[1] for r in read_835(remit) for c in r.claims] == ["PCN-L"]
    assert find(segments(remit), "BPR")[0][16] == "20250310" and find(segments(remit), "DTM", "050")[0][2] == "20250310"


def test_future_date_edits_follow_the_clock(tmp_path: Path) -> None:
    late = make_config(tmp_path / "a", clock=lambda: datetime(2025, 2, 1, 12, 0))
    drop(late, "f.837", one_claim_837("PCN-F", [("99213", "150", "LF-1")], 40))
    written = process_inbox_once(late)
    s277 = segments([p for p in written if p.suffix == ".277ca"][0])
    assert [s[1] for s in find(s277, "STC") if s[1].startswith("A7")] == ["A7:187", "A7:187"]
    assert find(s277, "REF", "FJ")[0][2] == "LF-1"


def test_timely_filing_when_configured(tmp_path: Path) -> None:
    config = make_config(tmp_path / "root", payers={"default": {**NO_RANDOM_DENIALS, "timely_filing_days": 5}})
    (remit,) = run(config, "t.837", one_claim_837("PCN-T", [("99213", "150", "LT-1")], 50))
    assert remit.claims[0].clp[2] == "4"
    assert adjustments(remit) == [[("CO", "29", Decimal("150"))]]


def test_payer_file_keeps_numbers_exact(tmp_path: Path) -> None:
    path = tmp_path / "payers.json"
    path.write_text('{"default": {"denial_rate": 0.1}, "SBX01": {"fee_schedule": {"99213": 80.10}, "deductible": 0}}')
    payers = load_payers(path)
    assert payers["SBX01"]["fee_schedule"]["99213"] == Decimal("80.10")
    config = make_config(tmp_path / "root", payers=payers)
    behaviour = config.behaviour("SBX01")
    assert behaviour.fee_schedule == {"99213": Decimal("80.10")}
    assert behaviour.denial_rate == Decimal("0.1")
    assert behaviour.coinsurance_percent == Decimal("20")  # from the built-in default
    assert config.behaviour("OTHER").deductible == Decimal("250.00")


def test_npi_check_digit() -> None:
    assert npi_valid("1234567893") and npi_valid("1497758544") and npi_valid("1215954003")
    assert not npi_valid("1234567890") and not npi_valid("9876543210")
    assert not npi_valid("123456789") and not npi_valid("12345678AB")
