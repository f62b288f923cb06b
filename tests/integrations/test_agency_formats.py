"""Agency file formats: configured formats are validated with errors naming the field; records written in CSV and
fixed-width layouts read back to the same values; values that would be cut short are refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.agency_formats import (
    DEFAULT_FORMAT,
    FormatError,
    accounts_from_records,
    parse,
    render,
    validate_format,
)
from medbill.errors import Invalid

ACCOUNTS = [
    {
        "account_number": "ACC-1",
        "placement_id": 7,
        "placed_date": date(2026, 11, 2),
        "total_placed": Decimal("180.50"),
        "patient_first_name": "José",
        "patient_last_name": "Núñez, Jr",
        "patient_date_of_birth": date(1980, 2, 3),
        "guarantor_last_name": "Núñez",
        "last_payment_date": None,
        "last_payment_amount": None,
        "insurance_payer_name": "Acme Health",
        "services": [
            {"service_date": date(2026, 5, 1), "service_balance": Decimal("100.00")},
            {"service_date": date(2026, 6, 9), "service_balance": Decimal("80.50")},
        ],
    },
    {
        "account_number": "ACC-2",
        "placement_id": 8,
        "placed_date": date(2026, 11, 2),
        "total_placed": Decimal("25.00"),
        "patient_first_name": "Ann",
        "patient_last_name": "Lee",
        "patient_date_of_birth": date(1975, 12, 31),
        "guarantor_last_name": "Lee",
        "last_payment_date": date(2026, 7, 1),
        "last_payment_amount": Decimal("10.00"),
        "insurance_payer_name": "",
        "services": [{"service_date": date(2026, 4, 30), "service_balance": Decimal("25.00")}],
    },
]

CSV_BY_SERVICE = {
    "type": "csv",
    "rows": "service_date",
    "date_format": "%m/%d/%Y",
    "delimiter": "|",
    "columns": [
        {"constant": "D", "heading": "Rec"},
        {"field": "account_number", "heading": "Acct"},
        {"field": "patient_last_name", "heading": "Last"},
        {"field": "patient_first_name", "heading": "First"},
        {"field": "patient_date_of_birth", "heading": "DOB"},
        {"field": "service_date", "heading": "DOS"},
        {"field": "service_balance", "heading": "Bal"},
        {"field": "total_placed", "heading": "Placed"},
        {"field": "last_payment_date", "heading": "LastPayDate"},
        {"field": "last_payment_amount", "heading": "LastPay"},
    ],
}

FIXED_BY_ACCOUNT = {
    "type": "fixed",
    "rows": "account",
    "date_format": "%Y%m%d",
    "money": "cents",
    "record_length": 140,
    "fields": [
        {"constant": "P", "start": 1, "length": 1},
        {"field": "account_number", "start": 2, "length": 12},
        {"field": "patient_last_name", "start": 14, "length": 8},
        {"field": "patient_first_name", "start": 22, "length": 10},
        {"field": "patient_date_of_birth", "start": 32, "length": 8},
        {"field": "total_placed", "start": 40, "length": 10, "align": "right", "pad": "0"},
        {"field": "last_payment_amount", "start": 50, "length": 8, "align": "right", "pad": "0"},
        {"field": "last_payment_date", "start": 58, "length": 8},
        {"field": "balances_by_dos", "start": 66, "length": 60},
        {"field": "placement_id", "start": 126, "length": 6, "align": "right", "pad": "0"},
    ],
}


def test_csv_per_service_date_round_trip():
    fmt = validate_format(CSV_BY_SERVICE)
    data = render(fmt, ACCOUNTS)
    lines = data.decode().split("\r\n")
    assert lines[0] == "Rec|Acct|Last|First|DOB|DOS|Bal|Placed|LastPayDate|LastPay"
    assert lines[1] == "D|ACC-1|Núñez, Jr|José|02/03/1980|05/01/2026|100.00|180.50||"
    assert len([line for line in lines if line]) == 4  # header + 3 dates of service
    accounts = accounts_from_records(fmt, parse(fmt, data))
    assert [a["account_number"] for a in accounts] == ["ACC-1", "ACC-2"]
    first = accounts[0]
    assert first["patient_last_name"] == "Núñez, Jr" and first["patient_date_of_birth"] == date(1980, 2, 3)
    assert first["services"] == ACCOUNTS[0]["services"]
    assert first["last_payment_amount"] is None
    assert accounts[1]["last_payment_amount"] == Decimal("10.00")
    assert accounts[1]["last_payment_date"] == date(2026, 7, 1)


def test_fixed_width_per_account_round_trip():
    fmt = validate_format(FIXED_BY_ACCOUNT)
    data = render(fmt, ACCOUNTS)
    lines = data.decode("ascii").split("\r\n")[:-1]
    assert all(len(line) == 140 for line in lines)
    first = lines[0]
    assert first[0] == "P"
    assert first[1:13] == "ACC-1       "
    assert first[13:21] == "Nunez, J"  # accents folded to ASCII, long names cut to the field
    assert first[39:49] == "0000018050"  # implied decimal, zero padded
    assert first[49:57] == " " * 8  # no payment: blank, not zero
    assert first[125:131] == "000007"
    back = accounts_from_records(fmt, parse(fmt, data))
    assert back[0]["total_placed"] == Decimal("180.50")
    assert back[0]["services"] == ACCOUNTS[0]["services"]
    assert back[0]["last_payment_amount"] is None and back[0]["placement_id"] == 7
    assert back[1]["last_payment_amount"] == Decimal("10.00")
    assert back[1]["patient_date_of_birth"] == date(1975, 12, 31)


def test_default_format_is_valid_and_round_trips():
    fmt = validate_format(DEFAULT_FORMAT)
    back = accounts_from_records(fmt, parse(fmt, render(fmt, ACCOUNTS)))
    assert back[1]["total_placed"] == Decimal("25.00")
    assert back[0]["services"][1] == {"service_date": date(2026, 6, 9), "service_balance": Decimal("80.50")}


def test_amount_that_does_not_fit_is_refused_not_cut():
    fmt = validate_format(FIXED_BY_ACCOUNT)
    big = dict(ACCOUNTS[1], total_placed=Decimal("123456789.00"))
    with pytest.raises(FormatError) as info:
        render(fmt, [big])
    assert "total_placed" in info.value.errors


@pytest.mark.parametrize(
    ("change", "where", "text"),
    [
        ({"columns": [{"field": "nope", "heading": "X"}]}, "columns[0].field", "unknown field 'nope'"),
        ({"columns": [{"field": "service_date", "heading": "X"}], "rows": "account"}, "columns[0].field", "only with"),
        ({"date_format": "%Y-%m"}, "date_format", "whole date"),
        ({"date_format": "%Q"}, "date_format", ""),
        ({"columns": [{"field": "patient_last_name", "heading": "L"}]}, "columns", "account_number"),
        (
            {"columns": [{"field": "account_number", "heading": "A"}, {"field": "patient_city", "heading": "A"}]},
            "columns[1].heading",
            "twice",
        ),
        ({"delimiter": ""}, "delimiter", "one character"),
        ({"money": "float"}, "money", "cents"),
        ({"type": "xml"}, "type", "csv or fixed"),
    ],
)
def test_csv_format_errors_name_the_field(change, where, text):
    config = {"type": "csv", "columns": [{"field": "account_number", "heading": "Acct"}]} | change
    with pytest.raises(Invalid) as info:
        validate_format(config)
    assert where in info.value.errors, info.value.errors
    assert text in " ".join(info.value.errors[where])


def test_fixed_layout_errors_name_the_field():
    config = {
        "type": "fixed",
        "date_format": "%m/%d/%Y",
        "record_length": 9,
        "fields": [
            {"field": "account_number", "start": 1, "length": 10},
            {"field": "patient_city", "start": 5, "length": 4},
            {"field": "placed_date", "start": 20, "length": 8},
            {"field": "total_placed", "start": 0, "length": 5, "align": "middle"},
            {"field": "patient_state", "start": 40, "length": 2, "pad": "ab"},
        ],
    }
    with pytest.raises(Invalid) as info:
        validate_format(config)
    errors = info.value.errors
    assert "placed_date" in errors["fields[2].length"][0] and "10" in errors["fields[2].length"][0]
    assert "fields[3].start" in errors and "fields[3].align" in errors
    assert "fields[4].pad" in errors
    assert any("patient_city" in m and "overlaps account_number" in m for m in errors["fields"])
    assert "record_length" in errors


def test_report_format_reads_agency_payment_files():
    fmt = validate_format(
        {
            "type": "fixed",
            "purpose": "report",
            "date_format": "%Y%m%d",
            "money": "cents",
            "line_ending": "lf",
            "fields": [
                {"field": "account_number", "start": 1, "length": 10},
                {"field": "payment_date", "start": 11, "length": 8},
                {"field": "payment_amount", "start": 19, "length": 9, "align": "right", "pad": "0"},
                {"field": "payment_reference", "start": 28, "length": 12},
            ],
        }
    )
    data = b"ACC-1     20261120000004250RCPT-0001\nACC-2     20261121000000000RCPT-0002   \n"
    rows = parse(fmt, data)
    assert rows[0] == {
        "account_number": "ACC-1",
        "payment_date": date(2026, 11, 20),
        "payment_amount": Decimal("42.50"),
        "payment_reference": "RCPT-0001",
    }
    assert rows[1]["payment_amount"] == Decimal("0.00")
    with pytest.raises(Invalid) as info:
        validate_format({"type": "csv", "purpose": "report", "columns": [{"field": "account_number"}]})
    assert any("payment_amount" in m for m in info.value.errors["columns"])


def test_bad_values_in_a_file_name_line_and_field():
    fmt = validate_format(CSV_BY_SERVICE)
    data = render(fmt, ACCOUNTS).replace(b"100.00", b"1O0.00")
    with pytest.raises(Invalid) as info:
        parse(fmt, data)
    assert "line 2: service_balance" in info.value.errors
