"""Collections: placement candidates and approval, agency exports, agency payments and recalls (API).

Billers and admins (`collections:write`) set the practice's rules and each agency's terms (file format, fee,
delivery), review candidates (approve with an agency, or skip with a reason), start exports and recall accounts.
Agency users see only what is placed with their agency: open placements, their export files (`exports:read`), and
report payments collected and return accounts (`agency:report`). Thin views over billing.collections; every read
of patient data is audited there."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.security import access, db_session, policy
from api.setup import Id, Money
from billing import agency_formats, collections, connections
from integrations.storage import StorageError
from medbill.errors import Invalid
from medbill.input_limits import upload_limit
from tenants.audit import mask_secrets

blp = Blueprint(
    "collections",
    __name__,
    url_prefix="/api/v1/practices/<slug>",
    description="Collections: placement candidates and approval, agency exports, agency payments and recalls",
)


# --- schemas --------------------------------------------------------------------------------------------------------


class CollectionRulesSchema(Schema):
    min_age_days = fields.Integer(validate=validate.Range(min=0, max=3650))
    min_statements = fields.Integer(validate=validate.Range(min=0, max=3650))
    min_balance = Money(validate=validate.Range(min=0))
    exclude_payment_plans = fields.Boolean()
    skip_days = fields.Integer(validate=validate.Range(min=1, max=3650))


class CollectionAgencyOut(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True)
    fee_percent = fields.Decimal(as_string=True, places=2, required=True)
    file_format = fields.Dict(required=True, metadata={"description": "the format exports use for this agency"})
    report_format = fields.Dict(required=True, metadata={"description": "the layout of the agency's payment files"})
    format_source = fields.String(required=True, metadata={"description": "practice, agency or default"})
    sftp = fields.Dict(allow_none=True)


class AgencyTermsIn(Schema):
    file_format = fields.Dict(allow_none=True, metadata={"description": "see GET .../collections/formats"})
    report_format = fields.Dict(allow_none=True, metadata={"description": "payment file layout (purpose: report)"})
    fee_percent = fields.Decimal(as_string=True, places=2, validate=validate.Range(min=0, max=100))
    sftp = fields.Dict(
        allow_none=True,
        metadata={
            "description": "delivery (null: none; changing it needs the company admin role): {transport: sftp, host "
            "(one the operator allows), port, username, password_secret | private_key_secret (a company secret's "
            "name), host_key_sha256, inbox} or {transport: directory, subdir}; *_env, password, private_key and "
            "path are refused"
        },
    )


class CollectionCandidateOut(Schema):
    patient_id = fields.Integer(required=True)
    account_number = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    patient_balance = Money(required=True)
    oldest_service_date = fields.Date(required=True)
    age_days = fields.Integer(required=True)
    statements = fields.Integer(required=True)
    last_statement_date = fields.Date(allow_none=True)
    last_payment_date = fields.Date(allow_none=True)
    on_payment_plan = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), required=True)


class CollectionCandidateList(Schema):
    items = fields.List(fields.Nested(CollectionCandidateOut), required=True)
    rules = fields.Nested(CollectionRulesSchema, required=True)


class PlacementApproveIn(Schema):
    agency_id = Id(required=True)
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class PlacementSkipIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    until = fields.Date(load_default=None, allow_none=True)


class PlacementReviewOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    decision = fields.String(required=True)
    reason = fields.String(required=True)
    skip_until = fields.Date(allow_none=True)


class PlacementOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    account_number = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    agency_id = fields.Integer(required=True)
    agency_name = fields.String(required=True)
    placed_at = fields.DateTime(required=True)
    recalled_at = fields.DateTime(allow_none=True)
    recalled_by = fields.String(allow_none=True)
    recall_reason = fields.String()
    balance_placed = Money(required=True)
    patient_balance = Money(required=True)
    collected_gross = Money(required=True)
    collected_fee = Money(required=True)
    collected_net = Money(required=True)
    exported_in = fields.Integer(allow_none=True, metadata={"description": "the export file that carried it"})


class PlacementListArgs(Schema):
    status = fields.String(load_default="open", validate=validate.OneOf(["open", "recalled", "all"]))


class PlacementList(Schema):
    items = fields.List(fields.Nested(PlacementOut), required=True)


class PlacementRecallIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class AgencyPaymentIn(Schema):
    amount = Money(required=True, validate=validate.Range(min=0, min_inclusive=False))
    received_on = fields.Date(required=True)
    reference = fields.String(required=True, validate=validate.Length(min=1, max=100))


class AgencyPaymentOut(Schema):
    id = fields.Integer(required=True)
    placement_id = fields.Integer(required=True)
    agency_id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    reference = fields.String(required=True)
    received_on = fields.Date(required=True)
    gross = Money(required=True)
    fee_percent = fields.Decimal(as_string=True, places=2, required=True)
    fee = Money(required=True)
    net = Money(required=True)
    created_at = fields.DateTime(required=True)
    duplicate = fields.Boolean(metadata={"description": "true when this reference was reported before"})


class AgencyPaymentList(Schema):
    items = fields.List(fields.Nested(AgencyPaymentOut), required=True)


class AgencyExportOut(Schema):
    id = fields.Integer(required=True)
    agency_id = fields.Integer(required=True)
    kind = fields.String(required=True)
    filename = fields.String(required=True)
    file_type = fields.String(required=True)
    row_count = fields.Integer(required=True)
    account_count = fields.Integer(required=True)
    total_placed = Money(required=True)
    sha256 = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    delivered_sftp_at = fields.DateTime(allow_none=True)
    delivery_error = fields.String()
    download_url = fields.String(allow_none=True)


class AgencyExportList(Schema):
    items = fields.List(fields.Nested(AgencyExportOut), required=True)


class AgencyExportRequest(Schema):
    agency_id = Id(load_default=None, allow_none=True)


class AgencyExportAccepted(Schema):
    job_id = fields.String(required=True)


# --- rules and agencies ---------------------------------------------------------------------------------------------


@blp.route("/collections/rules", methods=["GET"])
@policy("collections:write")
@blp.response(200, CollectionRulesSchema)
def get_rules(slug: str):
    """The practice's placement rules (defaults until set)."""
    return collections.get_rules(db_session())


@blp.route("/collections/rules", methods=["PUT"])
@policy("collections:write")
@blp.arguments(CollectionRulesSchema)
@blp.response(200, CollectionRulesSchema)
def put_rules(body, slug: str):
    """Change some or all of the rules."""
    session = db_session()
    rules = collections.set_rules(session, access(), body)
    session.commit()
    return rules


class FormatsOut(Schema):
    fields_ = fields.Dict(
        data_key="fields", required=True, metadata={"description": "kind -> field name -> value kind (text, date...)"}
    )
    default = fields.Dict(required=True, metadata={"description": "the placement file format used unless configured"})
    default_report = fields.Dict(required=True, metadata={"description": "the payment file format used unless set"})


@blp.route("/collections/formats", methods=["GET"])
@policy("collections:write")
@blp.response(200, FormatsOut)
def formats(slug: str):
    """The fields an agency file can carry (by kind), and the default format."""
    return {
        "fields_": agency_formats.describe_fields(),
        "default": agency_formats.DEFAULT_FORMAT,
        "default_report": agency_formats.DEFAULT_REPORT_FORMAT,
    }


def _agency_out(session, agency) -> dict:
    terms = collections.terms_of(session, agency.id)
    if terms is not None and terms.file_format:
        source = "practice"
    elif (agency.settings or {}).get("file_format"):
        source = "agency"
    else:
        source = "default"
    return {
        "id": agency.id,
        "slug": agency.slug,
        "name": agency.name,
        "fee_percent": terms.fee_percent if terms else 0,
        "file_format": collections.format_config(agency, terms),
        "report_format": collections.report_format_config(agency, terms),
        "format_source": source,
        "sftp": mask_secrets(terms.sftp) if terms and terms.sftp else None,
    }


@blp.route("/collections/agencies", methods=["GET"])
@policy("collections:write")
@blp.response(200, CollectionAgencyOut(many=True))
def list_agencies(slug: str):
    """The agencies this practice places with, with their terms."""
    session = db_session()
    return [_agency_out(session, a) for a in collections.linked_agencies(session, access())]


@blp.route("/collections/agencies/<id:agency_id>", methods=["PUT"])
@policy("collections:write")
@blp.arguments(AgencyTermsIn)
@blp.response(200, CollectionAgencyOut)
def put_terms(body, slug: str, agency_id: int):
    """Set an agency's file format (validated: errors name the field), fee percent and SFTP delivery."""
    session = db_session()
    policy = connections.OutboundPolicy.from_settings(current_app.extensions["medbill"].settings)
    collections.set_terms(session, access(), agency_id, body, policy=policy)
    agency = next(a for a in collections.linked_agencies(session, access()) if a.id == agency_id)
    out = _agency_out(session, agency)
    session.commit()
    return out


# --- candidates -----------------------------------------------------------------------------------------------------


@blp.route("/collections/candidates", methods=["GET"])
@policy("collections:write")
@blp.response(200, CollectionCandidateList)
def list_candidates(slug: str):
    """Accounts the rules pick for placement, oldest balance first, with why each qualifies."""
    session = db_session()
    items = collections.candidates(session, access())
    rules = collections.get_rules(session)
    session.commit()
    return {"items": items, "rules": rules}


@blp.route("/collections/candidates/<id:patient_id>/approve", methods=["POST"])
@policy("collections:write")
@blp.arguments(PlacementApproveIn)
@blp.response(201, PlacementOut)
def approve(body, slug: str, patient_id: int):
    """Place the account with one of the practice's agencies, with the balance the patient owes now."""
    session = db_session()
    placement = collections.approve(session, access(), patient_id, body["agency_id"], note=body["note"])
    view = collections.placement_view(session, access(), placement.id)
    session.commit()
    return view


@blp.route("/collections/candidates/<id:patient_id>/skip", methods=["POST"])
@policy("collections:write")
@blp.arguments(PlacementSkipIn)
@blp.response(201, PlacementReviewOut)
def skip(body, slug: str, patient_id: int):
    """Leave the account with the practice for now (reason required); it returns to the list after `until`."""
    session = db_session()
    review = collections.skip(session, access(), patient_id, body["reason"], until=body["until"])
    session.commit()
    return review


# --- placements -----------------------------------------------------------------------------------------------------


@blp.route("/collections/placements", methods=["GET"])
@policy("patients:read")
@blp.arguments(PlacementListArgs, location="query")
@blp.response(200, PlacementList)
def list_placements(args, slug: str):
    """Placements with what was collected on each. An agency sees only its open placements."""
    session = db_session()
    items = collections.list_placements(session, access(), status=args["status"])
    session.commit()
    return {"items": items}


@blp.route("/collections/placements/<id:placement_id>", methods=["GET"])
@policy("patients:read")
@blp.response(200, PlacementOut)
def get_placement(slug: str, placement_id: int):
    """One placement."""
    session = db_session()
    view = collections.placement_view(session, access(), placement_id)
    session.commit()
    return view


@blp.route("/collections/placements/<id:placement_id>/recall", methods=["POST"])
@policy("practice:read")
@blp.arguments(PlacementRecallIn)
@blp.response(200, PlacementOut)
def recall(body, slug: str, placement_id: int):
    """Return the account to the practice (`agency:report` for the agency, `collections:write` for billers)."""
    session = db_session()
    placement = collections.recall(session, access(), placement_id, body["reason"])
    session.commit()
    # After the recall an agency no longer sees the account: answer from the practice's side of the record.
    view = collections.placement_views(session, [placement])[0]
    return view


@blp.route("/collections/placements/<id:placement_id>/payments", methods=["POST"])
@policy("agency:report")
@blp.arguments(AgencyPaymentIn)
@blp.response(201, AgencyPaymentOut)
def report_payment(body, slug: str, placement_id: int):
    """Report a payment the agency collected: posted to the patient's account as a payment of the gross; the
    agency's fee (its percent for this practice) and the net are recorded. Sending the same reference again
    answers with the first report (`duplicate: true`) and posts nothing."""
    session = db_session()
    report, created = collections.report_payment(
        session,
        access(),
        placement_id,
        amount=body["amount"],
        received_on=body["received_on"],
        reference=body["reference"],
    )
    session.commit()
    out = {name: getattr(report, name) for name in AgencyPaymentOut().fields if name != "duplicate"}
    return out | {"duplicate": not created}, 201 if created else 200


class PaymentFileOut(Schema):
    agency_id = fields.Integer(required=True)
    posted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True, metadata={"description": "lines whose reference was reported before"})
    gross = Money(required=True)
    storage_key = fields.String(required=True)


MAX_PAYMENT_FILE_BYTES = 5 * 1024 * 1024


@blp.route("/collections/payment-files", methods=["POST"])
@policy("agency:report")
@blp.response(200, PaymentFileOut)
@upload_limit(MAX_PAYMENT_FILE_BYTES)
def post_payment_file(slug: str):
    """Upload the agency's payment file (multipart field `file`, in the agency's report layout; `agency_id` when
    you report for several agencies). Every line must name an account placed with the agency; the file is checked
    whole and posted all or nothing. Lines reported before (same reference) post nothing again."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("send the file as multipart/form-data field 'file'", errors={"file": ["required"]})
    data = upload.read(MAX_PAYMENT_FILE_BYTES + 1)
    if len(data) > MAX_PAYMENT_FILE_BYTES:
        raise Invalid("file too large", errors={"file": ["at most 5 MB"]})
    agency_id = request.form.get("agency_id")
    if agency_id is not None and not agency_id.isdigit():
        raise Invalid("agency_id is not an id", errors={"agency_id": ["a number"]})
    session = db_session()
    result = collections.report_payment_file(session, access(), data, agency_id=int(agency_id) if agency_id else None)
    storage = current_app.extensions["medbill"].storage
    key = collections.store_payment_file(session, storage, access(), result["agency_id"], data, upload.filename)
    session.commit()
    return result | {"storage_key": key}


@blp.route("/collections/placements/<id:placement_id>/payments", methods=["GET"])
@policy("patients:read")
@blp.response(200, AgencyPaymentList)
def list_payments(slug: str, placement_id: int):
    """Payments agencies reported on the placement: gross, fee and net."""
    session = db_session()
    rows = collections.list_reports(session, access(), placement_id)
    session.commit()
    return {"items": rows}


# --- exports --------------------------------------------------------------------------------------------------------


def _download_url(export) -> str | None:
    storage = current_app.extensions["medbill"].storage
    try:
        return storage.presigned_url(export.storage_key, download_name=export.filename)
    except StorageError:
        return None


@blp.route("/collections/exports", methods=["GET"])
@policy("exports:read")
@blp.response(200, AgencyExportList)
def list_exports(slug: str):
    """Export files, newest first. An agency sees only its own."""
    session = db_session()
    rows = collections.list_exports(session, access())
    session.commit()
    return {"items": rows}


@blp.route("/collections/exports/<id:export_id>", methods=["GET"])
@policy("exports:read")
@blp.response(200, AgencyExportOut)
def get_export(slug: str, export_id: int):
    """One export file, with a short-lived download link."""
    session = db_session()
    export = collections.get_export(session, access(), export_id, action="download")
    session.commit()
    out = {name: getattr(export, name) for name in AgencyExportOut().fields if name != "download_url"}
    return out | {"download_url": _download_url(export)}


@blp.route("/collections/exports", methods=["POST"])
@policy("collections:write")
@blp.arguments(AgencyExportRequest)
@blp.response(202, AgencyExportAccepted)
def start_export(body, slug: str):
    """Export new placements now (one agency, or all with new placements) on the `exports` queue."""
    services = current_app.extensions["medbill"]
    session = db_session()
    if body["agency_id"] is not None:
        collections.linked_agency(session, access(), body["agency_id"])
    job_id = services.dispatcher.enqueue_after_commit(
        session,
        "exports",
        "jobs.exports.export_placements",
        slug,
        body["agency_id"],
        access().user_id,
        meta={"user_id": access().user_id, "practice": slug, "kind": "agency_export"},
    )
    session.commit()
    return {"job_id": job_id}
