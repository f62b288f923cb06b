"""Remittances over HTTP: deposits (the 835 payments) with their claims, what each posted and the provider-level
adjustments, the posting-exception queue, the denial work queue, and a claim's ledger with its balances. Read-only
views over billing.models and billing.ledger; every read of patient data is audited.

The reads are billing/remittance_reads.py, shared with the portal (portal/remittances.py), so both show the same
figures; this module holds the schemas and the routes."""

from __future__ import annotations

import logging
from decimal import Decimal

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy
from api.setup import Id, Money
from billing import underpayments
from billing.models import (
    Deposit,
    PracticePayer,
    Underpayment,
    UnderpaymentTolerance,
)
from billing.remittance_reads import (
    DEFAULT_DENIAL_SORT,
    DENIAL_SORTS,
    DenialFilters,
    claim_ledger,
    deposit_detail,
    deposit_row,
    exception_row,
    list_denials,
    list_deposits,
    list_exceptions,
)
from billing.setup import payers_by_id
from medbill.errors import Invalid, NotFound
from tenants import audit

log = logging.getLogger("medbill.remittances")

blp = Blueprint(
    "remittances",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Remittances (835 deposits), posting exceptions, denials and a claim's ledger",
)


def download_url(deposit: Deposit) -> str | None:
    """The audited documents route of the deposit's own 835 (its transaction set in its own envelope, not the file it
    came in, which for a company-level upload may hold other practices' payments); the route records the download
    and redirects to a short-lived link. None when the deposit has no stored 835 or the caller may not read
    documents."""
    if not deposit.storage_key or not access().can("documents:read"):
        return None
    return f"/api/v1/practices/{access().slug}/documents/835-{deposit.id}/download"


# --- schemas --------------------------------------------------------------------------------------------------------


class DepositOut(Schema):
    id = fields.Integer(required=True)
    payer_name = fields.String(required=True)
    payer_id = fields.String(required=True, metadata={"description": "REF*2U of the payer, else N104"})
    payment_method = fields.String(required=True, metadata={"description": "BPR04: ACH, CHK, NON, ..."})
    handling_code = fields.String(required=True, metadata={"description": "BPR01"})
    trace_number = fields.String(required=True, metadata={"description": "TRN02: check or EFT trace number"})
    payment_date = fields.Date(allow_none=True, metadata={"description": "BPR16"})
    amount = Money(required=True, metadata={"description": "BPR02; may be 0 or negative"})
    payee_npi = fields.String(allow_none=True)
    payee_tax_id = fields.String(allow_none=True)
    claims_count = fields.Integer(required=True)
    exceptions_count = fields.Integer(required=True)
    received_at = fields.DateTime(required=True)


class DepositPage(Schema):
    items = fields.List(fields.Nested(DepositOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class CodeOut(Schema):
    code = fields.String(required=True)
    description = fields.String(required=True)


class EntryOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(allow_none=True)
    procedure_code = fields.String(allow_none=True)
    kind = fields.String(required=True)
    kind_label = fields.String(required=True)
    amount = Money(required=True)
    insurance_delta = Money(required=True, metadata={"description": "how the entry moves what insurance owes"})
    patient_delta = Money(required=True, metadata={"description": "how the entry moves what the patient owes"})
    group_code = fields.String(required=True)
    reason_code = fields.String(required=True)
    reason = fields.String(required=True, metadata={"description": "group-reason in words; empty without a code"})
    reverses_entry_id = fields.Integer(allow_none=True)
    source_type = fields.String(required=True)
    source_id = fields.String(required=True)
    deposit_id = fields.Integer(allow_none=True)
    note = fields.String(required=True)
    user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)


class PlbOut(Schema):
    reason_code = fields.String(required=True)
    reason = fields.String(required=True)
    reference = fields.String(allow_none=True)
    amount = Money(required=True, metadata={"description": "a positive amount reduces the payment"})
    fiscal_period_date = fields.Date(allow_none=True)
    claim_id = fields.Integer(allow_none=True)


class RemittanceClaimOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(allow_none=True)
    claim_url = fields.String(allow_none=True)
    ledger_url = fields.String(allow_none=True)
    patient_control_number = fields.String(required=True, metadata={"description": "CLP01"})
    patient_name = fields.String(allow_none=True)
    account_number = fields.String(allow_none=True)
    status_code = fields.String(required=True, metadata={"description": "CLP02"})
    status_text = fields.String(required=True)
    payer_claim_number = fields.String(required=True)
    charge = Money(required=True)
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    outcome = fields.String(required=True, metadata={"description": "posted, exception, reversal or duplicate"})
    exception_reason = fields.String(required=True)
    segment_position = fields.Integer(required=True)
    remark_codes = fields.List(fields.Nested(CodeOut), required=True, metadata={"description": "MOA/MIA, in words"})
    posted = fields.List(fields.Nested(EntryOut), required=True, metadata={"description": "ledger entries posted"})


class DepositDetail(DepositOut):
    provider_adjustments = fields.List(fields.Nested(PlbOut), required=True)
    claims = fields.List(fields.Nested(RemittanceClaimOut), required=True)
    download_url = fields.String(
        allow_none=True,
        metadata={"description": "the audited download of the payment's own 835 (answers with a redirect to a "
                  "short-lived link)"},
    )  # fmt: skip


class ExceptionOut(Schema):
    id = fields.Integer(required=True)
    deposit_id = fields.Integer(required=True)
    remittance_url = fields.String(required=True)
    claim_id = fields.Integer(allow_none=True)
    patient_control_number = fields.String(required=True)
    payer_claim_number = fields.String(required=True)
    status_code = fields.String(required=True)
    status_text = fields.String(required=True)
    charge = Money(required=True)
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    reason = fields.String(required=True)
    payer_name = fields.String(required=True)
    trace_number = fields.String(required=True)
    payment_date = fields.Date(allow_none=True)
    received_at = fields.DateTime(required=True)


class ExceptionPage(Schema):
    items = fields.List(fields.Nested(ExceptionOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class ReasonOut(Schema):
    code = fields.String(required=True, metadata={"description": "group-CARC, e.g. CO-50"})
    group_code = fields.String(required=True)
    reason_code = fields.String(required=True)
    description = fields.String(required=True)


class ReasonGroupOut(ReasonOut):
    count = fields.Integer(required=True)
    amount = Money(required=True, metadata={"description": "charges of the lines"})


class PayerGroupOut(Schema):
    payer_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    count = fields.Integer(required=True)
    amount = Money(required=True)


class DenialPatientOut(Schema):
    id = fields.Integer(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    account_number = fields.String(required=True)


class DenialOut(Schema):
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_status = fields.String(required=True)
    payer_claim_number = fields.String(allow_none=True)
    patient = fields.Nested(DenialPatientOut, required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    date_of_service = fields.Date(required=True)
    payer_id = fields.Integer(allow_none=True)
    payer_name = fields.String(allow_none=True)
    charge = Money(required=True)
    paid = Money(required=True)
    denied_amount = Money(required=True, metadata={"description": "CO/PI/OA adjustments of the line"})
    deposit_id = fields.Integer(required=True)
    trace_number = fields.String(required=True)
    payment_date = fields.Date(required=True)
    age_days = fields.Integer(required=True, metadata={"description": "days since the deposit's payment date"})
    reasons = fields.List(fields.Nested(ReasonOut), required=True)
    remarks = fields.List(fields.Nested(CodeOut), required=True, metadata={"description": "RARC, in words"})


class DenialPage(Schema):
    items = fields.List(fields.Nested(DenialOut), required=True)
    meta = fields.Nested(PageMeta, required=True)
    reasons = fields.List(fields.Nested(ReasonGroupOut), required=True, metadata={"description": "the queue by reason"})
    payers = fields.List(fields.Nested(PayerGroupOut), required=True, metadata={"description": "the queue by payer"})


class DenialArgs(PageArgs):
    reason = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2}-[A-Za-z0-9]{1,5}$"),
        metadata={"description": "group-CARC, e.g. CO-50"},
    )
    payer_id = Id(load_default=None)
    min_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    max_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    min_amount = Money(load_default=None)
    max_amount = Money(load_default=None)
    sort = fields.String(
        load_default=DEFAULT_DENIAL_SORT,
        validate=validate.OneOf(DENIAL_SORTS),
        metadata={"description": "-age oldest first (default), age newest first, -amount highest, amount lowest"},
    )


class BalanceOut(Schema):
    charges = Money(required=True)
    payments = Money(required=True)
    adjustments = Money(required=True)
    insurance_balance = Money(required=True)
    patient_balance = Money(required=True)
    total_balance = Money(required=True)


class LedgerLineOut(Schema):
    claim_line_id = fields.Integer(required=True)
    line_number = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifiers = fields.List(fields.String(), required=True)
    date_of_service = fields.Date(required=True)
    charge = Money(required=True)
    balance = fields.Nested(BalanceOut, required=True)


class ClaimLedgerOut(Schema):
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    entries = fields.List(fields.Nested(EntryOut), required=True)
    lines = fields.List(fields.Nested(LedgerLineOut), required=True)
    balance = fields.Nested(BalanceOut, required=True)


# --- routes ---------------------------------------------------------------------------------------------------------


def _audit(session: Session, object_type: str, object_id, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access(), object_type, object_id, action, detail)


def _meta(args: dict, total: int) -> dict:
    return {"page": args["page"], "per_page": args["per_page"], "total": total}


@blp.route("/remittances", methods=["GET"])
@policy("claims:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, DepositPage)
def list_remittances(args, slug: str):
    """Deposits (the payment of each 835), newest payment first, with how many claims they carried and how many of
    those could not post."""
    session = db_session()
    rows, total = list_deposits(session, page=args["page"], per_page=args["per_page"])
    items = [deposit_row(r.Deposit, r.claims_count, r.exceptions_count) for r in rows]
    _audit(session, "remittance", None, "list", {"ids": [i["id"] for i in items]})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


@blp.route("/remittances/<id:deposit_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, DepositDetail)
def get_remittance(slug: str, deposit_id: int):
    """A deposit: the payment, its provider-level adjustments (PLB), each claim of the 835 with its outcome and the
    ledger entries it posted (group-reason codes in words), and the audited download route of its own 835."""
    session = db_session()
    detail = deposit_detail(session, current_app.extensions["medbill"].storage, deposit_id)
    deposit = detail["deposit"]
    base = f"/api/v1/practices/{access().slug}/claims"
    out = deposit_row(deposit, detail["claims_count"], detail["exceptions_count"])
    out["provider_adjustments"] = detail["provider_adjustments"]
    out["claims"] = [
        c
        | {
            "claim_url": f"{base}/{c['claim_id']}" if c["claim_id"] else None,
            "ledger_url": f"{base}/{c['claim_id']}/ledger" if c["claim_id"] else None,
        }
        for c in detail["claims"]
    ]
    out["download_url"] = download_url(deposit)
    claim_ids = sorted({c["claim_id"] for c in out["claims"] if c["claim_id"]})
    _audit(session, "remittance", deposit.id, "read", {"claim_ids": claim_ids})
    session.commit()
    return out


@blp.route("/posting-exceptions", methods=["GET"])
@policy("claims:read")
@blp.arguments(PageArgs, location="query")
@blp.response(200, ExceptionPage)
def list_posting_exceptions(args, slug: str):
    """Remittance claims that could not post (no such claim, a line that matches nothing, ...), oldest first, with
    the reason and the deposit they came in."""
    session = db_session()
    rows, total = list_exceptions(session, page=args["page"], per_page=args["per_page"])
    base = f"/api/v1/practices/{access().slug}/remittances"
    items = [exception_row(r) | {"remittance_url": f"{base}/{r.RemittanceClaim.deposit_id}"} for r in rows]
    _audit(session, "remittance", None, "list", {"queue": "posting_exceptions", "ids": [i["id"] for i in items]})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


def denial_filters(args: dict) -> DenialFilters:
    return DenialFilters(
        reason=args.get("reason"),
        payer_id=args.get("payer_id"),
        min_age=args.get("min_age"),
        max_age=args.get("max_age"),
        min_amount=args.get("min_amount"),
        max_amount=args.get("max_amount"),
        sort=args.get("sort") or DEFAULT_DENIAL_SORT,
    )


@blp.route("/denials", methods=["GET"])
@policy("claims:read")
@blp.arguments(DenialArgs, location="query")
@blp.response(200, DenialPage)
def list_denials_view(args, slug: str):
    """The denial work queue: claim lines whose latest remittance denied them (denied claims, and zero-paid lines with
    CO/PI/OA reasons on otherwise paid claims), with the reasons (CARC) and remarks (RARC) in words, the payer and
    the age in days since the payment date; filter by reason, payer, age and amount, sort by age or amount. Also
    gives the queue grouped by reason and by payer."""
    session = db_session()
    storage = current_app.extensions["medbill"].storage
    found = list_denials(session, storage, denial_filters(args), page=args["page"], per_page=args["per_page"])
    _audit(session, "claim", None, "list", {"queue": "denials", "ids": sorted({i["claim_id"] for i in found["items"]})})
    session.commit()
    return {
        "items": found["items"],
        "meta": _meta(args, found["total"]),
        "reasons": found["reasons"],
        "payers": found["payers"],
    }


@blp.route("/claims/<id:claim_id>/ledger", methods=["GET"])
@policy("claims:read")
@blp.response(200, ClaimLedgerOut)
def get_claim_ledger(slug: str, claim_id: int):
    """Every ledger entry of a claim (kind, amount, group-reason in words, source, when) with each line's balances
    and the claim's: charges, payments, adjustments, what insurance and the patient still owe."""
    session = db_session()
    found = claim_ledger(session, claim_id)
    _audit(session, "claim", claim_id, "read", {"view": "ledger"})
    session.commit()
    return {
        "claim_id": found["claim"].id,
        "status": found["claim"].status,
        "entries": found["entries"],
        "lines": found["lines"],
        "balance": found["balance"],
    }


class UnderpaymentOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_line_id = fields.Integer(required=True)
    deposit_id = fields.Integer(required=True)
    remittance_url = fields.String(required=True)
    payer_id = fields.Integer(required=True)
    payer_name = fields.String(allow_none=True)
    procedure_code = fields.String(required=True)
    expected_allowed = Money(required=True, metadata={"description": "the contract's allowed amount"})
    paid = Money(required=True)
    patient_responsibility = Money(required=True)
    shortfall = Money(required=True, metadata={"description": "expected - (paid + patient responsibility)"})
    tolerance = Money(required=True)
    created_at = fields.DateTime(required=True)


class UnderpaymentPage(Schema):
    items = fields.List(fields.Nested(UnderpaymentOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class UnderpaymentArgs(PageArgs):
    payer_id = Id(load_default=None)
    claim_id = Id(load_default=None)


@blp.route("/underpayments", methods=["GET"])
@policy("claims:read")
@blp.arguments(UnderpaymentArgs, location="query")
@blp.response(200, UnderpaymentPage)
def list_underpayments(args, slug: str):
    """The underpayment queue (billing.underpayments.list_open): open lines whose paid + patient-responsibility amount
    falls short of the contract's allowed amount beyond the tolerance, largest shortfall first."""
    session = db_session()
    filters = [Underpayment.status == "open"]
    if args["payer_id"]:
        filters.append(Underpayment.payer_id == args["payer_id"])
    if args["claim_id"]:
        filters.append(Underpayment.claim_id == args["claim_id"])
    total = session.scalar(select(func.count()).select_from(Underpayment).where(*filters)) or 0
    rows = underpayments.list_open(
        session, payer_id=args["payer_id"], claim_id=args["claim_id"], limit=args["per_page"],
        offset=(args["page"] - 1) * args["per_page"],
    )  # fmt: skip
    payers = payers_by_id(session, (r.payer_id for r in rows))
    base = f"/api/v1/practices/{access().slug}/remittances"
    items = [
        {name: getattr(r, name) for name in UnderpaymentOut._declared_fields if hasattr(r, name)}
        | {"payer_name": payers[r.payer_id].name if r.payer_id in payers else None,
           "remittance_url": f"{base}/{r.deposit_id}"}
        for r in rows
    ]  # fmt: skip
    _audit(session, "claim", None, "list", {"queue": "underpayments", "ids": sorted({i["claim_id"] for i in items})})
    session.commit()
    return {"items": items, "meta": _meta(args, total)}


class ResolveIn(Schema):
    note = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "why the line leaves the queue (appealed and repaid, accepted, written off...)"},
    )


class ResolvedOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    status = fields.String(required=True)
    note = fields.String(required=True)
    resolved_at = fields.DateTime(required=True)
    resolved_by_user_id = fields.Integer(allow_none=True)


@blp.route("/underpayments/<id:underpayment_id>/resolve", methods=["POST"])
@policy("claims:write")
@blp.arguments(ResolveIn)
@blp.response(200, ResolvedOut)
def resolve_underpayment(body, slug: str, underpayment_id: int):
    """Take a line off the underpayment queue with a note saying why. Resolving it again is a conflict (409)."""
    session = db_session()
    note = body["note"].strip()
    if not note:
        raise Invalid("say why the line leaves the queue", errors={"note": ["required"]})
    row = underpayments.resolve(session, underpayment_id, user_id=access().user_id, note=note)
    out = {name: getattr(row, name) for name in ResolvedOut._declared_fields}
    _audit(session, "claim", row.claim_id, "resolve", {"underpayment": row.id})
    session.commit()
    return out


# --- underpayment tolerance (per payer enrolment) ---------------------------------------------------------------------


class ToleranceIn(Schema):
    amount = Money(
        required=True,
        validate=validate.Range(min=Decimal("0"), max=Decimal("99999.99")),
        metadata={"description": "a shortfall up to this amount is not flagged"},
    )
    percent = fields.Decimal(
        required=True,
        as_string=True,
        places=3,
        validate=validate.Range(min=Decimal("0"), max=Decimal("100")),
        metadata={"description": "...or up to this percent of the allowed amount, whichever is larger (0 to 100)"},
    )


class ToleranceOut(ToleranceIn):
    payer_id = fields.Integer(required=True)
    payer_name = fields.String(allow_none=True)
    is_default = fields.Boolean(required=True, metadata={"description": "true: no tolerance set, the default applies"})


def _enrolled(session: Session, payer_id: int) -> None:
    if session.scalar(select(PracticePayer.id).where(PracticePayer.payer_id == payer_id)) is None:
        raise NotFound(f"payer {payer_id} is not enrolled in this practice")


def _tolerance_out(session: Session, payer_id: int) -> dict:
    tolerance = underpayments.tolerance_for(session, payer_id)
    payer = payers_by_id(session, [payer_id]).get(payer_id)
    return {
        "payer_id": payer_id,
        "payer_name": payer.name if payer else None,
        "amount": tolerance.amount,
        "percent": tolerance.percent,
        "is_default": session.get(UnderpaymentTolerance, payer_id) is None,
    }


@blp.route("/payers/<id:payer_id>/underpayment-tolerance", methods=["GET"])
@policy("claims:read")
@blp.response(200, ToleranceOut)
def get_underpayment_tolerance(slug: str, payer_id: int):
    """How far below the contract this payer may pay before a line is flagged: the larger of an amount and a percent
    of the allowed amount. Without a setting the default applies ($1.00 or 1 %)."""
    session = db_session()
    _enrolled(session, payer_id)
    return _tolerance_out(session, payer_id)


@blp.route("/payers/<id:payer_id>/underpayment-tolerance", methods=["PUT"])
@policy("setup:write")
@blp.arguments(ToleranceIn)
@blp.response(200, ToleranceOut)
def put_underpayment_tolerance(body, slug: str, payer_id: int):
    """Set the underpayment tolerance on the practice's enrolment with this payer (lines already flagged stay)."""
    session = db_session()
    _enrolled(session, payer_id)
    before = underpayments.tolerance_for(session, payer_id)
    underpayments.set_tolerance(session, payer_id, amount=body["amount"], percent=body["percent"])
    audit.record_access(
        session, access(), "payer_enrolment", payer_id, "update",
        {"underpayment_tolerance": {"from": [str(before.amount), str(before.percent)],
                                    "to": [str(body["amount"]), str(body["percent"])]}},
    )  # fmt: skip
    session.commit()
    return _tolerance_out(session, payer_id)


__all__ = ["blp", "claim_ledger", "deposit_detail", "list_denials", "list_deposits", "list_exceptions"]
