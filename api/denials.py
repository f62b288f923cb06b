"""Denial work: the queue of denied and underpaid lines, assignment, notes, actions, appeals and follow-up (API).

Thin views over billing.denials, billing.appeals and billing.followup. Reading needs `claims:read`, working items
`denials:write`, writing off `ledger:write_off` (checked by the service: a biller gets 403). The queue is brought up
to date with what posting recorded (billing.denials.sync, idempotent) before it is read. Voids and write-offs are
irreversible and need `"confirm": true`. Every read of patient data and every write is audited."""

from __future__ import annotations

from flask import current_app, redirect
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy
from api.setup import Id, Money
from billing import appeals, denials, followup
from billing.models import Appeal
from integrations.storage import StorageError
from medbill.errors import NotFound
from tenants import audit

blp = Blueprint(
    "denials",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Denial work queue, appeals and follow-up",
)

STATUS_CHOICES = (*denials.STATUSES, "all")


def _audit(session: Session, object_type: str, object_id, action: str, detail: dict | None = None) -> None:
    audit.record_access(session, access(), object_type, object_id, action, detail)


def download_url(appeal: Appeal) -> str | None:
    if not appeal.storage_key:
        return None
    try:
        storage = current_app.extensions["medbill"].storage
        return storage.presigned_url(appeal.storage_key, download_name=appeal.filename or None)
    except StorageError:
        return None


def appeal_out(appeal: Appeal) -> dict:
    return {
        "id": appeal.id,
        "claim_id": appeal.claim_id,
        "family": appeal.family,
        "family_label": appeals.FAMILIES[appeal.family],
        "argument": appeal.argument,
        "letter_text": appeal.letter_text,
        "template_source": appeal.template_source,
        "denial_date": appeal.denial_date,
        "deadline": appeal.deadline,
        "outcome": appeal.outcome,
        "outcome_note": appeal.outcome_note,
        "outcome_at": appeal.outcome_at,
        "created_at": appeal.created_at,
        "created_by_user_id": appeal.created_by_user_id,
        "filename": appeal.filename,
        # The audited route, never the storage link itself: every download of a letter is recorded.
        "download_url": f"/api/v1/practices/{access().slug}/appeals/{appeal.id}/pdf" if appeal.storage_key else None,
        "pdf_url": f"/api/v1/practices/{access().slug}/appeals/{appeal.id}/pdf",
    }


# --- schemas ----------------------------------------------------------------------------------------------------------


class QueueArgs(PageArgs):
    status = fields.String(load_default="open", validate=validate.OneOf(STATUS_CHOICES))
    kind = fields.String(load_default=None, validate=validate.OneOf(denials.KINDS))
    reason = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2}-[A-Za-z0-9]{1,5}$"),
        metadata={"description": "group-CARC, e.g. CO-50"},
    )
    payer_id = Id(load_default=None)
    assigned_user_id = Id(load_default=None)
    claim_id = Id(load_default=None)
    min_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    max_age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=100_000))
    min_amount = Money(load_default=None)
    max_amount = Money(load_default=None)
    sort = fields.String(
        load_default="-age",
        validate=validate.OneOf(denials.SORTS),
        metadata={"description": "-age oldest first (default), age newest first, -amount highest, amount lowest"},
    )


class DenialReasonOut(Schema):
    code = fields.String(required=True)
    group_code = fields.String(required=True)
    reason_code = fields.String(required=True)
    description = fields.String(required=True)


class ReasonGroup(DenialReasonOut):
    count = fields.Integer(required=True)
    amount = Money(required=True)


class PayerGroup(Schema):
    payer_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    count = fields.Integer(required=True)
    amount = Money(required=True)


class DenialPatientRef(Schema):
    id = fields.Integer()
    first_name = fields.String()
    last_name = fields.String()
    account_number = fields.String()


class ItemOut(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True)
    action = fields.String(allow_none=True)
    claim_id = fields.Integer(required=True)
    claim_status = fields.String()
    claim_line_id = fields.Integer()
    line_number = fields.Integer()
    payer_claim_number = fields.String(allow_none=True)
    payer_id = fields.Integer()
    payer_name = fields.String(allow_none=True)
    patient = fields.Nested(DenialPatientRef)
    procedure_code = fields.String()
    modifiers = fields.List(fields.String())
    date_of_service = fields.Date()
    charge = Money()
    amount = Money(metadata={"description": "denied amount, or the shortfall against the contract"})
    expected_allowed = Money(allow_none=True)
    denial_date = fields.Date()
    age_days = fields.Integer()
    reasons = fields.List(fields.Nested(DenialReasonOut))
    assigned_user_id = fields.Integer(allow_none=True)
    appeal_id = fields.Integer(allow_none=True)


class QueuePage(Schema):
    items = fields.List(fields.Nested(ItemOut), required=True)
    meta = fields.Nested(PageMeta, required=True)
    reasons = fields.List(fields.Nested(ReasonGroup), required=True)
    payers = fields.List(fields.Nested(PayerGroup), required=True)


class NoteOut(Schema):
    id = fields.Integer()
    user_id = fields.Integer(allow_none=True)
    body = fields.String()
    created_at = fields.DateTime()


class AppealOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    family = fields.String(required=True)
    family_label = fields.String()
    argument = fields.String()
    letter_text = fields.String()
    template_source = fields.String()
    denial_date = fields.Date()
    deadline = fields.Date(metadata={"description": "the payer's appeal deadline: denial date + appeal window"})
    outcome = fields.String(allow_none=True)
    outcome_note = fields.String()
    outcome_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    created_by_user_id = fields.Integer(allow_none=True)
    filename = fields.String()
    download_url = fields.String(allow_none=True, metadata={"description": "a short-lived link to the PDF"})
    pdf_url = fields.String(metadata={"description": "the PDF through the API (redirects to storage)"})


class LineBalanceOut(Schema):
    insurance = Money()
    patient = Money()


class ItemDetail(ItemOut):
    action_detail = fields.Dict()
    closed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    notes = fields.List(fields.Nested(NoteOut))
    appeals = fields.List(fields.Nested(AppealOut))
    balance = fields.Nested(LineBalanceOut)
    suggested_family = fields.String()


class AssignIn(Schema):
    user_id = Id(required=True, allow_none=True, metadata={"description": "a biller of the company; null unassigns"})


class NoteIn(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=5000))


class CloseIn(Schema):
    action = fields.String(required=True, validate=validate.OneOf(tuple(denials.CLOSING_ACTIONS)))
    reason = fields.String(load_default="", validate=validate.Length(max=2000))
    reason_code = fields.String(
        load_default=None, allow_none=True, metadata={"description": "CARC of a write-off, e.g. 50"}
    )
    confirm = fields.Boolean(load_default=False, metadata={"description": "required for void and write_off"})


class AppealIn(Schema):
    family = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(tuple(appeals.FAMILIES)))
    argument = fields.String(required=True, validate=validate.Length(min=1, max=appeals.MAX_ARGUMENT_CHARS))


class OutcomeIn(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(appeals.OUTCOMES))
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class AppealArgs(Schema):
    claim_id = Id(load_default=None)
    open = fields.Boolean(load_default=False, metadata={"description": "only appeals awaiting the payer's answer"})


class AppealList(Schema):
    items = fields.List(fields.Nested(AppealOut), required=True)


class TemplateOut(Schema):
    family = fields.String(required=True)
    label = fields.String(required=True)
    source = fields.String(required=True, metadata={"description": "practice (its own) or default (the project's)"})
    body = fields.String(required=True)


class TemplateList(Schema):
    items = fields.List(fields.Nested(TemplateOut), required=True)


class TemplateIn(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=appeals.MAX_TEMPLATE_CHARS))


class FollowUpArgs(PageArgs):
    status = fields.String(load_default="open", validate=validate.OneOf(("open", "resolved", "all")))
    payer_id = Id(load_default=None)


class FollowUpOut(Schema):
    id = fields.Integer(required=True)
    claim_id = fields.Integer(required=True)
    claim_status = fields.String()
    total_charge = Money()
    patient = fields.Nested(DenialPatientRef)
    payer_id = fields.Integer()
    payer_name = fields.String(allow_none=True)
    submitted_at = fields.DateTime()
    days_out = fields.Integer()
    days = fields.Integer(metadata={"description": "the payer's follow-up days"})
    status = fields.String()
    resolution = fields.String(allow_none=True)
    note = fields.String()
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)


class FollowUpPage(Schema):
    items = fields.List(fields.Nested(FollowUpOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class FollowUpCloseIn(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class FollowUpRuleIn(Schema):
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=365))


class FollowUpRuleOut(Schema):
    payer_id = fields.Integer(required=True)
    days = fields.Integer(required=True)


# --- the queue --------------------------------------------------------------------------------------------------------


def _filters(args: dict) -> denials.QueueFilters:
    return denials.QueueFilters(
        status=None if args["status"] == "all" else args["status"],
        kind=args.get("kind"),
        reason=args.get("reason"),
        payer_id=args.get("payer_id"),
        assigned_user_id=args.get("assigned_user_id"),
        claim_id=args.get("claim_id"),
        min_age=args.get("min_age"),
        max_age=args.get("max_age"),
        min_amount=args.get("min_amount"),
        max_amount=args.get("max_amount"),
        sort=args["sort"],
    )


def _detail(session: Session, item_id: int) -> dict:
    out = denials.item_detail(session, item_id)
    out["appeals"] = [appeal_out(a) for a in out["appeals"]]
    out["suggested_family"] = appeals.suggest_family(out["kind"], [r["code"] for r in out["reasons"]])
    return out


@blp.route("/denial-work", methods=["GET"])
@policy("claims:read")
@blp.arguments(QueueArgs, location="query")
@blp.response(200, QueuePage)
def list_queue(args, slug: str):
    """The denial work queue: denied and underpaid claim lines with their reasons (CARC) in words, payer, age in days
    since the payer's remittance and the amount in dispute; filter by status, kind, reason, payer, assignee, claim,
    age and amount; sort by age or amount. Also gives the queue grouped by reason and by payer."""
    session = db_session()
    denials.sync(session)
    found = denials.list_items(session, _filters(args), page=args["page"], per_page=args["per_page"])
    _audit(session, "denial_item", None, "list", {"ids": [i["id"] for i in found["items"]]})
    session.commit()
    meta = {"page": args["page"], "per_page": args["per_page"], "total": found["total"]}
    return {"items": found["items"], "meta": meta, "reasons": found["reasons"], "payers": found["payers"]}


@blp.route("/denial-work/<id:item_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, ItemDetail)
def get_item(slug: str, item_id: int):
    """One work item with its notes, the claim's appeals (with links to the letters) and the line's balances."""
    session = db_session()
    out = _detail(session, item_id)
    _audit(session, "denial_item", item_id, "read", {"claim_id": out["claim_id"]})
    session.commit()
    return out


@blp.route("/denial-work/<id:item_id>/assign", methods=["POST"])
@policy("denials:write")
@blp.arguments(AssignIn)
@blp.response(200, ItemDetail)
def assign_item(body, slug: str, item_id: int):
    session = db_session()
    denials.assign(session, access(), item_id, body["user_id"])
    session.flush()
    out = _detail(session, item_id)
    session.commit()
    return out


@blp.route("/denial-work/<id:item_id>/notes", methods=["POST"])
@policy("denials:write")
@blp.arguments(NoteIn)
@blp.response(201, ItemDetail)
def add_note(body, slug: str, item_id: int):
    session = db_session()
    denials.add_note(session, access(), item_id, body["body"])
    out = _detail(session, item_id)
    session.commit()
    return out


@blp.route("/denial-work/<id:item_id>/close", methods=["POST"])
@policy("denials:write")
@blp.arguments(CloseIn)
@blp.response(200, ItemDetail)
def close_item(body, slug: str, item_id: int):
    """Close with an action: `resubmit` (a replacement claim, frequency 7), `void` (frequency 8; confirm),
    `write_off` (needs ledger:write_off, a CARC `reason_code`; confirm) or `bill_patient`. Appeals: POST
    /denial-work/<id>/appeals."""
    session = db_session()
    denials.close(
        session, access(), item_id, body["action"], reason=body["reason"], reason_code=body["reason_code"],
        confirm=body["confirm"],
    )  # fmt: skip
    session.flush()
    out = _detail(session, item_id)
    session.commit()
    return out


# --- appeals ----------------------------------------------------------------------------------------------------------


@blp.route("/denial-work/<id:item_id>/appeals", methods=["POST"])
@policy("denials:write")
@blp.arguments(AppealIn)
@blp.response(201, AppealOut)
def create_appeal(body, slug: str, item_id: int):
    """Write the appeal letter for the item (and the claim's other open items of the same kind) from the practice's
    template of the family (suggested from the reasons when omitted), store the PDF and attach it to the claim."""
    session = db_session()
    storage = current_app.extensions["medbill"].storage
    appeal = appeals.create_appeal(
        session, access(), item_id, argument=body["argument"], family=body["family"], storage=storage
    )
    out = appeal_out(appeal)
    session.commit()
    return out


@blp.route("/appeals", methods=["GET"])
@policy("claims:read")
@blp.arguments(AppealArgs, location="query")
@blp.response(200, AppealList)
def list_appeals(args, slug: str):
    """Appeals by deadline (soonest first); `open=true` for those awaiting the payer's answer."""
    session = db_session()
    found = appeals.list_appeals(session, claim_id=args["claim_id"], open_only=args["open"])
    _audit(session, "appeal", None, "list", {"ids": [a.id for a in found]})
    out = [appeal_out(a) for a in found]
    session.commit()
    return {"items": out}


@blp.route("/appeals/<id:appeal_id>", methods=["GET"])
@policy("claims:read")
@blp.response(200, AppealOut)
def get_appeal(slug: str, appeal_id: int):
    session = db_session()
    appeal = appeals.get_appeal(session, appeal_id)
    _audit(session, "appeal", appeal.id, "read", {"claim_id": appeal.claim_id})
    out = appeal_out(appeal)
    session.commit()
    return out


@blp.route("/appeals/<id:appeal_id>/pdf", methods=["GET"])
@policy("claims:read")
@blp.response(302)
def download_appeal(slug: str, appeal_id: int):
    """The letter's PDF: a redirect to a short-lived storage link."""
    session = db_session()
    appeal = appeals.get_appeal(session, appeal_id)
    url = download_url(appeal)
    if url is None:
        raise NotFound(f"the letter of appeal {appeal_id} is not in storage")
    _audit(session, "appeal", appeal.id, "download", {"claim_id": appeal.claim_id})
    session.commit()
    return redirect(url, code=302)


@blp.route("/appeals/<id:appeal_id>/outcome", methods=["POST"])
@policy("denials:write")
@blp.arguments(OutcomeIn)
@blp.response(200, AppealOut)
def record_outcome(body, slug: str, appeal_id: int):
    """The payer's answer, once: `upheld` puts the items back in the queue; `overturned` takes back the denial
    adjustments and closes the items, so the payer's new 835 posts as usual and the claim becomes paid."""
    session = db_session()
    appeal = appeals.record_outcome(session, access(), appeal_id, body["outcome"], body["note"])
    out = appeal_out(appeal)
    session.commit()
    return out


@blp.route("/appeal-templates", methods=["GET"])
@policy("claims:read")
@blp.response(200, TemplateList)
def list_templates(slug: str):
    session = db_session()
    items = []
    for family, label in appeals.FAMILIES.items():
        body, source = appeals.get_template(session, family)
        items.append({"family": family, "label": label, "source": source, "body": body})
    return {"items": items}


@blp.route("/appeal-templates/<family>", methods=["GET"])
@policy("claims:read")
@blp.response(200, TemplateOut)
def get_template(slug: str, family: str):
    """The letter template of a reason family: the practice's own, else the project's. Jinja syntax, sandboxed;
    the values a template may use are those of the project's templates (practice, payer, patient, claim, lines,
    denial, appeal, argument, biller, today)."""
    body, source = appeals.get_template(db_session(), family)
    return {"family": family, "label": appeals.FAMILIES[family], "source": source, "body": body}


@blp.route("/appeal-templates/<family>", methods=["PUT"])
@policy("denials:write")
@blp.arguments(TemplateIn)
@blp.response(200, TemplateOut)
def put_template(body, slug: str, family: str):
    """Save the practice's own template; refused (422, with the line or the unknown value) unless it renders."""
    session = db_session()
    appeals.put_template(session, access(), family, body["body"])
    session.commit()
    saved, source = appeals.get_template(session, family)
    return {"family": family, "label": appeals.FAMILIES[family], "source": source, "body": saved}


@blp.route("/appeal-templates/<family>", methods=["DELETE"])
@policy("denials:write")
@blp.response(200, TemplateOut)
def reset_template(slug: str, family: str):
    """Back to the project's template."""
    session = db_session()
    appeals.reset_template(session, access(), family)
    session.commit()
    saved, source = appeals.get_template(session, family)
    return {"family": family, "label": appeals.FAMILIES[family], "source": source, "body": saved}


# --- follow-up --------------------------------------------------------------------------------------------------------


@blp.route("/follow-ups", methods=["GET"])
@policy("claims:read")
@blp.arguments(FollowUpArgs, location="query")
@blp.response(200, FollowUpPage)
def list_follow_ups(args, slug: str):
    """Claims submitted more than the payer's follow-up days ago (default 30) with no 277CA and no 835, oldest
    first. The daily job fills the queue; an item resolves itself when a response arrives."""
    session = db_session()
    items, total = followup.list_items(
        session, status=None if args["status"] == "all" else args["status"], payer_id=args["payer_id"],
        page=args["page"], per_page=args["per_page"],
    )  # fmt: skip
    _audit(session, "follow_up_item", None, "list", {"claim_ids": [i["claim_id"] for i in items]})
    session.commit()
    return {"items": items, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/follow-ups/<id:item_id>/close", methods=["POST"])
@policy("denials:write")
@blp.arguments(FollowUpCloseIn)
@blp.response(200, FollowUpOut)
def close_follow_up(body, slug: str, item_id: int):
    session = db_session()
    item = followup.close(session, access(), item_id, body["note"])
    session.commit()
    (out,) = followup.list_items(session, status=None, item_id=item.id)[0]
    return out


@blp.route("/follow-up-rules/<id:payer_id>", methods=["PUT"])
@policy("denials:write")
@blp.arguments(FollowUpRuleIn)
@blp.response(200, FollowUpRuleOut)
def put_follow_up_rule(body, slug: str, payer_id: int):
    """After how many days (1-365) without a 277CA or 835 a claim to this payer needs a follow-up."""
    session = db_session()
    days = followup.set_days(session, access(), payer_id, body["days"])
    session.commit()
    return {"payer_id": payer_id, "days": days}
