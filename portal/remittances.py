"""Remittance pages for billers, on the portal blueprint: deposits (the 835 payments) and one deposit's detail with
what each claim posted and links to its EOBs and its 835, the posting-exception queue, the denial queue (filter by
reason and payer, sort by age or amount), the underpayment queue (resolve a line with a note), a claim's ledger, and
the billing company's unmatched EDI queue (sets that named no practice, assigned to one after a confirmation step).

Access is resolved like the claims pages ("claims:read", a foreign practice answers 404) before the practice's
session opens; every read of patient data writes an audit entry. The figures come from the same read functions as
the API (api/remittances.py), so the pages and the API always agree."""

from __future__ import annotations

import math
import re
from datetime import UTC, date
from decimal import Decimal, InvalidOperation

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from billing import documents, underpayments
from billing import remittance_reads as reads
from billing.edi_intake import assign_unmatched
from billing.models import Claim, Deposit, Patient, Payer, Underpayment
from billing.setup import payers_by_id
from medbill.errors import DomainError, Forbidden, NotFound
from portal.claims import _access, _audit, _may
from portal.views import PRACTICE_KEY, _page_arg, bp, db, principal, tenant_db
from tenants.authz import PracticeAccess
from tenants.models import BillingCompany, Practice, UnmatchedEdiSet

PER_PAGE = 25
_REASON_RE = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,5}$")
SORT_WORDS = {
    "-age": "age, oldest first",
    "age": "age, newest first",
    "-amount": "amount, highest first",
    "amount": "amount, lowest first",
}
METHOD_LABELS = {"ACH": "EFT (ACH)", "CHK": "Check", "NON": "No payment", "FWT": "Wire transfer", "BOP": "Debit/credit"}
OUTCOME_LABELS = {"posted": "Posted", "exception": "Exception", "reversal": "Reversal", "duplicate": "Duplicate"}


@bp.context_processor
def _remittance_template_globals():
    return {
        "amount_of": _amount_of,
        "payment_method_label": lambda code: METHOD_LABELS.get(code, code),
        "outcome_label": lambda outcome: OUTCOME_LABELS.get(outcome, outcome.capitalize()),
    }


def _amount_of(value) -> Decimal | None:
    """An amount kept as text (the unmatched queue's detail) as a Decimal for display; None if it is not one."""
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _pages(total: int) -> int:
    return max(1, math.ceil(total / PER_PAGE))


@bp.get("/practices/<slug>/remittances")
def remittances_list(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    rows, total = reads.list_deposits(s, page=page, per_page=PER_PAGE)
    items = [reads.deposit_row(r.Deposit, r.claims_count, r.exceptions_count) for r in rows]
    _audit(s, access, None, "list", {"queue": "remittances", "deposit_ids": [i["id"] for i in items], "page": page})
    s.commit()
    return render_template(
        "portal/remittances/list.html",
        access=access,
        items=items,
        total=total,
        page=page,
        pages=_pages(total),
        first_index=(page - 1) * PER_PAGE + 1,
        page_url=lambda **kw: url_for("portal.remittances_list", slug=access.slug, **kw),
    )


@bp.get("/practices/<slug>/remittances/<id:deposit_id>")
def remittance_detail(slug: str, deposit_id: int):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    detail = reads.deposit_detail(s, current_app.extensions["medbill"].storage, deposit_id)
    deposit = detail["deposit"]
    # The payment's documents (EOBs, its own 835) through the audited download of the documents pages.
    docs = documents.deposit_documents(s, access.slug, deposit.id) if access.can("documents:read") else []
    claim_ids = sorted({c["claim_id"] for c in detail["claims"] if c["claim_id"]})
    _audit(s, access, None, "read", {"remittance": deposit.id, "claim_ids": claim_ids})
    s.commit()
    return render_template(
        "portal/remittances/detail.html",
        access=access,
        deposit=deposit,
        detail=detail,
        claim_eobs={d.claim_id: d for d in docs if d.kind == "eob"},
        era=next((d for d in docs if d.kind == "835"), None),
        payment_eob=next((d for d in docs if d.kind == "remittance_eob"), None),
        posted_count=sum(1 for c in detail["claims"] if c["outcome"] == "posted"),
    )


@bp.get("/practices/<slug>/posting-exceptions")
def posting_exceptions(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    rows, total = reads.list_exceptions(s, page=page, per_page=PER_PAGE)
    items = [reads.exception_row(r) for r in rows]
    _audit(s, access, None, "list", {"queue": "posting_exceptions", "ids": [i["id"] for i in items], "page": page})
    s.commit()
    return render_template(
        "portal/remittances/exceptions.html",
        access=access,
        items=items,
        total=total,
        page=page,
        pages=_pages(total),
        first_index=(page - 1) * PER_PAGE + 1,
        page_url=lambda **kw: url_for("portal.posting_exceptions", slug=access.slug, **kw),
    )


@bp.get("/practices/<slug>/denials")
def denials(slug: str):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    page = _page_arg()
    reason = (request.args.get("reason") or "").strip().upper()
    reason = reason if _REASON_RE.match(reason) else ""
    payer_id = request.args.get("payer_id", type=int)
    payer_id = payer_id if payer_id and 0 < payer_id < 2**63 else None
    sort = request.args.get("sort", reads.DEFAULT_DENIAL_SORT)
    sort = sort if sort in reads.DENIAL_SORTS else reads.DEFAULT_DENIAL_SORT
    filters = reads.DenialFilters(reason=reason or None, payer_id=payer_id, sort=sort)
    found = reads.list_denials(s, current_app.extensions["medbill"].storage, filters, page=page, per_page=PER_PAGE)
    payer_name = ""
    if payer_id:
        payer_name = next((p["name"] for p in found["payers"] if p["payer_id"] == payer_id), None)
        payer_name = payer_name or s.scalar(select(Payer.name).where(Payer.id == payer_id)) or f"payer {payer_id}"
    claim_ids = sorted({i["claim_id"] for i in found["items"]})
    _audit(s, access, None, "list", {"queue": "denials", "ids": claim_ids, "reason": reason, "payer_id": payer_id,
                                     "sort": sort, "page": page})  # fmt: skip
    s.commit()
    total = found["total"]

    def list_url(**changes):
        default_sort = sort == reads.DEFAULT_DENIAL_SORT
        args = {"reason": reason or None, "payer_id": payer_id, "sort": None if default_sort else sort}
        args |= changes
        return url_for("portal.denials", slug=access.slug, **{k: v for k, v in args.items() if v})

    reason_words = next((r["description"] for r in found["reasons"] if r["code"] == reason), reason)
    return render_template(
        "portal/remittances/denials.html",
        access=access,
        items=found["items"],
        reasons=found["reasons"],
        payers=found["payers"],
        total=total,
        reason=reason,
        reason_words=reason_words,
        payer_id=payer_id,
        payer_name=payer_name,
        sort=sort,
        sort_words=SORT_WORDS,
        page=page,
        pages=_pages(total),
        first_index=(page - 1) * PER_PAGE + 1,
        list_url=list_url,
        page_url=lambda **kw: list_url(**kw),
    )


@bp.get("/practices/<slug>/claims/<id:claim_id>/ledger")
def claim_ledger(slug: str, claim_id: int):
    access = _access(slug, "claims:read")
    s = tenant_db(access)
    found = reads.claim_ledger(s, claim_id)
    _audit(s, access, claim_id, "read", {"view": "ledger"})
    s.commit()
    return render_template(
        "portal/remittances/ledger.html",
        access=access,
        claim=found["claim"],
        patient=found["patient"],
        payer_name=found["payer_name"],
        entries=found["entries"],
        lines=found["lines"],
        balance=found["balance"],
        back_to=request.args.get("remittance", type=int),
    )


# --- the underpayment queue -----------------------------------------------------------------------------------------


class ResolveForm(FlaskForm):
    note = TextAreaField(
        "Why it leaves the queue",
        validators=[
            DataRequired(message="Say why the line leaves the queue (repaid on appeal, accepted, written off...)."),
            Length(max=2000, message="Keep the note under 2,000 characters."),
        ],
        render_kw={"rows": "2"},
    )


def _underpayment_rows(s, *, payer_id: int | None, page: int) -> tuple[list[dict], int, list[dict]]:
    """A page of the open queue (largest shortfall first) with patient, payer and payment: a fixed number of
    statements whatever the page size; and the payers of the whole queue, for the filter."""
    where = [Underpayment.status == "open"] + ([Underpayment.payer_id == payer_id] if payer_id else [])
    total = s.scalar(select(func.count()).select_from(Underpayment).where(*where)) or 0
    rows = underpayments.list_open(s, payer_id=payer_id, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
    claims = {
        r.claim_id: r
        for r in s.execute(
            select(Claim.id.label("claim_id"), Patient.first_name, Patient.last_name, Patient.account_number)
            .join(Patient, Patient.id == Claim.patient_id)
            .where(Claim.id.in_({r.claim_id for r in rows}))
        )
    } if rows else {}  # fmt: skip
    deposits = {d.id: d for d in s.scalars(select(Deposit).where(Deposit.id.in_({r.deposit_id for r in rows})))}
    by_payer = s.execute(
        select(Underpayment.payer_id, func.count()).where(Underpayment.status == "open").group_by(Underpayment.payer_id)
    ).all()
    payers = payers_by_id(s, {r.payer_id for r in rows} | {pid for pid, _n in by_payer})
    today = date.today()
    items = []
    for r in rows:
        deposit = deposits.get(r.deposit_id)
        paid_on = (deposit.payment_date or deposit.created_at.astimezone(UTC).date()) if deposit else None
        who = claims.get(r.claim_id)
        items.append(
            {
                "row": r,
                "patient": who,
                "payer_name": payers[r.payer_id].name if r.payer_id in payers else None,
                "deposit": deposit,
                "age_days": (today - paid_on).days if paid_on else None,
                "received": r.paid + r.patient_responsibility,
            }
        )
    payer_options = sorted(
        ({"payer_id": pid, "name": payers[pid].name if pid in payers else f"payer {pid}", "count": n}
         for pid, n in by_payer),
        key=lambda p: (p["name"], p["payer_id"]),
    )  # fmt: skip
    return items, total, payer_options


def _render_underpayments(access: PracticeAccess, *, form: ResolveForm | None = None, failed_id: int | None = None):
    s = tenant_db(access)
    page = _page_arg()
    payer_id = request.args.get("payer_id", type=int)
    payer_id = payer_id if payer_id and 0 < payer_id < 2**63 else None
    items, total, payers = _underpayment_rows(s, payer_id=payer_id, page=page)
    _audit(s, access, None, "list", {"queue": "underpayments", "ids": sorted({i["row"].claim_id for i in items}),
                                     "payer_id": payer_id, "page": page})  # fmt: skip
    s.commit()
    return render_template(
        "portal/remittances/underpayments.html",
        access=access,
        items=items,
        total=total,
        payers=payers,
        payer_id=payer_id,
        payer_name=next((p["name"] for p in payers if p["payer_id"] == payer_id), f"payer {payer_id}"),
        can_resolve=_may(access, "claims:write"),
        form=form or ResolveForm(formdata=None),
        failed_id=failed_id,
        page=page,
        pages=_pages(total),
        first_index=(page - 1) * PER_PAGE + 1,
        page_url=lambda **kw: url_for("portal.underpayments_queue", slug=access.slug, payer_id=payer_id, **kw),
    ), 422 if failed_id else 200


@bp.get("/practices/<slug>/underpayments")
def underpayments_queue(slug: str):
    return _render_underpayments(_access(slug, "claims:read"))


@bp.post("/practices/<slug>/underpayments/<id:underpayment_id>/resolve")
def underpayment_resolve(slug: str, underpayment_id: int):
    access = _access(slug, "claims:write")
    form = ResolveForm()
    if not form.validate_on_submit():
        # The CSRF token is checked before this view runs; what is left is the note.
        return _render_underpayments(access, form=form, failed_id=underpayment_id)
    s = tenant_db(access)
    try:
        row = underpayments.resolve(s, underpayment_id, user_id=access.user_id, note=form.note.data.strip())
    except DomainError as exc:
        s.rollback()
        if isinstance(exc, NotFound):
            raise
        flash(f"Nothing changed: {exc.message}.", "error")
        return redirect(url_for("portal.underpayments_queue", slug=access.slug))
    _audit(s, access, row.claim_id, "resolve", {"underpayment": row.id})
    s.commit()
    flash(f"Underpayment of claim {row.claim_id} ({row.procedure_code}) resolved.", "info")
    return redirect(url_for("portal.underpayments_queue", slug=access.slug))


# --- the unmatched EDI queue (billing-company level) ----------------------------------------------------------------


class AssignForm(FlaskForm):
    practice = HiddenField(validators=[DataRequired(), Length(max=41)])


def _writable_companies() -> list[BillingCompany]:
    """The billing companies whose EDI the caller handles (admin or biller there), by name."""
    ids = [cid for cid, role in principal().company_roles.items() if role in ("company_admin", "biller")]
    if not ids:
        return []
    return list(db().scalars(select(BillingCompany).where(BillingCompany.id.in_(ids)).order_by(BillingCompany.name)))


def _company(slug: str | None) -> tuple[BillingCompany, list[BillingCompany]]:
    companies = _writable_companies()
    if not companies:
        raise Forbidden("only a billing company's admins and billers handle its EDI files")
    if slug:
        chosen = next((c for c in companies if c.slug == slug), None)
        if chosen is None:
            raise NotFound(f"billing company {slug!r} not found")
        return chosen, companies
    # The company of the practice being worked, else the first.
    selected = _selected_practice_company()
    return next((c for c in companies if c.id == selected), companies[0]), companies


def _selected_practice_company() -> int | None:
    slug = session.get(PRACTICE_KEY)
    return db().scalar(select(Practice.company_id).where(Practice.slug == slug)) if slug else None


def _practices_of(company_id: int) -> list[Practice]:
    return list(
        db().scalars(
            select(Practice)
            .where(Practice.company_id == company_id, Practice.status != "archived")
            .order_by(Practice.name, Practice.id)
        )
    )


def _unmatched_row(unmatched_id: int, companies: list[BillingCompany]) -> UnmatchedEdiSet:
    row = db().get(UnmatchedEdiSet, unmatched_id)
    if row is None or row.company_id not in {c.id for c in companies}:
        raise NotFound(f"unmatched set {unmatched_id} not found")
    return row


@bp.get("/edi/unmatched")
def unmatched_edi():
    company, companies = _company(request.args.get("company"))
    s = db()
    waiting = list(
        s.scalars(
            select(UnmatchedEdiSet)
            .where(UnmatchedEdiSet.company_id == company.id, UnmatchedEdiSet.assigned_at.is_(None))
            .order_by(UnmatchedEdiSet.received_at.desc(), UnmatchedEdiSet.id.desc())
        )
    )
    assigned = s.execute(
        select(UnmatchedEdiSet, Practice.name)
        .outerjoin(Practice, Practice.id == UnmatchedEdiSet.assigned_practice_id)
        .where(UnmatchedEdiSet.company_id == company.id, UnmatchedEdiSet.assigned_at.is_not(None))
        .order_by(UnmatchedEdiSet.assigned_at.desc(), UnmatchedEdiSet.id.desc())
        .limit(10)
    ).all()
    return render_template(
        "portal/remittances/unmatched.html",
        company=company,
        companies=companies,
        waiting=waiting,
        assigned=assigned,
        practices=_practices_of(company.id),
    )


@bp.get("/edi/unmatched/<id:unmatched_id>/assign")
def unmatched_assign_confirm(unmatched_id: int):
    companies = _writable_companies()
    if not companies:
        raise Forbidden("only a billing company's admins and billers handle its EDI files")
    row = _unmatched_row(unmatched_id, companies)
    company = next(c for c in companies if c.id == row.company_id)
    back = url_for("portal.unmatched_edi", company=company.slug)
    if row.assigned_at is not None:
        flash(f"That {row.kind} set was already assigned.", "info")
        return redirect(back)
    slug = request.args.get("practice", "")
    practice = next((p for p in _practices_of(row.company_id) if p.slug == slug), None)
    if practice is None:
        flash("Choose the practice the set belongs to.", "error")
        return redirect(back)
    return render_template(
        "portal/remittances/unmatched_confirm.html",
        row=row,
        company=company,
        practice=practice,
        form=AssignForm(formdata=None, practice=practice.slug),
        back=back,
    )


@bp.post("/edi/unmatched/<id:unmatched_id>/assign")
def unmatched_assign(unmatched_id: int):
    companies = _writable_companies()
    if not companies:
        raise Forbidden("only a billing company's admins and billers handle its EDI files")
    row = _unmatched_row(unmatched_id, companies)
    company_slug = next(c.slug for c in companies if c.id == row.company_id)
    back = url_for("portal.unmatched_edi", company=company_slug)
    form = AssignForm()
    if not form.validate_on_submit():
        flash("Choose the practice the set belongs to.", "error")
        return redirect(back)
    practice_slug = form.practice.data
    db().rollback()  # assign_unmatched opens its own session and locks the row
    services = current_app.extensions["medbill"]
    try:
        result = assign_unmatched(
            services.db, services.storage, services.dispatcher, unmatched_id, practice_slug,
            company_ids={c.id for c in companies}, user_id=principal().user_id,
        )  # fmt: skip
    except DomainError as exc:
        flash(f"Not assigned: {exc.message}.", "error")
        return redirect(back)
    name = db().scalar(select(Practice.name).where(Practice.slug == practice_slug)) or practice_slug
    what = {"queued": "queued for posting into", "applied": "applied to", "duplicate": "already applied to"}
    flash(f"The {result['kind']} set was {what.get(result['status'], 'assigned to')} {name}.", "info")
    return redirect(back)
