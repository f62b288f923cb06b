"""EDI intake at billing-company level: upload a 999, 277CA or 835 file; each transaction set is routed to the practice
it names (billing NPI, submitter id and group control number, the payee's NPI or tax id) and applied exactly once:
acknowledgements now, remittances by a posting job per practice and set. Sets that name no practice of the company
wait in the unmatched queue until a user assigns them."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api.security import db_session, policy, principal
from billing.edi_intake import assign_unmatched, list_unmatched, record_upload, upload_status
from integrations.storage import company_key
from medbill.errors import Invalid, NotFound
from medbill.input_limits import upload_limit
from tenants import audit
from tenants.models import BillingCompany

blp = Blueprint("edi", __name__, url_prefix="/api/v1", description="EDI files from the clearinghouse")

MAX_EDI_BYTES = 50 * 1024 * 1024


class EdiArgs(Schema):
    company = fields.String(
        load_default=None,
        validate=validate.Length(max=41),
        metadata={"description": "billing company slug; needed only when you belong to several"},
    )


class IntakeReportSchema(Schema):
    applied = fields.List(fields.Dict(), required=True)
    duplicates = fields.List(fields.Dict(), required=True)
    unmatched = fields.List(fields.Dict(), required=True)
    queued = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "835 sets queued for posting: practice, job_id (GET /api/v1/jobs/<id>), content_key"},
    )
    storage_key = fields.String(required=True)


class UploadAcceptedSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "queued"})
    location = fields.String(required=True, metadata={"description": "GET it for the outcome"})
    job_id = fields.String(required=True)
    storage_key = fields.String(required=True)


class IntakeStatusSchema(IntakeReportSchema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "queued, running, done or refused"})
    file_name = fields.String()
    size = fields.Integer()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "why the file was refused (segment, position)"})
    errors = fields.Dict()
    quarantined = fields.List(
        fields.Dict(), metadata={"description": "sets whose envelope is not your company's, held for the operator"}
    )


class UnmatchedArgs(Schema):
    company = fields.String(load_default=None, validate=validate.Length(max=41))
    include_assigned = fields.Boolean(load_default=False)


class UnmatchedSetSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    storage_key = fields.String(required=True)
    content_key = fields.String(required=True)
    sender_id = fields.String()
    payee_npi = fields.String(allow_none=True)
    payee_tax_id = fields.String(allow_none=True)
    reason = fields.String()
    detail = fields.Dict()
    received_at = fields.DateTime()
    assigned_practice = fields.String(allow_none=True)
    assigned_at = fields.DateTime(allow_none=True)
    job_id = fields.String(allow_none=True)


class AssignSchema(Schema):
    practice = fields.String(required=True, validate=validate.Length(min=1, max=41))


class AssignResultSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    practice = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "queued (835), applied or duplicate"})
    job_id = fields.String()
    result = fields.Dict()


def _writable_companies() -> set[int]:
    return {cid for cid, role in principal().company_roles.items() if role in ("company_admin", "biller")}


def _company_id(slug: str | None) -> int:
    writable = _writable_companies()
    if slug:
        company_id = db_session().scalar(select(BillingCompany.id).where(BillingCompany.slug == slug))
        if company_id not in writable:
            raise NotFound(f"billing company {slug!r} not found")
        return company_id
    if len(writable) != 1:
        raise Invalid("say which billing company the file is for", errors={"company": ["required"]})
    return next(iter(writable))


@blp.route("/edi", methods=["POST"])
@policy("edi:write")
@blp.arguments(EdiArgs, location="query")
@blp.response(202, UploadAcceptedSchema)
@upload_limit(MAX_EDI_BYTES)
def upload_edi(args):
    """Upload a 999, 277CA or 835 (multipart field `file`): the file is stored and a job reads it; the answer (202)
    comes at once with `location` (GET /api/v1/edi/intakes/<id>) to poll for the outcome: acknowledgements for
    practices of your company applied, each 835 set queued for posting into its practice, sets applied before
    reported as duplicates, sets that name no one practice kept in the unmatched queue, sets that are not your
    company's held for the operator (`quarantined`), or the file refused whole with the segment at fault."""
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the file as multipart/form-data field 'file'", errors={"file": ["required"]})
    data = upload.read(MAX_EDI_BYTES + 1)
    if not data.strip() or len(data) > MAX_EDI_BYTES:
        raise Invalid("file is empty or too large", errors={"file": [f"1 byte to {MAX_EDI_BYTES // 2**20} MB"]})
    company_id = _company_id(args["company"])
    services = current_app.extensions["medbill"]
    key = company_key(company_id, "edi", "inbound", f"{hashlib.sha256(data).hexdigest()}.x12")
    # Stored before it is recorded, the job queued after the commit: nothing of it is parsed in this process.
    services.storage.put(key, data, content_type="application/edi-x12")
    session = db_session()
    row = record_upload(
        session, services.dispatcher, company_id=company_id, user_id=principal().user_id, storage_key=key,
        file_name=upload.filename or "", size=len(data),
    )  # fmt: skip
    audit.record(
        session, user_id=principal().user_id, practice_id=None, object_type="edi_file", object_id=key[-80:],
        action="upload", detail={"intake_id": row.id, "size": len(data)},
    )  # fmt: skip
    session.commit()
    location = f"/api/v1/edi/intakes/{row.id}"
    return (
        {"id": row.id, "status": "queued", "location": location, "job_id": row.job_id, "storage_key": key},
        202,
        {"Location": location},
    )


@blp.route("/edi/intakes/<int:intake_id>", methods=["GET"])
@policy("edi:write")
@blp.response(200, IntakeStatusSchema)
def get_intake(intake_id: int):
    """An upload of your company: `queued` or `running` (poll again), `done` with what became of each set, or
    `refused` with the error naming the segment and its position."""
    services = current_app.extensions["medbill"]
    return upload_status(db_session(), services.dispatcher, intake_id, company_ids=_writable_companies())


@blp.route("/edi/unmatched", methods=["GET"])
@policy("edi:write")
@blp.arguments(UnmatchedArgs, location="query")
@blp.response(200, UnmatchedSetSchema(many=True))
def unmatched_sets(args):
    """The unmatched queue of your billing company: transaction sets that named no practice of it (newest first;
    `include_assigned=true` also lists those assigned since)."""
    company_id = _company_id(args["company"])
    services = current_app.extensions["medbill"]
    return list_unmatched(services.db, company_id, include_assigned=args["include_assigned"])


@blp.route("/edi/unmatched/<int:unmatched_id>/assign", methods=["POST"])
@policy("edi:write")
@blp.arguments(AssignSchema)
@blp.response(200, AssignResultSchema)
def assign_unmatched_set(body, unmatched_id: int):
    """Assign an unmatched set to a practice of the same billing company: a 999 or 277CA is applied to it now, an
    835 is queued for posting into it (`job_id`). A set is assigned once."""
    services = current_app.extensions["medbill"]
    return assign_unmatched(
        services.db,
        services.storage,
        services.dispatcher,
        unmatched_id,
        body["practice"],
        company_ids=_writable_companies(),
        user_id=principal().user_id,
    )
