"""The company admin's audit page (`/company/audit`): the company's audit trail with the API's filters, paged, and
its CSV download. A thin adapter over tenants.audit_view (which scopes, filters and audits the read)."""

from __future__ import annotations

import math
from datetime import date

from flask import render_template, request, url_for

from medbill.errors import Forbidden
from medbill.web import csv_response
from portal.views import _page_arg, bp, db, principal
from tenants.audit_view import AuditFilters, audit_csv_table, company_audit
from tenants.authz import visible_practices

PER_PAGE = 50
FILTER_FIELDS = ("practice", "user", "object_type", "action", "start", "end", "patient_id")


def _text(name: str, limit: int) -> str | None:
    value = (request.args.get(name) or "").strip()
    return value[:limit] or None


def _filters() -> tuple[AuditFilters, dict[str, list[str]]]:
    """The filters of the query string; a value that does not read is dropped and named in `errors`."""
    errors: dict[str, list[str]] = {}
    dates: dict[str, date | None] = {}
    for name in ("start", "end"):
        raw = _text(name, 10)
        try:
            dates[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            dates[name], errors[name] = None, ["enter a date as YYYY-MM-DD"]
    if dates["start"] and dates["end"] and dates["end"] < dates["start"]:
        dates["end"], errors["end"] = None, ["must not be before the first day"]
    patient = _text("patient_id", 19)
    if patient is not None and not (patient.isdigit() and patient.isascii() and 0 < int(patient) < 2**63):
        patient, errors["patient_id"] = None, ["enter the patient's number (digits)"]
    filters = AuditFilters(
        practice=_text("practice", 41), user=_text("user", 254), object_type=_text("object_type", 50),
        action=_text("action", 50), start=dates["start"], end=dates["end"],
        patient_id=int(patient) if patient else None,
    )  # fmt: skip
    return filters, errors


@bp.get("/company/audit")
def company_audit_page():
    p = principal()
    if not p.admin_company_ids:
        raise Forbidden("only a company admin may read the company's audit trail")
    filters, errors = _filters()
    export = request.args.get("format") == "csv" and not errors
    page = _page_arg()
    result = company_audit(db(), p, filters, page=page, per_page=PER_PAGE, export=export)
    db().commit()  # the read's own audit entry
    if export:
        return csv_response(f"audit-{date.today().isoformat()}", audit_csv_table(result))
    shown = {k: request.args.get(k) for k in FILTER_FIELDS if request.args.get(k) and k not in errors}

    def list_url(**changes):
        args = shown | changes
        return url_for("portal.company_audit_page", **{k: v for k, v in args.items() if v})

    page_html = render_template(
        "portal/audit.html",
        rows=result.items,
        total=result.total,
        page=page,
        pages=max(1, math.ceil(result.total / PER_PAGE)),
        first_index=(page - 1) * PER_PAGE + 1,
        values=shown,
        errors=errors,
        practices=[pr for pr in visible_practices(db(), p) if pr.company_id in p.admin_company_ids],
        list_url=list_url,
        page_url=lambda **kw: list_url(**kw),
    )
    return page_html, (422 if errors else 200)
