"""Reports over HTTP agree with billing.reports and with the ledger to the cent: the monthly summary (12 months, month
over month), A/R aging and its drill-down, provider allocation, deposit reconciliation and the company overview; every
report's CSV parses back to the JSON's figures. Doctors, billers and admins read them; an agency is refused, another
tenant's practice is a 404. The data is real: the sandbox clearinghouse's 835 for our claims, posted, plus one claim
submitted and not yet paid (so a payer owes something)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing import ledger, reports, submissions
from billing.claim_status import transition
from billing.models import Claim
from integrations.x12.remit835 import Remittance, parse_835
from tenants.models import AuditEntry, Practice
from tests.billing.factories import BillingPractice, insured_patient, visit
from tests.billing.test_posting import _intake, remitted  # noqa: F401  (the module fixture: claims remitted by the sandbox)
from tests.conftest import login

ZERO = Decimal("0.00")


@dataclass
class Reported:
    bp: BillingPractice
    remittance: Remittance
    open_claim_id: int
    users: dict[str, str]
    other_slug: str  # a second practice of the same company
    foreign_slug: str  # a practice of another company


def submit_one_claim(services, factory, bp: BillingPractice) -> int:
    """A claim sent to the payer (its charges posted) that no remittance has answered: the payer owes it."""
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
        return claim.id


def practice_and_company(services, slug: str):
    with services.db.shared_session() as s:
        practice = s.scalar(select(Practice).where(Practice.slug == slug))
        return SimpleNamespace(id=practice.id), SimpleNamespace(id=practice.company_id)


def make_reported(services, factory, remitted_) -> Reported:
    bp, _claim_ids, era = remitted_
    _intake(services, bp, era)
    (remittance,) = parse_835(era.encode())
    open_claim_id = submit_one_claim(services, factory, bp)
    practice, company = practice_and_company(services, bp.slug)
    other = factory.practice(bp.company_slug)
    foreign = factory.practice(factory.company().slug)
    agency = factory.agency([bp.slug])
    users = {
        "doctor": factory.user("doctor", practice=practice),
        "biller": bp.biller_email,
        "admin": factory.user("company_admin", company=company),
        "agency": factory.user("agency", agency=agency),
        "foreign_biller": factory.user("biller", company=SimpleNamespace(id=foreign.company_id)),
        "other_doctor": factory.user("doctor", practice=other),
    }
    return Reported(bp, remittance, open_claim_id, users, other.slug, foreign.slug)


@pytest.fixture(scope="module")
def reported(services, factory, remitted) -> Reported:  # noqa: F811
    return make_reported(services, factory, remitted)


def _get(client, headers, path: str, **query):
    response = client.get(path, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _csv(client, headers, path: str, **query) -> list[dict]:
    response = client.get(path, headers=headers, query_string={**query, "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv", response.data[:300]
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _text(value) -> str:
    """A JSON value as its CSV cell."""
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _sum(values) -> Decimal:
    return sum((Decimal(v) for v in values), ZERO)


def base(r: Reported, slug: str | None = None) -> str:
    return f"/api/v1/practices/{slug or r.bp.slug}/reports"


# --- the monthly summary ----------------------------------------------------------------------------------------------


def test_monthly_summary_is_billing_reports_and_the_ledger(client, services, reported):
    r = reported
    headers = login(client, r.users["doctor"])
    body = _get(client, headers, f"{base(r)}/monthly-summary")
    with services.db.tenant_session(r.bp.slug) as s:
        summary = reports.monthly_summary(s, date.today())
        balance = ledger.practice_balance(s)
    assert len(body["months"]) == 12 and body["month"] == date.today().strftime("%Y-%m")
    for got, expected in zip(body["months"], summary.months, strict=True):
        assert got["month"] == expected.month.strftime("%Y-%m")
        for key in ("charges", "payments", "insurance_payments", "contractual_adjustments", "other_adjustments",
                    "refunds", "ar_end"):  # fmt: skip
            assert got[key] == _money(getattr(expected, key)), key
        assert got["net_collection_rate"] == (
            None if expected.net_collection_rate is None else str(expected.net_collection_rate)
        )
    month = body["figures"]
    remitted_charges = _sum(clp.total_charge for clp in r.remittance.claims)
    with services.db.tenant_session(r.bp.slug) as s:
        open_charge = s.get(Claim, r.open_claim_id).total_charge
    assert Decimal(month["charges"]) == remitted_charges + open_charge
    assert Decimal(month["insurance_payments"]) == _sum(clp.paid for clp in r.remittance.claims)
    assert Decimal(month["ar_end"]) == balance.total
    expected_net = (
        Decimal(month["payments"]) * 100 / (Decimal(month["charges"]) - Decimal(month["contractual_adjustments"]))
    )
    assert month["net_collection_rate"] == str(expected_net.quantize(Decimal("0.1")))
    assert month["claims_adjudicated"] == len(r.remittance.claims)
    # Nothing happened the month before: the change is the month itself, with no percentage.
    assert body["previous"]["charges"] == "0.00"
    assert body["change"]["charges"] == {"amount": month["charges"], "percent": None}
    assert body["change"]["net_collection_rate"]["amount"] is None


def test_monthly_summary_csv_is_the_json(client, reported):
    r = reported
    headers = login(client, r.users["biller"])
    body = _get(client, headers, f"{base(r)}/monthly-summary", month=date.today().strftime("%Y-%m"))
    rows = _csv(client, headers, f"{base(r)}/monthly-summary", month=date.today().strftime("%Y-%m"))
    assert len(rows) == 12
    for row, month in zip(rows, body["months"], strict=True):
        assert row == {key: _text(value) for key, value in month.items()}


def test_a_month_asked_for_is_that_month_and_bad_months_are_refused(client, reported):
    r = reported
    headers = login(client, r.users["doctor"])
    body = _get(client, headers, f"{base(r)}/monthly-summary", month="2025-01", months=3)
    assert [m["month"] for m in body["months"]] == ["2024-11", "2024-12", "2025-01"]
    assert all(m["charges"] == "0.00" and m["net_collection_rate"] is None for m in body["months"])
    for bad in ("2025-13", "2025-1", "january"):
        response = client.get(f"{base(r)}/monthly-summary", headers=headers, query_string={"month": bad})
        assert response.status_code == 422 and "month" in response.get_json()["errors"]


# --- A/R aging ------------------------------------------------------------------------------------------------------


def test_aging_adds_up_to_the_ledger_and_drills_down_to_claims(client, services, reported):
    r = reported
    headers = login(client, r.users["biller"])
    body = _get(client, headers, f"{base(r)}/ar-aging")
    with services.db.tenant_session(r.bp.slug) as s:
        balance = ledger.practice_balance(s)
        open_charge = s.get(Claim, r.open_claim_id).total_charge
    assert body["buckets"] == ["0-30", "31-60", "61-90", "91-120", "120+"]
    assert Decimal(body["totals"]["total"]) == balance.total
    patients = next(row for row in body["rows"] if row["key"] == "patients")
    assert Decimal(patients["total"]) == balance.patient
    (payer,) = [row for row in body["rows"] if row["kind"] == "payer"]
    assert payer["key"] == f"payer:{r.bp.payer_id}" and Decimal(payer["total"]) == open_charge == balance.insurance
    for row in body["rows"]:
        assert _sum(row["buckets"].values()) == Decimal(row["total"])
        for bucket, amount in row["buckets"].items():
            if amount == "0.00":
                continue
            cell = _get(client, headers, f"{base(r)}/ar-aging/claims", row=row["key"], bucket=bucket)
            assert cell["total_owed"] == amount == _money(_sum(i["owed"] for i in cell["items"]))
            assert cell["meta"]["total"] == len(cell["items"])
            if row["kind"] == "payer":
                assert [i["claim_id"] for i in cell["items"]] == [r.open_claim_id]
            cell_rows = _csv(client, headers, f"{base(r)}/ar-aging/claims", row=row["key"], bucket=bucket)
            assert cell_rows == [{k: _text(v) for k, v in item.items()} for item in cell["items"]]
    with services.db.shared_session() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.object_type == "claim").order_by(AuditEntry.id.desc()))
        assert entry.action == "list" and entry.detail["view"] == "ar_aging"


def test_aging_csv_is_the_json(client, reported):
    r = reported
    headers = login(client, r.users["admin"])
    body = _get(client, headers, f"{base(r)}/ar-aging", as_of=date.today().isoformat())
    rows = _csv(client, headers, f"{base(r)}/ar-aging", as_of=date.today().isoformat())
    assert [row["key"] for row in rows] == [row["key"] for row in body["rows"]] + ["total"]
    for row, expected in zip(rows, body["rows"], strict=False):
        assert row == {
            "key": expected["key"],
            "label": expected["label"],
            **expected["buckets"],
            "total": expected["total"],
        }
    assert rows[-1] == {"key": "total", "label": "Total", **body["totals"]["buckets"], "total": body["totals"]["total"]}


def test_a_drill_down_into_no_cell_is_refused(client, reported):
    r = reported
    headers = login(client, r.users["biller"])
    refused = (
        ({"row": "payer:x", "bucket": "0-30"}, "row"),
        ({"row": "patients", "bucket": "7-9"}, "bucket"),
        ({"bucket": "0-30"}, "row"),
    )
    for query, field in refused:
        response = client.get(f"{base(r)}/ar-aging/claims", headers=headers, query_string=query)
        assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()


# --- provider allocation and deposits ---------------------------------------------------------------------------------


def test_allocation_accounts_for_every_payment_and_its_csv_is_the_json(client, reported):
    r = reported
    headers = login(client, r.users["doctor"])
    body = _get(client, headers, f"{base(r)}/provider-allocation")
    paid = _sum(clp.paid for clp in r.remittance.claims)
    assert Decimal(body["total"]) == paid == _sum(i["amount"] for i in body["items"])
    assert _sum(p["amount"] for p in body["providers"]) == paid == _sum(p["amount"] for p in body["payers"])
    assert {i["provider_id"] for i in body["items"]} == {r.bp.provider_id}
    assert body["providers"][0]["provider"] == "Reyes, Ana"
    rows = _csv(client, headers, f"{base(r)}/provider-allocation")
    assert rows == [{k: _text(v) for k, v in item.items()} for item in body["items"]]
    # A range with no payments in it.
    empty = _get(client, headers, f"{base(r)}/provider-allocation", start="2024-01-01", end="2024-03-31")
    assert empty["items"] == [] and empty["total"] == "0.00"
    response = client.get(f"{base(r)}/provider-allocation", headers=headers,
                          query_string={"start": "2024-03-01", "end": "2024-01-01"})  # fmt: skip
    assert response.status_code == 422 and "end" in response.get_json()["errors"]


def test_every_deposit_reconciles_and_its_csv_is_the_json(client, reported):
    r = reported
    headers = login(client, r.users["biller"])
    body = _get(client, headers, f"{base(r)}/deposits")
    (deposit,) = body["items"]
    assert Decimal(deposit["amount"]) == r.remittance.total_payment
    assert deposit["trace_number"] == r.remittance.trace_number
    assert deposit["difference"] == "0.00" and deposit["reconciled"] is True and body["unreconciled"] == 0
    assert Decimal(deposit["posted_payments"]) == _sum(clp.paid for clp in r.remittance.claims)
    rows = _csv(client, headers, f"{base(r)}/deposits")
    assert rows == [{k: _text(v) for k, v in item.items()} for item in body["items"]]


# --- the company overview ---------------------------------------------------------------------------------------------


def test_company_overview_lists_the_companys_practices_with_their_figures_and_queues(client, services, reported):
    r = reported
    headers = login(client, r.users["biller"])
    body = _get(client, headers, "/api/v1/reports/company-overview")
    assert [q["name"] for q in body["queues"]] == list(reports.WORK_QUEUES)
    assert {"rejections", "denials", "underpayments", "posting_exceptions"} <= set(reports.WORK_QUEUES)
    slugs = [p["slug"] for p in body["practices"]]
    assert set(slugs) == {r.bp.slug, r.other_slug} and r.foreign_slug not in slugs
    mine = next(p for p in body["practices"] if p["slug"] == r.bp.slug)
    summary = _get(client, headers, f"{base(r)}/monthly-summary", months=1)["figures"]
    with services.db.tenant_session(r.bp.slug) as s:
        assert Decimal(mine["ar_total"]) == ledger.practice_balance(s).total
        rejected = s.scalar(select(reports.func.count()).select_from(Claim).where(Claim.status == "rejected"))
    assert mine["charges"] == summary["charges"] and mine["payments"] == summary["payments"]
    assert mine["queues"]["rejections"] == rejected and mine["queues"]["posting_exceptions"] == 0
    other = next(p for p in body["practices"] if p["slug"] == r.other_slug)
    assert other["ar_total"] == "0.00" and set(other["queues"].values()) == {0}
    assert body["totals"]["ar_total"] == _money(_sum(p["ar_total"] for p in body["practices"]))
    rows = _csv(client, headers, "/api/v1/reports/company-overview")
    assert [row["practice"] for row in rows] == slugs + ["total"]
    for row, practice in zip(rows, body["practices"], strict=False):
        assert row["ar_total"] == practice["ar_total"] and row["charges"] == practice["charges"]
        assert {n: int(row[n]) for n in practice["queues"]} == practice["queues"]
    assert rows[-1]["ar_total"] == body["totals"]["ar_total"]


def test_company_overview_is_for_company_users(client, reported):
    r = reported
    for user in ("doctor", "agency"):
        response = client.get("/api/v1/reports/company-overview", headers=login(client, r.users[user]))
        assert response.status_code == 403, user
    headers = login(client, r.users["foreign_biller"])
    body = _get(client, headers, "/api/v1/reports/company-overview")
    assert [p["slug"] for p in body["practices"]] == [r.foreign_slug]
    response = client.get(
        "/api/v1/reports/company-overview", headers=headers, query_string={"company": r.bp.company_slug}
    )
    assert response.status_code == 404


# --- who may read reports ---------------------------------------------------------------------------------------------

REPORT_PATHS = ("monthly-summary", "ar-aging", "provider-allocation", "deposits")


def test_agencies_are_refused_and_other_tenants_see_no_practice(client, reported):
    r = reported
    agency = login(client, r.users["agency"])
    for path in REPORT_PATHS:
        assert client.get(f"{base(r)}/{path}", headers=agency).status_code in (403, 404), path
        for user in ("foreign_biller", "other_doctor"):
            response = client.get(f"{base(r)}/{path}", headers=login(client, r.users[user]))
            assert response.status_code == 404, (user, path)
            assert r.bp.slug in response.get_json()["message"]
    # The same 404 for a practice that does not exist.
    doctor = login(client, r.users["doctor"])
    assert client.get(f"{base(r, 'nosuchpractice')}/ar-aging", headers=doctor).status_code == 404
    # The claims behind the figures name patients: for billers and admins, not doctors.
    drill = {"row": "patients", "bucket": "0-30"}
    assert client.get(f"{base(r)}/ar-aging/claims", headers=doctor, query_string=drill).status_code == 403
    assert client.get(f"{base(r)}/ar-aging", query_string={"format": "csv"}).status_code == 401


def test_the_openapi_document_says_how_to_get_csv(client):
    spec = client.get("/api/openapi.json").get_json()
    reports_tag = next(t for t in spec["tags"] if t["name"] == "reports")
    assert "format=csv" in reports_tag["description"]
    params = spec["paths"]["/api/v1/practices/{slug}/reports/ar-aging"]["get"]["parameters"]
    assert any(p["name"] == "format" for p in params)
