"""Reports over HTTP: the monthly revenue summary (12 months, month over month), A/R aging with the claims behind
each cell, payments allocated to rendering providers, deposits reconciled against what they posted, the doctor's
monthly summary PDF, and the billing company's overview across its practices.

Permission `reports:read` (doctors of the practice, billers, company admins); an agency never sees reports (404, as
if the practice were not there) and another tenant's practice is a 404. Money is a string with two decimals, rates
are strings with one decimal or null when there is nothing to divide by.

Every report is also CSV: add `?format=csv` (one header row, then the same figures as the JSON, money with two
decimals, an empty cell for null). The report shapes are billing/report_reads.py, shared with the portal
(portal/reports.py) so both show the same figures; this module holds the schemas and the routes."""

from __future__ import annotations

from datetime import date

from flask import current_app, redirect, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy, principal
from api.setup import Money
from billing import reports
from billing.report_reads import (
    ALLOCATION_COLUMNS,
    CLAIM_COLUMNS,
    DEPOSIT_COLUMNS,
    MAX_RANGE_DAYS,
    aging_claims_report,
    aging_csv,
    aging_report,
    allocation_report,
    deposits_report,
    last_day,
    month_label,
    overview_csv,
    overview_report,
    parse_month,
    rows_csv,
    summary_csv,
    summary_report,
)
from integrations.storage import StorageKeyNotFound
from medbill.errors import Forbidden, Invalid, NotFound
from medbill.web import csv_response
from tenants import audit

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1",
    description=(
        "Reports derived from the ledger: monthly summary, A/R aging with drill-down, provider allocation, deposit "
        "reconciliation, the monthly summary PDF and the billing company's overview. Every report answers CSV with "
        "`?format=csv` (a header row, then the JSON's figures; null is an empty cell)."
    ),
)


def csv_too(description: str, schema: type[Schema]) -> dict:
    """The 200 of a report in both its forms: JSON (the response schema) and, with ?format=csv, text/csv. (An
    alt_response for the same status replaces the JSON content in the document instead of adding to it.)"""
    content = {"application/json": {"schema": schema}, "text/csv": {"schema": {"type": "string"}}}
    return {"200": {"description": description, "content": content}}


MONTH_RE = r"^\d{4}-(0[1-9]|1[0-2])$"


# --- schemas -------------------------------------------------------------------------------------------------------


def Rate(**kwargs) -> fields.Decimal:  # noqa: N802 - reads like a field class
    """A percentage (or days) with one decimal as a string ("92.5"), null when there is nothing to divide by."""
    return fields.Decimal(as_string=True, places=1, allow_none=True, **kwargs)


class FormatArgs(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv")),
        metadata={"description": "csv: the same figures as CSV with a header row"},
    )


class MonthArgs(FormatArgs):
    month = fields.String(
        load_default=None, validate=validate.Regexp(MONTH_RE, error="expected YYYY-MM"), metadata={"example": "2026-10"}
    )


class SummaryArgs(MonthArgs):
    months = fields.Integer(load_default=12, validate=validate.Range(min=1, max=36))


class AsOfArgs(FormatArgs):
    as_of = fields.Date(load_default=None, metadata={"description": "default today"})


class AgingClaimArgs(AsOfArgs, PageArgs):
    row = fields.String(required=True, metadata={"description": "'patients' or 'payer:<id>' (an aging row's key)"})
    bucket = fields.String(required=True, validate=validate.OneOf([n for n, _l, _h in reports.AGING_BUCKETS]))


class RangeArgs(FormatArgs):
    start = fields.Date(load_default=None, metadata={"description": "first day (default: the 1st of this month)"})
    end = fields.Date(load_default=None, metadata={"description": "last day, included (default: end of start's month)"})

    @validates_schema
    def _range(self, data, **_kwargs):
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            raise ValidationError("must not be before start", "end")
        if start and end and (end - start).days > MAX_RANGE_DAYS:
            raise ValidationError(f"a range is at most {MAX_RANGE_DAYS} days", "end")


class PdfArgs(Schema):
    month = fields.String(required=True, validate=validate.Regexp(MONTH_RE, error="expected YYYY-MM"))
    redirect = fields.Boolean(
        load_default=True, metadata={"description": "false: answer the link as JSON instead of redirecting to it"}
    )


class OverviewArgs(MonthArgs):
    company = fields.String(load_default=None, metadata={"description": "only this billing company (its slug)"})


class FiguresOut(Schema):
    month = fields.String(required=True)
    charges = Money(required=True)
    insurance_payments = Money(required=True)
    patient_payments = Money(required=True)
    refunds = Money(required=True)
    payments = Money(required=True, metadata={"description": "insurance + patient payments - refunds"})
    contractual_adjustments = Money(required=True)
    other_adjustments = Money(required=True)
    adjustments = Money(required=True)
    ar_end = Money(required=True, metadata={"description": "A/R at the end of the month"})
    net_collection_rate = Rate(metadata={"description": "payments / (charges - contractual adjustments), %"})
    gross_collection_rate = Rate(metadata={"description": "payments / charges, %"})
    days_in_ar = Rate(metadata={"description": "A/R / average daily charges of the last 90 days"})
    denial_rate = Rate(metadata={"description": "denied / adjudicated claims, %"})
    clean_claim_rate = Rate(metadata={"description": "claims accepted on first submission, %"})
    claims_adjudicated = fields.Integer(required=True)
    claims_denied = fields.Integer(required=True)
    claims_first_answered = fields.Integer(required=True)
    claims_clean = fields.Integer(required=True)


class ChangeOut(Schema):
    amount = fields.Decimal(as_string=True, allow_none=True, metadata={"description": "this month - the previous"})
    percent = Rate()


class TopDenialReasonOut(Schema):
    group = fields.String(required=True)
    reason = fields.String(required=True)
    description = fields.String(required=True)
    count = fields.Integer(required=True)
    amount = Money(required=True)


class SummaryOut(Schema):
    month = fields.String(required=True)
    figures = fields.Nested(FiguresOut, required=True)
    previous = fields.Nested(FiguresOut, allow_none=True)
    change = fields.Dict(keys=fields.String(), values=fields.Nested(ChangeOut), required=True)
    months = fields.List(fields.Nested(FiguresOut), required=True, metadata={"description": "oldest first"})
    top_denial_reasons = fields.List(fields.Nested(TopDenialReasonOut), required=True)


class AgingRowOut(Schema):
    key = fields.String(required=True, metadata={"description": "'payer:<id>' or 'patients': the drill-down's row"})
    label = fields.String(required=True)
    kind = fields.String(required=True)
    buckets = fields.Dict(keys=fields.String(), values=Money(), required=True)
    total = Money(required=True)


class AgingTotalsOut(Schema):
    buckets = fields.Dict(keys=fields.String(), values=Money(), required=True)
    total = Money(required=True)


class AgingOut(Schema):
    as_of = fields.Date(required=True)
    buckets = fields.List(fields.String(), required=True)
    rows = fields.List(fields.Nested(AgingRowOut), required=True)
    totals = fields.Nested(AgingTotalsOut, required=True)


class AgingClaimOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    payer = fields.String(required=True)
    patient = fields.String(required=True)
    date_of_service = fields.Date(required=True)
    age_days = fields.Integer(required=True)
    owed = Money(required=True)


class AgingClaimPage(Schema):
    items = fields.List(fields.Nested(AgingClaimOut), required=True)
    total_owed = Money(required=True)
    meta = fields.Nested(PageMeta, required=True)


class AllocationOut(Schema):
    month = fields.String(required=True)
    provider_id = fields.Integer(required=True)
    provider = fields.String(required=True)
    payer = fields.String(required=True, metadata={"description": "'Patients' for patient payments"})
    amount = Money(required=True)


class ProviderTotalOut(Schema):
    provider_id = fields.Integer(required=True)
    provider = fields.String(required=True)
    amount = Money(required=True)


class PayerTotalOut(Schema):
    payer = fields.String(required=True)
    amount = Money(required=True)


class AllocationReportOut(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    items = fields.List(fields.Nested(AllocationOut), required=True)
    providers = fields.List(fields.Nested(ProviderTotalOut), required=True)
    payers = fields.List(fields.Nested(PayerTotalOut), required=True)
    total = Money(required=True)


class DepositReconciliationOut(Schema):
    deposit_id = fields.Integer(required=True)
    payment_date = fields.Date(allow_none=True)
    trace_number = fields.String(required=True)
    payer = fields.String(required=True)
    amount = Money(required=True)
    posted_payments = Money(required=True)
    provider_adjustments = Money(required=True)
    difference = Money(required=True, metadata={"description": "amount - (posted payments - PLB); 0 when reconciled"})
    reconciled = fields.Boolean(required=True)


class DepositTotalsOut(Schema):
    amount = Money(required=True)
    posted_payments = Money(required=True)
    provider_adjustments = Money(required=True)
    difference = Money(required=True)


class DepositReportOut(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    items = fields.List(fields.Nested(DepositReconciliationOut), required=True)
    totals = fields.Nested(DepositTotalsOut, required=True)
    unreconciled = fields.Integer(required=True)


class QueueOut(Schema):
    name = fields.String(required=True)
    label = fields.String(required=True)


class OverviewTotalsOut(Schema):
    ar_total = Money(required=True)
    charges = Money(required=True)
    payments = Money(required=True)
    queues = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class OverviewPracticeOut(OverviewTotalsOut):
    company = fields.String(required=True)
    company_name = fields.String(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)


class OverviewOut(Schema):
    month = fields.String(required=True)
    as_of = fields.Date(required=True, metadata={"description": "the day A/R is taken at"})
    queues = fields.List(fields.Nested(QueueOut), required=True, metadata={"description": "the queues counted"})
    practices = fields.List(fields.Nested(OverviewPracticeOut), required=True)
    totals = fields.Nested(OverviewTotalsOut, required=True)


class ReportLinkOut(Schema):
    url = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    filename = fields.String(required=True)


# --- routes --------------------------------------------------------------------------------------------------------


def _no_agency() -> None:
    # An agency holds no reports permission; should a role ever be both, the placed-only view still shows no report.
    if access().placed_only:
        raise NotFound(f"practice {access().slug!r} not found")


def _range(args) -> tuple[date, date]:
    start = args["start"] or date.today().replace(day=1)
    end = args["end"] or last_day(start.replace(day=1))
    if end < start:
        raise Invalid("end must not be before start", errors={"end": ["must not be before start"]})
    return start, end


def _csv_name(kind: str, suffix: str) -> str:
    return f"{access().slug}-{kind}-{suffix}"


@blp.route("/practices/<slug>/reports/monthly-summary", methods=["GET"])
@policy("reports:read")
@blp.arguments(SummaryArgs, location="query")
@blp.response(200, SummaryOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per month", SummaryOut))
def monthly_summary(args, slug: str):
    """The month's charges, payments, adjustments and refunds, collection rates, days in A/R, denial and clean-claim
    rates and A/R at the month's end; the change from the month before; the last `months` months (default 12)."""
    _no_agency()
    report = summary_report(db_session(), parse_month(args["month"]), months=args["months"])
    if args["format"] == "csv":
        return csv_response(_csv_name("monthly-summary", report["month"]), summary_csv(report))
    return report


@blp.route("/practices/<slug>/reports/ar-aging", methods=["GET"])
@policy("reports:read")
@blp.arguments(AsOfArgs, location="query")
@blp.response(200, AgingOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per payer, patients, then the total", AgingOut))
def ar_aging(args, slug: str):
    """What is owed at the end of `as_of` (default today) by age of the date of service (0-30 ... 120+ days), one
    row per payer and one for patients. Each cell's claims: `ar-aging/claims?row=<key>&bucket=<name>`."""
    _no_agency()
    report = aging_report(db_session(), args["as_of"] or date.today())
    if args["format"] == "csv":
        return csv_response(_csv_name("ar-aging", report["as_of"].isoformat()), aging_csv(report))
    return report


@blp.route("/practices/<slug>/reports/ar-aging/claims", methods=["GET"])
@policy("reports:read")
@blp.arguments(AgingClaimArgs, location="query")
@blp.response(200, AgingClaimPage)
@blp.doc(responses=csv_too("with ?format=csv: every claim of the cell", AgingClaimPage))
def ar_aging_claims(args, slug: str):
    """The claims behind one cell of the aging table (oldest date of service first), with what each still owes.
    They name patients: for callers who read claims (billers, admins), not for doctors, who see the figures."""
    _no_agency()
    if not access().can("claims:read"):
        raise Forbidden("the claims behind the aging are for those who work claims (billers and admins)")
    session = db_session()
    as_of = args["as_of"] or date.today()
    items = aging_claims_report(session, as_of, args["row"], args["bucket"])
    page, per_page = args["page"], args["per_page"]
    shown = items if args["format"] == "csv" else items[(page - 1) * per_page : page * per_page]
    audit.record_access(
        session, access(), "claim", None, "list",
        {"view": "ar_aging", "row": args["row"], "bucket": args["bucket"], "ids": [i["claim_id"] for i in shown]},
        ip=request.remote_addr,
    )  # fmt: skip
    session.commit()
    if args["format"] == "csv":
        name = _csv_name("ar-aging-claims", f"{args['row'].replace(':', '-')}-{args['bucket']}")
        return csv_response(name, rows_csv(shown, CLAIM_COLUMNS))
    return {
        "items": shown,
        "total_owed": sum((i["owed"] for i in items), reports.ZERO),
        "meta": {"page": page, "per_page": per_page, "total": len(items)},
    }


@blp.route("/practices/<slug>/reports/provider-allocation", methods=["GET"])
@policy("reports:read")
@blp.arguments(RangeArgs, location="query")
@blp.response(200, AllocationReportOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per month, provider and payer", AllocationReportOut))
def provider_allocation(args, slug: str):
    """Payments (net of refunds) posted from `start` to `end` (default this month) by month, rendering provider and
    payer ('Patients' for patient payments), with totals per provider and per payer."""
    _no_agency()
    start, end = _range(args)
    report = allocation_report(db_session(), start, end)
    if args["format"] == "csv":
        return csv_response(
            _csv_name("provider-allocation", f"{start}-{end}"), rows_csv(report["items"], ALLOCATION_COLUMNS)
        )
    return report


@blp.route("/practices/<slug>/reports/deposits", methods=["GET"])
@policy("reports:read")
@blp.arguments(RangeArgs, location="query")
@blp.response(200, DepositReportOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per deposit", DepositReportOut))
def deposits(args, slug: str):
    """Deposits (835 payments) paid from `start` to `end` (default this month), each against what it posted:
    difference = amount - (posted payments - provider-level adjustments), zero when reconciled."""
    _no_agency()
    start, end = _range(args)
    report = deposits_report(db_session(), start, end)
    if args["format"] == "csv":
        return csv_response(_csv_name("deposits", f"{start}-{end}"), rows_csv(report["items"], DEPOSIT_COLUMNS))
    return report


@blp.route("/practices/<slug>/reports/monthly-summary/pdf", methods=["GET"])
@policy("reports:read")
@blp.arguments(PdfArgs, location="query")
@blp.response(200, ReportLinkOut)
@blp.alt_response(302, description="Redirect to a short-lived link to the PDF (S3 presigned or signed local link)")
def monthly_summary_pdf(args, slug: str):
    """The monthly summary PDF of a past month, as the monthly job stored it on the 1st of the next month: audited,
    then redirected to a short-lived link. 404 while the month's PDF has not been made."""
    _no_agency()
    session = db_session()
    month = parse_month(args["month"])
    key = reports.monthly_summary_key(access().slug, month)
    storage = current_app.extensions["medbill"].storage
    filename = f"{access().slug}-monthly-summary-{month_label(month)}.pdf"
    try:
        if not storage.exists(key):
            raise StorageKeyNotFound(key)
        url = storage.presigned_url(key, download_name=filename)  # lives MEDBILL_FILE_LINK_SECONDS
    except StorageKeyNotFound as exc:
        raise NotFound(
            f"no monthly summary PDF for {month_label(month)} yet: it is made on the 1st of the following month",
            errors={"month": ["no PDF for this month"]},
        ) from exc
    audit.record_access(session, access(), "report", month_label(month), "download", {"report": "monthly_summary_pdf"},
                        ip=request.remote_addr)  # fmt: skip
    session.commit()
    if args["redirect"]:
        return redirect(url, code=302)
    return {"url": url, "expires_in": current_app.extensions["medbill"].settings.file_link_seconds,
            "filename": filename}  # fmt: skip


@blp.route("/reports/company-overview", methods=["GET"])
@policy("reports:read")
@blp.arguments(OverviewArgs, location="query")
@blp.response(200, OverviewOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per practice, then the total", OverviewOut))
def company_overview(args):
    """For the billers and admins of a billing company: every practice of the company (of all the caller's companies,
    or `company`), with A/R, the month's (default this month's) charges and payments, and the size of each work
    queue; the totals last."""
    month = parse_month(args["month"])
    db = current_app.extensions["medbill"].db
    report = overview_report(db, db_session(), principal(), month, company=args["company"])
    if args["format"] == "csv":
        return csv_response(f"company-overview-{report['month']}", overview_csv(report))
    return report
