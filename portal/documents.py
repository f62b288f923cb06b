"""Document pages on the portal blueprint, for everyone who may read a practice's documents (doctors, billers,
company admins): the practice's documents list (EOBs, patient statements and appeal letters, newest first, by kind),
a claim's documents (with its appeal letters) and a deposit's documents, and the download of one document.

Access is resolved like the claims pages, with "documents:read" (an agency, which sees only placed accounts, never
sees them: 404). The lists come from billing.documents (the registry of kinds, shared with the API); a download
writes its audit entry and is answered with a redirect to a short-lived link from the one storage client (S3
presigned, or the app's signed file link with local storage), exactly as the API does."""

from __future__ import annotations

import math

from flask import current_app, render_template, request, url_for
from flask import redirect as redirect_to
from sqlalchemy import select

from billing import documents
from billing.models import Claim, Deposit
from medbill.errors import Forbidden, NotFound
from portal.claims import _access
from portal.views import _page_arg, bp, render_error, tenant_db
from tenants import audit
from tenants.authz import PracticeAccess

PER_PAGE = 25


def _readable(access: PracticeAccess) -> PracticeAccess | None:
    """The caller's document access to this practice, None when they may not read its documents."""
    try:
        return _access(access.slug, "documents:read")
    except (Forbidden, NotFound):
        return None


def claim_documents_for(access: PracticeAccess | None, claim_id: int) -> list[documents.Document] | None:
    """The documents shown on a claim's page (None: the caller may not read documents)."""
    docs_access = _readable(access) if access is not None else None
    if docs_access is None:
        return None
    return documents.claim_documents(tenant_db(docs_access), docs_access.slug, claim_id)


@bp.context_processor
def _document_template_globals():
    return {"claim_documents_for": claim_documents_for}


def _list_audit(s, access: PracticeAccess, object_type: str, object_id, docs, **detail) -> None:
    audit.record_access(
        s, access, object_type, object_id, "list", {"view": "documents", "ids": [d.id for d in docs], **detail},
        ip=request.remote_addr,
    )  # fmt: skip


@bp.get("/practices/<slug>/documents")
def documents_list(slug: str):
    access = _access(slug, "documents:read")
    s = tenant_db(access)
    page = _page_arg()
    kinds = documents.kind_choices()
    kind = request.args.get("kind", "")
    kind = kind if kind in kinds else ""
    items, total = documents.practice_documents(s, access.slug, kind=kind or None, page=page, per_page=PER_PAGE)
    _list_audit(s, access, "document", None, items, kind=kind or None, page=page)
    s.commit()
    return render_template(
        "portal/documents/list.html",
        access=access,
        items=items,
        kinds=kinds,
        kind=kind,
        kind_label=kinds.get(kind, ""),
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PER_PAGE)),
        first_index=(page - 1) * PER_PAGE + 1,
        page_url=lambda **kw: url_for("portal.documents_list", slug=access.slug, kind=kind or None, **kw),
    )


@bp.get("/practices/<slug>/claims/<id:claim_id>/documents")
def claim_documents(slug: str, claim_id: int):
    access = _access(slug, "documents:read")
    s = tenant_db(access)
    if s.scalar(select(Claim.id).where(Claim.id == claim_id)) is None:
        raise NotFound(f"claim {claim_id} not found")
    items = documents.claim_documents(s, access.slug, claim_id)
    _list_audit(s, access, "claim", claim_id, items)
    s.commit()
    return render_template(
        "portal/documents/of.html",
        access=access,
        items=items,
        heading=f"Documents of claim {claim_id}",
        intro="The claim's EOB from each payment that posted it, each of those payments' EOB and their 835 file, "
        "and the claim's appeal letters.",
        crumb=url_for("portal.claim_documents", slug=access.slug, claim_id=claim_id),
        claim_id=claim_id,
        can_see_claim=access.can("claims:read"),
    )


@bp.get("/practices/<slug>/deposits/<id:deposit_id>/documents")
def deposit_documents(slug: str, deposit_id: int):
    access = _access(slug, "documents:read")
    s = tenant_db(access)
    deposit = s.get(Deposit, deposit_id)
    if deposit is None:
        raise NotFound(f"remittance {deposit_id} not found")
    items = documents.deposit_documents(s, access.slug, deposit_id)
    _list_audit(s, access, "remittance", deposit_id, items)
    s.commit()
    return render_template(
        "portal/documents/of.html",
        access=access,
        items=items,
        heading=f"Documents of the payment {deposit.trace_number}",
        intro="The payment's EOB, the EOB of each claim it posted and its 835 file.",
        crumb=url_for("portal.deposit_documents", slug=access.slug, deposit_id=deposit_id),
        deposit=deposit,
        can_see_claim=access.can("claims:read"),
    )


@bp.get("/practices/<slug>/documents/<doc_id>/download")
def document_download(slug: str, doc_id: str):
    access = _access(slug, "documents:read")
    s = tenant_db(access)
    doc = documents.find_document(s, access.slug, doc_id)
    storage = current_app.extensions["medbill"].storage
    try:
        url = documents.audited_download(s, storage, access, doc, ip=request.remote_addr)
    except NotFound as exc:
        # Known document, file not rendered yet: say so (the message names the document, no patient data).
        return render_error(404, exc.message[:1].upper() + exc.message[1:] + ". Try again in a minute.")
    s.commit()
    return redirect_to(url, code=302)
