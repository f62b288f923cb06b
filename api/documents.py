"""Documents over HTTP: a claim's documents (its EOB from each payment that posted it, those payments' EOBs and their
835, its appeal letters), a deposit's documents, the practice's documents list (EOBs, patient statements and appeal
letters: the kinds billing.documents registers), and the download of one document.

Permission `documents:read` (doctors, billers, company admins). An agency never sees documents of claims, and another
tenant's practice is a 404. Lists carry `download_url`, a link to this API's download route: the download is audited
there and answered with a redirect to a short-lived link from the one storage client (an S3 presigned URL, or the web
app's signed file link with local storage), so every download leaves an audit entry and no bytes go through here."""

from __future__ import annotations

from flask import current_app, redirect, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy
from api.setup import Money
from billing import documents
from billing.models import Claim, Deposit
from medbill.errors import NotFound
from tenants import audit

blp = Blueprint(
    "documents",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Documents of a practice: EOBs, 835 remittance files, patient statements and appeal letters, with "
    "audited downloads",
)


class DocumentOut(Schema):
    id = fields.String(required=True, metadata={"description": "e.g. eob-12-345 (EOB of claim 345 in deposit 12)"})
    kind = fields.String(required=True, metadata={"description": "eob, remittance_eob, 835, statement, appeal"})
    kind_label = fields.String(required=True)
    title = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    claim_id = fields.Integer(allow_none=True)
    deposit_id = fields.Integer(allow_none=True)
    source = fields.String(
        required=True,
        metadata={
            "description": "who sent it or whom it is for: the payer (EOB, 835, appeal), the patient (statement)"
        },
    )
    reference = fields.String(
        required=True,
        metadata={"description": "check or EFT trace number; a statement's account number; an appeal's payer claim "
                  "number (see reference_label)"},
    )  # fmt: skip
    reference_label = fields.String(required=True, metadata={"description": "trace, account, payer claim number"})
    amount = Money(
        allow_none=True,
        metadata={"description": "what the claim was paid, the payment's amount, or what a statement asked for"},
    )
    download_url = fields.String(required=True, metadata={"description": "audited download: answers with a redirect"})


class DocumentList(Schema):
    items = fields.List(fields.Nested(DocumentOut), required=True)


class DocumentPage(DocumentList):
    meta = fields.Nested(PageMeta, required=True)


class DocumentArgs(PageArgs):
    kind = fields.String(
        load_default=None,
        validate=validate.OneOf(list(documents.kind_choices())),
        metadata={"description": "only documents of this kind"},
    )


class LinkOut(Schema):
    url = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    filename = fields.String(required=True)


class DownloadArgs(Schema):
    redirect = fields.Boolean(
        load_default=True, metadata={"description": "false: answer the link as JSON instead of redirecting to it"}
    )


def _no_agency() -> None:
    # An agency sees only placed accounts, never claims or their payments: as if the practice were not there.
    if access().placed_only:
        raise NotFound(f"practice {access().slug!r} not found")


def document_out(doc: documents.Document, slug: str) -> dict:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "kind_label": doc.kind_label,
        "title": doc.title,
        "filename": doc.filename,
        "content_type": doc.content_type,
        "created_at": doc.created_at,
        "claim_id": doc.claim_id,
        "deposit_id": doc.deposit_id,
        "source": doc.source,
        "reference": doc.reference,
        "reference_label": doc.reference_label,
        "amount": doc.amount,
        "download_url": f"/api/v1/practices/{slug}/documents/{doc.id}/download",
    }


def _audit_list(session: Session, object_type: str, object_id, docs: list[documents.Document], **detail) -> None:
    audit.record_access(
        session, access(), object_type, object_id, "list", {"view": "documents", "ids": [d.id for d in docs], **detail}
    )


@blp.route("/claims/<id:claim_id>/documents", methods=["GET"])
@policy("documents:read")
@blp.response(200, DocumentList)
def claim_documents(slug: str, claim_id: int):
    """A claim's documents: its EOB from each payment (deposit) that posted it, each of those payments' whole EOB and
    their 835 remittance file (the payment's own transaction set), and its appeal letters, newest first."""
    _no_agency()
    session = db_session()
    if session.scalar(select(Claim.id).where(Claim.id == claim_id)) is None:
        raise NotFound(f"claim {claim_id} not found")
    docs = documents.claim_documents(session, access().slug, claim_id)
    _audit_list(session, "claim", claim_id, docs)
    session.commit()
    return {"items": [document_out(d, access().slug) for d in docs]}


@blp.route("/deposits/<id:deposit_id>/documents", methods=["GET"])
@policy("documents:read")
@blp.response(200, DocumentList)
def deposit_documents(slug: str, deposit_id: int):
    """A deposit's documents: the payment's EOB, the EOB of each claim it posted and its 835 remittance file."""
    _no_agency()
    session = db_session()
    if session.scalar(select(Deposit.id).where(Deposit.id == deposit_id)) is None:
        raise NotFound(f"remittance {deposit_id} not found")
    docs = documents.deposit_documents(session, access().slug, deposit_id)
    _audit_list(session, "remittance", deposit_id, docs)
    session.commit()
    return {"items": [document_out(d, access().slug) for d in docs]}


@blp.route("/documents", methods=["GET"])
@policy("documents:read")
@blp.arguments(DocumentArgs, location="query")
@blp.response(200, DocumentPage)
def practice_documents(args, slug: str):
    """The practice's documents, newest first: EOBs of claims and of whole payments, patient statements and appeal
    letters (`kind` to pick one kind)."""
    _no_agency()
    session = db_session()
    docs, total = documents.practice_documents(
        session, access().slug, kind=args["kind"], page=args["page"], per_page=args["per_page"]
    )
    _audit_list(session, "document", None, docs, kind=args["kind"], page=args["page"])
    session.commit()
    return {
        "items": [document_out(d, access().slug) for d in docs],
        "meta": {"page": args["page"], "per_page": args["per_page"], "total": total},
    }


@blp.route("/documents/<doc_id>/download", methods=["GET"])
@policy("documents:read")
@blp.arguments(DownloadArgs, location="query")
@blp.response(200, LinkOut)
@blp.alt_response(302, description="Redirect to a short-lived link to the file (S3 presigned or signed local link)")
def download_document(args, slug: str, doc_id: str):
    """Download one document (the `download_url` of a list): audited, then redirected to a short-lived link to the
    file. 404 when there is no such document, or while its file is not in storage (an EOB not rendered yet)."""
    _no_agency()
    session = db_session()
    doc = documents.find_document(session, access().slug, doc_id)
    storage = current_app.extensions["medbill"].storage
    url = documents.audited_download(session, storage, access(), doc, ip=request.remote_addr)
    session.commit()
    if args["redirect"]:
        return redirect(url, code=302)
    return {"url": url, "expires_in": current_app.extensions["medbill"].settings.file_link_seconds,
            "filename": doc.filename}  # fmt: skip
