"""Remittance pages for billers, on the portal blueprint: deposits (the 835 payments) and one deposit's detail with
what each claim posted and a link to the raw 835, the posting-exception queue, the denial queue (filter by reason and
payer, sort by age or amount) and a claim's ledger.

Access is resolved like the claims pages ("claims:read", a foreign practice answers 404) before the practice's
session opens; every read of patient data writes an audit entry. The figures come from the same read functions as
the API (api/remittances.py), so the pages and the API always agree."""

from __future__ import annotations

import math
import re

from flask import render_template, request, url_for
from sqlalchemy import select

from api import remittances as reads
from billing.models import Payer
from medbill.errors import Forbidden, NotFound
from portal.claims import _access, _audit
from portal.views import _page_arg, bp, tenant_db
from tenants.authz import PracticeAccess

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


def remittance_queue_counts(access: PracticeAccess | None) -> dict[str, int] | None:
    """Counts for the home page's "Denials" and "Posting exceptions" cards; None when the caller may not read claims."""
    if access is None:
        return None
    try:
        claims_access = _access(access.slug, "claims:read")
    except (Forbidden, NotFound):
        return None
    s = tenant_db(claims_access)
    return {"denials": reads.count_denials(s), "exceptions": reads.count_exceptions(s)}


@bp.context_processor
def _remittance_template_globals():
    return {
        "remittance_queue_counts": remittance_queue_counts,
        "payment_method_label": lambda code: METHOD_LABELS.get(code, code),
        "outcome_label": lambda outcome: OUTCOME_LABELS.get(outcome, outcome.capitalize()),
    }


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
    detail = reads.deposit_detail(s, deposit_id)
    deposit = detail["deposit"]
    url = reads.download_url(deposit)
    claim_ids = sorted({c["claim_id"] for c in detail["claims"] if c["claim_id"]})
    _audit(s, access, None, "read", {"remittance": deposit.id, "claim_ids": claim_ids})
    s.commit()
    return render_template(
        "portal/remittances/detail.html",
        access=access,
        deposit=deposit,
        detail=detail,
        download_url=url,
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
    found = reads.list_denials(
        s, reads.DenialFilters(reason=reason or None, payer_id=payer_id, sort=sort), page=page, per_page=PER_PAGE
    )
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
