"""CARC/RARC code lists: the packaged CSVs load, are complete enough and well formed, well-known codes mean what
billers expect, and codes render in words (unknown ones too, without raising). No database."""

from __future__ import annotations

import csv
import io
import re
from importlib import resources

import pytest

from billing import adjustment_codes as ac

HEADER = ["code", "description", "status", "start_date", "stop_date"]
# From billing/data/README.md: the source lists 407 CARC and 1216 RARC, deactivated codes included.
CARC_MIN, RARC_MIN = 400, 1200


def raw_rows(filename: str) -> list[list[str]]:
    text = resources.files("billing.data").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text, newline="")))


def natural_key(code: str) -> tuple:
    if code.isdigit():
        return (0, "", int(code))
    prefix, number = re.fullmatch(r"([A-Z]+)(\d+)", code).groups()
    return (1, prefix, int(number))


@pytest.mark.parametrize("filename", ["carc.csv", "rarc.csv"])
def test_csv_is_well_formed(filename):
    header, *rows = raw_rows(filename)
    assert header == HEADER
    codes = [row[0] for row in rows]
    assert all(len(row) == len(HEADER) for row in rows)
    assert len(codes) == len(set(codes)), "duplicate codes"
    assert all(re.fullmatch(r"\d{1,3}|[A-Z]{1,2}\d{1,3}", code) for code in codes)
    assert all(row[1].strip() and row[1] == row[1].strip() for row in rows), "every code needs a description"
    assert {row[2] for row in rows} <= {"active", "deactivated"}
    assert all(
        re.fullmatch(r"(\d{4}-\d{2}-\d{2})?", row[3]) and re.fullmatch(r"(\d{4}-\d{2}-\d{2})?", row[4]) for row in rows
    )
    assert codes == sorted(codes, key=natural_key), "rows must be sorted by code"


def test_carc_order_is_numeric_then_alphanumeric():
    codes = list(ac.carc_codes())
    assert codes[:3] == ["1", "2", "3"]
    first_alpha = next(i for i, c in enumerate(codes) if not c.isdigit())
    assert all(c.isdigit() for c in codes[:first_alpha]) and not any(c.isdigit() for c in codes[first_alpha:])
    assert codes[first_alpha] == "A0"
    assert codes.index("B9") < codes.index("B10")


def test_lists_load_with_sensible_counts_and_keep_deactivated_codes():
    carcs, rarcs = ac.carc_codes(), ac.rarc_codes()
    assert len(carcs) >= CARC_MIN and len(rarcs) >= RARC_MIN
    assert sum(info.active for info in carcs.values()) >= 290
    assert sum(info.active for info in rarcs.values()) >= 1100
    # Retired codes stay describable: old remittances and reversals still carry them.
    assert ac.carc("15").status == "deactivated" and not ac.carc("15").active
    assert ac.carc("W1").status == "deactivated"
    assert ac.rarc("M33").status == "deactivated"
    assert ac.carc("45").active and ac.rarc("N130").active
    assert ac.carc_codes() is carcs  # loaded once


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("1", "deductible"),
        ("2", "coinsurance"),
        ("3", "co-payment"),
        ("16", "lacks information"),
        ("18", "exact duplicate"),
        ("29", "time limit for filing has expired"),
        ("45", "charge exceeds fee schedule"),
        ("50", "not deemed a 'medical necessity'"),
        ("97", "included in the payment/allowance for another service"),
        ("22", "coordination of benefits"),
        ("A1", "claim/service denied"),
        ("B15", "qualifying service/procedure"),
        ("P32", "apportionment"),
    ],
)
def test_well_known_carcs(code, words):
    info = ac.carc(code)
    assert info is not None and info.code == code
    assert words in info.description.lower()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("N130", "consult plan benefit documents/guidelines"),
        ("M15", "bundled"),
        ("N115", "local coverage determination"),
        ("MA130", "unprocessable"),
        ("M51", "procedure code"),
        ("N877", "no surprises act"),
    ],
)
def test_well_known_rarcs(code, words):
    info = ac.rarc(code)
    assert info is not None and info.code == code
    assert words in info.description.lower()


def test_lookup_normalizes_and_misses_cleanly():
    assert ac.carc(" a1 ") is ac.carc("A1")
    assert ac.carc(45) is ac.carc("45")
    assert ac.rarc("ma130") is ac.rarc("MA130")
    assert ac.carc("999") is None and ac.rarc("N999999") is None
    assert ac.carc("") is None and ac.rarc(None) is None
    assert ac.carc("N130") is None and ac.rarc("45") is None  # the two lists are separate


def test_describe_adjustment():
    assert ac.describe_adjustment("CO", "45") == (
        "CO-45: Charge exceeds fee schedule/maximum allowable or contracted/legislated fee arrangement."
    )
    assert ac.describe_adjustment("pr", "1") == "PR-1: Deductible Amount"
    assert ac.describe_adjustment("OA", "18") == (
        "OA-18: Exact duplicate claim/service (Use only with Group Code OA except where state workers' compensation "
        "regulations requires CO)"
    )
    assert ac.describe_adjustment("CO", "45", group_in_words=True).startswith(
        "CO-45 (Contractual obligation): Charge exceeds fee schedule"
    )
    assert ac.describe_adjustment("PR", "2", group_in_words=True) == "PR-2 (Patient responsibility): Coinsurance Amount"
    assert ac.describe_adjustment("", "97").startswith("CARC 97: The benefit for this service is included")
    # "Usage:" notes are for payers; the biller sees the meaning.
    assert "Usage:" in ac.carc("97").description and "Usage:" not in ac.describe_adjustment("CO", "97")
    assert ac.describe_adjustment("CO", "15").endswith("(deactivated code)")


def test_groups_in_words():
    assert ac.GROUPS == {
        "CO": "Contractual obligation",
        "PR": "Patient responsibility",
        "OA": "Other adjustments",
        "PI": "Payer initiated reductions",
        "CR": "Correction and reversal",
    }
    assert ac.describe_group("pi") == "Payer initiated reductions"
    assert ac.describe_group("ZZ") == "Group ZZ (not a claim adjustment group code)"


def test_describe_remark():
    assert ac.describe_remark("N130") == (
        "N130: Consult plan benefit documents/guidelines for information about restrictions for this service."
    )
    assert ac.describe_remark(" m15 ").startswith("M15: Separately billed services/tests have been bundled")
    assert ac.describe_remark("M33").endswith("(deactivated code)")


def test_unknown_codes_render_instead_of_raising():
    version = ac.CODE_LISTS_VERSION
    assert version and "2026-08-17" in version
    assert ac.describe_adjustment("CO", "999") == f"CO-999: CARC 999 (not in the code list of {version})"
    assert ac.describe_remark("X1") == f"RARC X1 (not in the code list of {version})"
    assert ac.describe_adjustment(None, "999") == f"CARC 999 (not in the code list of {version})"
    assert ac.describe_adjustment("", "") == f"CARC (blank) (not in the code list of {version})"
    assert ac.describe_remark(None) == f"RARC (blank) (not in the code list of {version})"


def test_code_info_summary():
    info = ac.CodeInfo(code="X", description="Meaning. Usage: how to send it.", status="active")
    assert info.summary == "Meaning." and info.active
    assert ac.CodeInfo(code="Y", description="No usage note.", status="deactivated").summary == "No usage note."
