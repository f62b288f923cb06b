"""Collections: placement candidates and approval, agency exports, agency payments and recalls.

Portal pages, on the portal blueprint. One page per practice (`/practices/<slug>/collections`):
- billers and admins: the candidates the practice's rules pick (approve with an agency, or skip with a reason), the
  rules, open and recalled placements (recall), what agencies collected (gross, fee, net) and the export files
  (export now, download);
- agency users: only their open placements (report a payment, return the account) and their export files.

Every page resolves the practice through tenants.authz.resolve_practice first; the services in billing.collections
scope agency callers to their placements and audit every read. Actions are POST forms with CSRF tokens that
redirect back with a message; a refused form comes back (422) with each error beside its field, the values
typed kept and a summary at the top."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

from flask import current_app, flash, redirect, render_template, request, url_for

from billing import collections
from billing.money import AMOUNT_RULE, entered_amount
from integrations.storage import StorageError
from medbill.errors import DomainError, Invalid, NotFound
from medbill.input_limits import upload_limit
from portal.views import _page_arg, bp, db, principal, tenant_db
from tenants.authz import PracticeAccess, resolve_practice

# The agency's accounts table: ?sort=<key> ascending, ?sort=-<key> descending, 50 rows a page.
PLACEMENT_SORTS = {
    "account": "last_name",
    "placed": "placed_at",
    "owes": "patient_balance",
    "collected": "collected_gross",
}
PLACEMENTS_PER_PAGE = 50

# The rules form: the service's field name -> (input id, label), for errors beside their field.
RULE_FIELDS = {
    "min_age_days": ("min_age_days", "Oldest balance at least (days)"),
    "min_statements": ("min_statements", "Statements sent at least"),
    "min_balance": ("min_balance", "Owes at least ($)"),
    "skip_days": ("skip_days", "A skip lasts (days)"),
    "exclude_payment_plans": ("exclude_payment_plans", "Leave out patients on an active payment plan"),
}


# The biller's tables: column key -> attribute, each table with its own ?<name>_sort= and ?<name>_page= so sorting
# or paging one table keeps the others where they were.
BILLER_SORTS = {
    "candidates": ({"patient": "last_name", "owes": "patient_balance", "age": "age_days", "statements": "statements"},
                   "-age"),
    "placements": (PLACEMENT_SORTS | {"agency": "agency_name"}, "-placed"),
    "exports": ({"file": "filename", "written": "created_at", "accounts": "account_count", "placed": "total_placed"},
                "-written"),
}  # fmt: skip


def _row_id(row) -> int:
    return getattr(row, "id", None) or getattr(row, "patient_id", 0)


def _sorted_page(placements: list, default: str = "-placed", sorts: dict | None = None, prefix: str = "") -> dict:
    sorts = sorts or PLACEMENT_SORTS
    sort = request.args.get(f"{prefix}sort", default)
    if sort.lstrip("-") not in sorts:
        sort = default
    field = sorts[sort.lstrip("-")]
    ordered = sorted(placements, key=lambda p: (getattr(p, field), _row_id(p)), reverse=sort.startswith("-"))
    pages = max(1, math.ceil(len(ordered) / PLACEMENTS_PER_PAGE))
    page = min(_page_arg(f"{prefix}page"), pages)
    start = (page - 1) * PLACEMENTS_PER_PAGE
    return {"rows": ordered[start : start + PLACEMENTS_PER_PAGE], "sort": sort, "page": page, "pages": pages,
            "total": len(ordered), "first_index": start + 1}  # fmt: skip


def _biller_table(name: str, rows: list, slug: str) -> dict:
    """One sorted page of a biller table, with `url(sort=, page=)` for its headings and pager."""
    sorts, default = BILLER_SORTS[name]
    table = _sorted_page(rows, default, sorts, prefix=f"{name}_")

    def url(sort: str | None = None, page: int | None = None) -> str:
        args = request.args.to_dict() | {f"{name}_sort": sort or table["sort"], f"{name}_page": page}
        if args[f"{name}_sort"] == default:
            args[f"{name}_sort"] = None
        return url_for("portal.collections_home", slug=slug, **{k: v for k, v in args.items() if v}) + f"#{name}"

    table["url"] = url
    return table


def _access(slug: str, permission: str) -> PracticeAccess:
    return resolve_practice(db(), principal(), slug, permission)


def _back(slug: str, anchor: str = ""):
    return redirect(url_for("portal.collections_home", slug=slug) + (f"#{anchor}" if anchor else ""))


@bp.get("/practices/<slug>/collections")
def collections_home(slug: str):
    access = _access(slug, "practice:read")
    if not (access.can("collections:write") or access.can("exports:read")):
        raise NotFound("page not found")
    s = tenant_db(access)
    if access.placed_only:
        return _agency_page(access, s)
    if not access.can("collections:write"):
        raise NotFound("page not found")
    return _biller_page(access, s)


def _agency_page(access: PracticeAccess, s, failed: dict | None = None):
    """The agency's page; `failed` (from _failed) re-renders a refused form with its errors and typed values."""
    placements = collections.list_placements(s, access)
    exports = collections.list_exports(s, access)
    totals = collections.collected_totals(s, access)
    s.commit()
    table = _sorted_page(placements)

    def list_url(**changes):
        args = {"sort": table["sort"] if table["sort"] != "-placed" else None, "page": None} | changes
        return url_for("portal.collections_home", slug=access.slug, **{k: v for k, v in args.items() if v})

    failed = failed or _NOT_FAILED
    html = render_template(
        "portal/collections/agency.html",
        access=access,
        placements=table["rows"],
        table=table,
        list_url=list_url,
        exports=exports,
        totals=totals,
        today=date.today(),
        errors=failed["errors"],
        values=failed["values"],
        summary=failed["summary"],
        summary_title=failed["title"],
    )
    return html, (422 if failed["summary"] else 200)


def _biller_page(access: PracticeAccess, s, failed: dict | None = None):
    """The biller's page; `failed` (from _failed) re-renders a refused form with its errors and typed values."""
    candidates = collections.candidates(s, access)
    rules = collections.get_rules(s)
    agencies = collections.linked_agencies(s, access)
    terms = {a.id: collections.terms_of(s, a.id) for a in agencies}
    placements = collections.list_placements(s, access, status="all")
    exports = collections.list_exports(s, access)
    totals = collections.collected_totals(s, access)
    s.commit()
    failed = failed or _NOT_FAILED
    html = render_template(
        "portal/collections/biller.html",
        access=access,
        candidates_table=_biller_table("candidates", candidates, access.slug),
        candidates=candidates,
        rules=rules,
        agencies=agencies,
        agency_names={a.id: a.name for a in agencies},
        terms=terms,
        placements_table=_biller_table("placements", [p for p in placements if p.recalled_at is None], access.slug),
        recalled=[p for p in placements if p.recalled_at is not None],
        exports_page=_biller_table("exports", exports, access.slug),
        exports=exports,
        totals=totals,
        errors=failed["errors"],
        values=failed["values"],
        summary=failed["summary"],
        summary_title=failed["title"],
    )
    return html, (422 if failed["summary"] else 200)


_NOT_FAILED: dict = {"errors": {}, "values": {}, "summary": [], "title": ""}


def _failed(exc: DomainError, fields: dict[str, tuple[str, str]]) -> dict:
    """A refused form, to show beside its fields: `fields` maps the service's field name to (input id, label);
    the values typed come back from request.form under the same input ids."""
    errors: dict[str, list[str]] = {}
    summary: list[tuple[str, str, str]] = []
    for key, messages in (exc.errors or {}).items():
        message = " ".join(map(str, messages))
        input_id, label = fields.get(key, ("form", key))
        if input_id != "form":
            errors.setdefault(input_id, []).append(message)
        summary.append((input_id, label, message))
    if not summary:
        summary.append(("form", "", exc.message))
    values = {input_id: request.form.get(key, "") for key, (input_id, _label) in fields.items()}
    return {"errors": errors, "values": values, "summary": summary, "title": exc.message[:1].upper() + exc.message[1:]}


@bp.post("/practices/<slug>/collections/candidates/<int:patient_id>/approve")
def collections_approve(slug: str, patient_id: int):
    access = _access(slug, "collections:write")
    s = tenant_db(access)
    fields = {"agency_id": (f"agency-{patient_id}", "Agency"), "note": (f"note-{patient_id}", "Note")}
    try:
        try:
            agency_id = int(request.form.get("agency_id", ""))
        except ValueError:
            raise Invalid("the account was not placed", errors={"agency_id": ["choose an agency"]}) from None
        placement = collections.approve(s, access, patient_id, agency_id, note=request.form.get("note", "")[:2000])
        s.commit()
    except DomainError as exc:
        s.rollback()
        return _biller_page(access, s, _failed(exc, fields))
    flash(f"Account placed (placement {placement.id}). It leaves the statement cycle.", "info")
    return _back(slug, "candidates")


@bp.post("/practices/<slug>/collections/candidates/<int:patient_id>/skip")
def collections_skip(slug: str, patient_id: int):
    access = _access(slug, "collections:write")
    s = tenant_db(access)
    try:
        collections.skip(s, access, patient_id, request.form.get("reason", "")[:2000])
        s.commit()
    except DomainError as exc:
        s.rollback()
        return _biller_page(access, s, _failed(exc, {"reason": (f"reason-{patient_id}", "Reason to skip")}))
    flash("Account skipped: it stays with the practice for now.", "info")
    return _back(slug, "candidates")


@bp.post("/practices/<slug>/collections/rules")
def collections_rules(slug: str):
    access = _access(slug, "collections:write")
    s = tenant_db(access)
    data: dict = {}
    errors: dict[str, list[str]] = {}
    for key in ("min_age_days", "min_statements", "skip_days"):
        raw = request.form.get(key, "").strip()
        if raw:
            try:
                data[key] = int(raw)
            except ValueError:
                errors[key] = ["a whole number"]
    if request.form.get("min_balance", "").strip():
        try:
            data["min_balance"] = entered_amount(request.form["min_balance"])
        except ValueError:
            errors["min_balance"] = [AMOUNT_RULE]
    data["exclude_payment_plans"] = request.form.get("exclude_payment_plans") == "on"
    try:
        if errors:
            raise Invalid("collection rules are not valid", errors=errors)
        collections.set_rules(s, access, data)
        s.commit()
    except DomainError as exc:
        s.rollback()
        return _biller_page(access, s, _failed(exc, RULE_FIELDS))
    flash("Collection rules saved.", "info")
    return _back(slug, "rules")


@bp.post("/practices/<slug>/collections/placements/<int:placement_id>/recall")
def collections_recall(slug: str, placement_id: int):
    access = _access(slug, "practice:read")
    s = tenant_db(access)
    try:
        collections.recall(s, access, placement_id, request.form.get("reason", "")[:2000])
        s.commit()
    except NotFound:
        raise
    except DomainError as exc:
        s.rollback()
        page = _agency_page if access.placed_only else _biller_page
        return page(access, s, _failed(exc, {"reason": (f"recall-{placement_id}", "Reason")}))
    flash("Account returned to the practice.", "info")
    return _back(slug, "placements")


@bp.post("/practices/<slug>/collections/placements/<int:placement_id>/payments")
def collections_report_payment(slug: str, placement_id: int):
    access = _access(slug, "agency:report")
    s = tenant_db(access)
    errors: dict[str, list[str]] = {}
    try:
        amount = entered_amount(request.form.get("amount", ""))
    except ValueError:
        errors["amount"] = [AMOUNT_RULE]
        amount = Decimal(0)
    try:
        received_on = date.fromisoformat(request.form.get("received_on", "").strip())
    except ValueError:
        errors["received_on"] = ["a date (YYYY-MM-DD)"]
        received_on = date.today()
    try:
        if errors:
            raise Invalid("payment report is not valid", errors=errors)
        report, created = collections.report_payment(
            s, access, placement_id, amount=amount, received_on=received_on, reference=request.form.get("reference", "")
        )
        s.commit()
    except NotFound:
        raise
    except DomainError as exc:
        s.rollback()
        fields = {
            "amount": (f"amount-{placement_id}", "Amount"),
            "received_on": (f"received-{placement_id}", "Received on"),
            "reference": (f"reference-{placement_id}", "Your reference"),
        }
        return _agency_page(access, s, _failed(exc, fields))
    if created:
        flash(
            f"Payment {report.reference} recorded: gross ${report.gross}, fee ${report.fee}, net ${report.net}.", "info"
        )
    else:
        flash(f"Payment {report.reference} was already reported; nothing was posted again.", "info")
    return _back(slug, f"placement-{placement_id}")


@bp.post("/practices/<slug>/collections/payment-files")
@upload_limit(5 * 1024 * 1024)
def collections_payment_file(slug: str):
    access = _access(slug, "agency:report")
    s = tenant_db(access)
    upload = request.files.get("file")
    data = upload.read(5 * 1024 * 1024 + 1) if upload is not None and upload.filename else b""
    try:
        if not data.strip() or len(data) > 5 * 1024 * 1024:
            raise Invalid("choose your payment file (at most 5 MB)", errors={"file": ["required"]})
        result = collections.report_payment_file(s, access, data)
        storage = current_app.extensions["medbill"].storage
        collections.store_payment_file(s, storage, access, result["agency_id"], data, upload.filename)
        s.commit()
    except DomainError as exc:
        s.rollback()
        return _agency_page(access, s, _failed(exc, {"file": ("payment-file-input", "File")}))
    flash(
        f"Payment file posted: {result['posted']} payment(s), ${result['gross']}"
        + (f"; {result['duplicates']} reported before, not posted again." if result["duplicates"] else "."),
        "info",
    )
    return _back(slug, "payment-file")


@bp.post("/practices/<slug>/collections/exports")
def collections_export_now(slug: str):
    access = _access(slug, "collections:write")
    s = tenant_db(access)
    services = current_app.extensions["medbill"]
    services.dispatcher.enqueue_after_commit(
        s,
        "exports",
        "jobs.exports.export_placements",
        slug,
        None,
        access.user_id,
        meta={"user_id": access.user_id, "practice": slug, "kind": "agency_export"},
    )
    s.commit()
    flash("Export started: new placements are written to each agency's file in a moment.", "info")
    return _back(slug, "exports")


@bp.get("/practices/<slug>/collections/exports/<int:export_id>/download")
def collections_export_download(slug: str, export_id: int):
    access = _access(slug, "exports:read")
    s = tenant_db(access)
    export = collections.get_export(s, access, export_id, action="download")
    s.commit()
    storage = current_app.extensions["medbill"].storage
    try:
        return redirect(storage.presigned_url(export.storage_key, download_name=export.filename))
    except StorageError as exc:
        raise NotFound("export file not found") from exc
