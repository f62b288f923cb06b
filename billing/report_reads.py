"""Report shapes shared by the API and the portal: the monthly revenue summary (12 months, month over month), A/R
aging with the claims behind each cell, payments allocated to rendering providers, deposits reconciled against what
they posted and the billing company's overview, as plain dicts built from billing.reports, and each as a CSV table
(one header row, then the same figures: money with two decimals, an empty cell for null)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from billing import reports
from integrations import csvsafe
from medbill.errors import Forbidden, Invalid, NotFound
from tenants.authz import Principal, visible_practices
from tenants.db import Database

MAX_RANGE_DAYS = 3 * 366
# Figures of a month that are money (month over month shows their change) and that are counts or rates.
MONEY_FIELDS = (
    "charges",
    "insurance_payments",
    "patient_payments",
    "refunds",
    "payments",
    "contractual_adjustments",
    "other_adjustments",
    "adjustments",
    "ar_end",
)
RATE_FIELDS = ("net_collection_rate", "gross_collection_rate", "days_in_ar", "denial_rate", "clean_claim_rate")
COUNT_FIELDS = ("claims_adjudicated", "claims_denied", "claims_first_answered", "claims_clean")
SUMMARY_COLUMNS = ("month", *MONEY_FIELDS, *RATE_FIELDS, *COUNT_FIELDS)


def parse_month(text: str | None, *, field: str = "month") -> date:
    """'YYYY-MM' -> the first of that month; None -> this month."""
    if not text:
        return date.today().replace(day=1)
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise Invalid(f"{field} must be a month as YYYY-MM", errors={field: ["expected YYYY-MM"]}) from exc


def month_label(first: date) -> str:
    return first.strftime("%Y-%m")


def last_day(first: date) -> date:
    return reports.next_month(first) - timedelta(days=1)


# --- text ----------------------------------------------------------------------------------------------------------


def money_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def rate_text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _percent_change(current: Decimal, previous: Decimal) -> Decimal | None:
    return reports.rate(current - previous, abs(previous)) if previous else None


# --- report builders (shared with the portal) ---------------------------------------------------------------------


def figures_out(figures: reports.MonthFigures) -> dict:
    data = figures.as_dict()
    return {key: data[key] for key in SUMMARY_COLUMNS}


def summary_report(session: Session, month: date, *, months: int = 12) -> dict:
    """The month asked for, the one before, their change, the `months` months ending with it and the month's top
    denial reasons."""
    summary = reports.monthly_summary(session, month, months=months)
    current, previous = summary.current, summary.previous
    change = {}
    for key in MONEY_FIELDS:
        now, before = getattr(current, key), getattr(previous, key) if previous else None
        change[key] = {
            "amount": None if before is None else now - before,
            "percent": None if before is None else _percent_change(now, before),
        }
    for key in RATE_FIELDS:
        now, before = getattr(current, key), getattr(previous, key) if previous else None
        change[key] = {"amount": None if now is None or before is None else now - before, "percent": None}
    return {
        "month": month_label(current.month),
        "figures": figures_out(current),
        "previous": figures_out(previous) if previous else None,
        "change": change,
        "months": [figures_out(m) for m in summary.months],
        "top_denial_reasons": [
            {"group": r.group, "reason": r.reason, "description": r.description, "count": r.count, "amount": r.amount}
            for r in summary.top_denial_reasons
        ],
    }


def aging_report(session: Session, as_of: date) -> dict:
    rows = reports.ar_aging(session, as_of)
    names = [name for name, _low, _high in reports.AGING_BUCKETS]
    totals = {name: sum((r.buckets[name] for r in rows), reports.ZERO) for name in names}
    return {
        "as_of": as_of,
        "buckets": names,
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "kind": "patients" if r.key == "patients" else "payer",
                "buckets": dict(r.buckets),
                "total": r.total,
            }
            for r in rows
        ],
        "totals": {"buckets": totals, "total": sum(totals.values(), reports.ZERO)},
    }


def aging_claims_report(session: Session, as_of: date, row: str, bucket: str) -> list[dict]:
    """The claims behind one cell of the aging table. A row or bucket that is not one is refused (422)."""
    errors = {}
    if bucket not in {name for name, _low, _high in reports.AGING_BUCKETS}:
        errors["bucket"] = [f"one of {', '.join(name for name, _l, _h in reports.AGING_BUCKETS)}"]
    if row != "patients" and not (row.startswith("payer:") and row[6:].isdigit() and 0 < int(row[6:]) < 2**63):
        errors["row"] = ["'patients' or 'payer:<id>' (the key of an aging row)"]
    if errors:
        raise Invalid("not a cell of the aging table", errors=errors)
    return reports.aging_claims(session, as_of, key=row, bucket=bucket)


def allocation_report(session: Session, start: date, end: date) -> dict:
    """Payments from `start` to `end` (both included) by month, rendering provider and payer, with totals."""
    items = reports.provider_allocation(session, start, end + timedelta(days=1))
    by_provider: dict[int, dict] = {}
    by_payer: dict[str, Decimal] = defaultdict(lambda: reports.ZERO)
    for a in items:
        entry = by_provider.setdefault(
            a.provider_id, {"provider_id": a.provider_id, "provider": a.provider, "amount": reports.ZERO}
        )
        entry["amount"] += a.amount
        by_payer[a.payer] += a.amount
    return {
        "start": start,
        "end": end,
        "items": [
            {
                "month": month_label(a.month),
                "provider_id": a.provider_id,
                "provider": a.provider,
                "payer": a.payer,
                "amount": a.amount,
            }
            for a in items
        ],
        "providers": sorted(by_provider.values(), key=lambda p: (-p["amount"], p["provider"])),
        "payers": [{"payer": k, "amount": v} for k, v in sorted(by_payer.items(), key=lambda kv: (-kv[1], kv[0]))],
        "total": sum((a.amount for a in items), reports.ZERO),
    }


def deposits_report(session: Session, start: date, end: date) -> dict:
    items = reports.deposit_reconciliation(session, start, end + timedelta(days=1))
    rows = [
        {
            "deposit_id": d.deposit_id,
            "payment_date": d.payment_date,
            "trace_number": d.trace_number,
            "payer": d.payer_name,
            "amount": d.amount,
            "posted_payments": d.posted_payments,
            "provider_adjustments": d.provider_adjustments,
            "difference": d.difference,
            "reconciled": d.difference == 0,
        }
        for d in items
    ]
    return {
        "start": start,
        "end": end,
        "items": rows,
        "totals": {
            key: sum((r[key] for r in rows), reports.ZERO)
            for key in ("amount", "posted_payments", "provider_adjustments", "difference")
        },
        "unreconciled": sum(1 for r in rows if not r["reconciled"]),
    }


def overview_practices(session: Session, who: Principal, company: str | None = None):
    """The practices of the caller's billing companies (as biller or admin), optionally of one company."""
    practices = [p for p in visible_practices(session, who) if p.company_id in who.company_roles]
    if company is not None:
        practices = [p for p in practices if p.company.slug == company]
        if not practices:
            raise NotFound(f"billing company {company!r} not found")
    return practices


def overview_report(db: Database, session: Session, who: Principal, month: date, *, company: str | None = None) -> dict:
    """Per practice of the caller's companies: A/R, the month's charges and payments and the work queue sizes."""
    if not who.company_roles:
        raise Forbidden("the company overview is for the billing company's billers and admins")
    practices = overview_practices(session, who, company)
    as_of = min(date.today(), last_day(month))
    rows = []
    for practice in practices:
        with db.tenant_session(practice.slug) as tenant:
            line = reports.practice_overview(tenant, practice.slug, practice.name, month, as_of=as_of)
        rows.append((practice.company, line))
    totals = reports.overview_totals([line for _company, line in rows])
    return {
        "month": month_label(month),
        "as_of": as_of,
        "queues": [{"name": q.name, "label": q.label} for q in reports.WORK_QUEUES.values()],
        "practices": [
            {
                "company": company_.slug,
                "company_name": company_.name,
                "slug": line.slug,
                "name": line.name,
                "ar_total": line.ar_total,
                "charges": line.charges,
                "payments": line.payments,
                "queues": line.queues,
            }
            for company_, line in rows
        ],
        "totals": {
            "ar_total": totals.ar_total,
            "charges": totals.charges,
            "payments": totals.payments,
            "queues": totals.queues,
        },
    }


# --- CSV -----------------------------------------------------------------------------------------------------------


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return csvsafe.Number(f"{value:.2f}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | date):
        return csvsafe.Number(value)
    return str(value)


def summary_csv(report: dict) -> tuple[list[str], list[list]]:
    def cell(key, value):
        if key in RATE_FIELDS:  # a rate is a number (a change may be "-3.5"), formatted here to one place
            return None if value is None else csvsafe.Number(rate_text(value))
        return value

    return list(SUMMARY_COLUMNS), [[cell(k, m[k]) for k in SUMMARY_COLUMNS] for m in report["months"]]


def aging_csv(report: dict) -> tuple[list[str], list[list]]:
    header = ["key", "label", *report["buckets"], "total"]
    rows = [[r["key"], r["label"], *(r["buckets"][b] for b in report["buckets"]), r["total"]] for r in report["rows"]]
    totals = report["totals"]
    rows.append(["total", "Total", *(totals["buckets"][b] for b in report["buckets"]), totals["total"]])
    return header, rows


CLAIM_COLUMNS = ("claim_id", "status", "payer", "patient", "date_of_service", "age_days", "owed")
ALLOCATION_COLUMNS = ("month", "provider_id", "provider", "payer", "amount")
DEPOSIT_COLUMNS = (
    "deposit_id",
    "payment_date",
    "trace_number",
    "payer",
    "amount",
    "posted_payments",
    "provider_adjustments",
    "difference",
    "reconciled",
)


def rows_csv(items: Iterable[dict], columns: tuple[str, ...]) -> tuple[list[str], list[list]]:
    return list(columns), [[item[c] for c in columns] for item in items]


def overview_csv(report: dict) -> tuple[list[str], list[list]]:
    names = [q["name"] for q in report["queues"]]
    header = ["company", "practice", "name", "ar_total", "charges", "payments", *names]
    rows = [
        [
            p["company"],
            p["slug"],
            p["name"],
            p["ar_total"],
            p["charges"],
            p["payments"],
            *(p["queues"][n] for n in names),
        ]
        for p in report["practices"]
    ]
    t = report["totals"]
    rows.append(["", "total", "Total", t["ar_total"], t["charges"], t["payments"], *(t["queues"][n] for n in names)])
    return header, rows


def csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csvsafe.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()
