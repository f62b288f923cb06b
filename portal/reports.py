"""Report pages on the portal blueprint: the doctor's home (the practice's month at a glance, read-only), and the
billers' report pages (monthly summary, A/R aging with drill-down to the claims, provider allocation, deposit
reconciliation, the company overview), each with a CSV download (`?format=csv`, the same CSV as the API).

Figures come from the report shapes the API shows too (billing/report_reads.py), so the pages, the CSV and the API
always agree. Charts are matplotlib SVGs (integrations/charts.py) shown as images, each with the same figures in a
table as its text alternative. Access is resolved per practice with `reports:read` (a foreign practice answers 404;
an agency is refused); the drill-down lists patients' claims and writes an audit entry.

The doctor's home page route stays in portal/views.py: its template calls `doctor_month(current)` from here."""

from __future__ import annotations

import base64
import math
from datetime import date, timedelta
from decimal import Decimal

from flask import Response, current_app, redirect, render_template, request, url_for

from billing import report_reads as builders
from billing import reports
from integrations import charts
from integrations.storage import StorageError
from medbill.errors import Forbidden, Invalid, NotFound
from medbill.web import csv_response
from portal.views import _page_arg, bp, db, principal, tenant_db
from tenants import audit
from tenants.authz import PracticeAccess, resolve_practice

PER_PAGE = 25
MONTHS_SHOWN = 12
SUMMARY_ROWS = (
    ("charges", "Charges"),
    ("insurance_payments", "Insurance payments"),
    ("patient_payments", "Patient payments"),
    ("refunds", "Refunds"),
    ("payments", "Payments (net of refunds)"),
    ("contractual_adjustments", "Contractual adjustments"),
    ("other_adjustments", "Other adjustments and write-offs"),
    ("ar_end", "A/R at the end of the month"),
)
RATE_ROWS = (
    ("net_collection_rate", "Net collection rate", "%"),
    ("gross_collection_rate", "Gross collection rate", "%"),
    ("days_in_ar", "Days in A/R", " days"),
    ("denial_rate", "Denial rate", "%"),
    ("clean_claim_rate", "Clean-claim rate", "%"),
)
# Sortable columns of the long tables: ?sort=<key> ascending, ?sort=-<key> descending.
CLAIM_SORTS = {"age": "age_days", "owed": "owed", "claim": "claim_id"}
DEPOSIT_SORTS = {"date": "payment_date", "amount": "amount", "difference": "difference"}


# --- access and arguments ------------------------------------------------------------------------------------------


def _access(slug: str) -> PracticeAccess:
    access = resolve_practice(db(), principal(), slug, "reports:read")
    if access.placed_only:
        raise NotFound(f"practice {slug!r} not found")
    return access


def _can(access: PracticeAccess, permission: str) -> bool:
    return access.can(permission) and not access.placed_only


def _month_arg() -> date:
    try:
        return builders.parse_month(request.args.get("month") or None)
    except Invalid:
        return date.today().replace(day=1)


def _date_arg(name: str, default: date) -> date:
    try:
        return date.fromisoformat(request.args.get(name) or "")
    except ValueError:
        return default


def _range_args() -> tuple[date, date]:
    first = date.today().replace(day=1)
    start = _date_arg("start", first)
    end = _date_arg("end", builders.last_day(start.replace(day=1)))
    if end < start or (end - start).days > builders.MAX_RANGE_DAYS:
        end = builders.last_day(start.replace(day=1))
    return start, end


def _wants_csv() -> bool:
    return request.args.get("format") == "csv"


def _csv(name: str, table) -> Response:
    return csv_response(name, table)


def _sorted(items: list[dict], sorts: dict[str, str], default: str) -> tuple[list[dict], str]:
    sort = request.args.get("sort", default)
    key = sort.lstrip("-")
    if key not in sorts:
        sort, key = default, default.lstrip("-")
    field = sorts[key]
    ordered = sorted(items, key=lambda item: (item[field] is None, item[field]), reverse=sort.startswith("-"))
    return ordered, sort


def _paged(items: list) -> dict:
    page = _page_arg()
    pages = max(1, math.ceil(len(items) / PER_PAGE))
    page = min(page, pages)
    start = (page - 1) * PER_PAGE
    return {
        "rows": items[start : start + PER_PAGE],
        "page": page,
        "pages": pages,
        "total": len(items),
        "first_index": start + 1,
    }


def _svg(data: bytes) -> str:
    """An SVG as a data: URL for an <img> (the pages' CSP allows data: images, not inline styles)."""
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode()


# --- the pieces shared by the doctor's home and the report pages ---------------------------------------------------


def summary_view(access: PracticeAccess, month: date) -> dict:
    s = tenant_db(access)
    report = builders.summary_report(s, month, months=MONTHS_SHOWN)
    months = [
        {**m, "first": builders.parse_month(m["month"]), "short": builders.parse_month(m["month"]).strftime("%b %y")}
        for m in report["months"]
    ]
    chart = charts.charges_payments_chart(
        [m["short"] for m in months], [m["charges"] for m in months], [m["payments"] for m in months]
    )
    return {**report, "months": months, "chart": _svg(chart), "first": month}


def aging_view(access: PracticeAccess, as_of: date) -> dict:
    report = builders.aging_report(tenant_db(access), as_of)
    insurance = [
        sum((r["buckets"][b] for r in report["rows"] if r["kind"] == "payer"), reports.ZERO) for b in report["buckets"]
    ]
    patients = next((r for r in report["rows"] if r["kind"] == "patients"), None)
    chart = charts.aging_chart(
        report["buckets"], insurance, [patients["buckets"][b] if patients else reports.ZERO for b in report["buckets"]]
    )
    return {**report, "chart": _svg(chart)}


def allocation_view(access: PracticeAccess, start: date, end: date) -> dict:
    report = builders.allocation_report(tenant_db(access), start, end)
    chart = None
    if report["providers"]:
        chart = _svg(charts.provider_chart([p["provider"] for p in report["providers"]],
                                           [p["amount"] for p in report["providers"]]))  # fmt: skip
    return {**report, "chart": chart}


def pdf_available(access: PracticeAccess, month: date) -> bool:
    """Whether the monthly job has stored the month's PDF (one HEAD request to storage)."""
    try:
        return current_app.extensions["medbill"].storage.exists(reports.monthly_summary_key(access.slug, month))
    except StorageError:
        return False


def doctor_month(current) -> dict | None:
    """Everything the doctor's home shows for the practice `current` (from portal/views.py) and ?month=."""
    if current is None:
        return None
    access = _access(current.slug)
    month = _month_arg()
    as_of = min(date.today(), builders.last_day(month))
    return {
        "access": access,
        "month": month,
        "month_value": month.strftime("%Y-%m"),
        "this_month": date.today().strftime("%Y-%m"),
        "summary": summary_view(access, month),
        "aging": aging_view(access, as_of),
        "allocation": allocation_view(access, month, builders.last_day(month)),
        "pdf": pdf_available(access, month),
        "previous_month": (month - timedelta(days=1)).replace(day=1).strftime("%Y-%m"),
        "next_month": reports.next_month(month).strftime("%Y-%m") if month < date.today().replace(day=1) else None,
    }


def change_words(change: dict, unit: str = "money") -> str:
    """'up $120.00 (12.5%)', 'down 3.0 points', 'no change', '' when there is nothing to compare."""
    amount = change.get("amount")
    if amount is None:
        return ""
    if amount == 0:
        return "no change"
    direction = "up" if amount > 0 else "down"
    size = abs(amount)
    if unit == "money":
        text = f"{direction} ${size:,.2f}"
        if change.get("percent") is not None:
            text += f" ({abs(change['percent']):.1f}%)"
        return text
    return f"{direction} {size:.1f}{' points' if unit == '%' else ' days'}"


@bp.context_processor
def _report_template_globals():
    return {
        "doctor_month": doctor_month,
        "change_words": change_words,
        "summary_rows": SUMMARY_ROWS,
        "rate_rows": RATE_ROWS,
        "can_report": _can,
        "report_money": money_of,
    }


# --- the report pages -----------------------------------------------------------------------------------------------


@bp.get("/practices/<slug>/reports/summary")
def report_summary(slug: str):
    access = _access(slug)
    month = _month_arg()
    if _wants_csv():
        report = builders.summary_report(tenant_db(access), month, months=MONTHS_SHOWN)
        return _csv(f"{access.slug}-monthly-summary-{report['month']}", builders.summary_csv(report))
    return render_template(
        "portal/reports/summary.html",
        access=access,
        month=month,
        summary=summary_view(access, month),
        pdf=pdf_available(access, month),
    )


@bp.get("/practices/<slug>/reports/aging")
def report_aging(slug: str):
    access = _access(slug)
    as_of = _date_arg("as_of", date.today())
    if _wants_csv():
        report = builders.aging_report(tenant_db(access), as_of)
        return _csv(f"{access.slug}-ar-aging-{as_of}", builders.aging_csv(report))
    return render_template("portal/reports/aging.html", access=access, as_of=as_of, aging=aging_view(access, as_of))


@bp.get("/practices/<slug>/reports/aging/claims")
def report_aging_claims(slug: str):
    access = _access(slug)
    if not _can(access, "claims:read"):  # the claims behind a figure name patients: for those who work claims
        raise Forbidden("the claims behind the aging are for the billing company")
    as_of = _date_arg("as_of", date.today())
    row, bucket = request.args.get("row", ""), request.args.get("bucket", "")
    s = tenant_db(access)
    try:
        items = builders.aging_claims_report(s, as_of, row, bucket)
    except Invalid as exc:
        raise NotFound("no such cell of the aging table") from exc
    items, sort = _sorted(items, CLAIM_SORTS, "-age")
    paged = _paged(items)
    shown = items if _wants_csv() else paged["rows"]
    audit.record_access(s, access, "claim", None, "list",
                        {"view": "ar_aging", "row": row, "bucket": bucket, "ids": [i["claim_id"] for i in shown]},
                        ip=request.remote_addr)  # fmt: skip
    s.commit()
    if _wants_csv():
        name = f"{access.slug}-ar-aging-claims-{row.replace(':', '-')}-{bucket}"
        return _csv(name, builders.rows_csv(shown, builders.CLAIM_COLUMNS))
    label = (
        "Patients"
        if row == "patients"
        else next((r["label"] for r in builders.aging_report(s, as_of)["rows"] if r["key"] == row), row)
    )

    def list_url(**changes):
        args = {"as_of": as_of.isoformat(), "row": row, "bucket": bucket, "sort": sort} | changes
        return url_for("portal.report_aging_claims", slug=access.slug, **{k: v for k, v in args.items() if v})

    return render_template(
        "portal/reports/aging_claims.html",
        access=access,
        as_of=as_of,
        row=row,
        label=label,
        bucket=bucket,
        sort=sort,
        total_owed=sum((i["owed"] for i in items), reports.ZERO),
        links=_can(access, "claims:read"),
        list_url=list_url,
        page_url=lambda **kw: list_url(**kw),
        **paged,
    )


@bp.get("/practices/<slug>/reports/allocation")
def report_allocation(slug: str):
    access = _access(slug)
    start, end = _range_args()
    if _wants_csv():
        report = builders.allocation_report(tenant_db(access), start, end)
        return _csv(f"{access.slug}-provider-allocation-{start}-{end}",
                    builders.rows_csv(report["items"], builders.ALLOCATION_COLUMNS))  # fmt: skip
    allocation = allocation_view(access, start, end)
    paged = _paged(allocation["items"])
    return render_template(
        "portal/reports/allocation.html",
        access=access,
        start=start,
        end=end,
        allocation=allocation,
        page_url=lambda **kw: url_for("portal.report_allocation", slug=access.slug, start=start, end=end, **kw),
        **paged,
    )


@bp.get("/practices/<slug>/reports/deposits")
def report_deposits(slug: str):
    access = _access(slug)
    start, end = _range_args()
    report = builders.deposits_report(tenant_db(access), start, end)
    if _wants_csv():
        return _csv(
            f"{access.slug}-deposits-{start}-{end}", builders.rows_csv(report["items"], builders.DEPOSIT_COLUMNS)
        )
    items, sort = _sorted(report["items"], DEPOSIT_SORTS, "date")
    paged = _paged(items)

    def list_url(**changes):
        args = {"start": start.isoformat(), "end": end.isoformat(), "sort": sort} | changes
        return url_for("portal.report_deposits", slug=access.slug, **{k: v for k, v in args.items() if v})

    return render_template(
        "portal/reports/deposits.html",
        access=access,
        start=start,
        end=end,
        report=report,
        sort=sort,
        links=_can(access, "claims:read"),
        list_url=list_url,
        page_url=lambda **kw: list_url(**kw),
        **paged,
    )


@bp.get("/reports/company-overview")
def report_overview():
    month = _month_arg()
    report = builders.overview_report(current_app.extensions["medbill"].db, db(), principal(), month)
    if _wants_csv():
        return _csv(f"company-overview-{report['month']}", builders.overview_csv(report))
    return render_template("portal/reports/overview.html", month=month, report=report)


@bp.get("/practices/<slug>/reports/monthly-summary.pdf")
def report_pdf(slug: str):
    """The stored monthly summary PDF: audited, then a redirect to a short-lived link (one storage client)."""
    access = _access(slug)
    month = _month_arg()
    storage = current_app.extensions["medbill"].storage
    key = reports.monthly_summary_key(access.slug, month)
    if not pdf_available(access, month):
        raise NotFound("no PDF for this month yet")
    url = storage.presigned_url(key, download_name=f"{access.slug}-monthly-summary-{month:%Y-%m}.pdf")
    s = tenant_db(access)
    audit.record_access(s, access, "report", f"{month:%Y-%m}", "download", {"report": "monthly_summary_pdf"},
                        ip=request.remote_addr)  # fmt: skip
    s.commit()
    return redirect(url, code=302)


def money_of(value: Decimal | None) -> str:
    if value is None:
        return ""
    return f"−${-value:,.2f}" if value < 0 else f"${value:,.2f}"
