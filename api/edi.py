"""EDI intake at billing-company level: upload a 999, 277CA or 835 file; each transaction set is routed to the practice
it names (billing NPI, submitter id and group control number) and applied exactly once."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api.security import db_session, policy, principal
from billing.edi_intake import intake, practice_slugs_for
from integrations.storage import company_key
from medbill.errors import Invalid, NotFound
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
    storage_key = fields.String(required=True)


def _company_id(slug: str | None) -> int:
    writable = {cid for cid, role in principal().company_roles.items() if role in ("company_admin", "biller")}
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
@blp.response(200, IntakeReportSchema)
def upload_edi(args):
    """Upload a 999, 277CA or 835 (multipart field `file`). Sets for practices of your company are applied; sets
    already applied are reported as duplicates; sets that name no practice are reported as unmatched. A file that
    does not parse is refused whole with the segment at fault."""
    upload = request.files.get("file")
    if upload is None:
        raise Invalid("send the file as multipart/form-data field 'file'", errors={"file": ["required"]})
    data = upload.read(MAX_EDI_BYTES + 1)
    if not data.strip() or len(data) > MAX_EDI_BYTES:
        raise Invalid("file is empty or too large", errors={"file": [f"1 byte to {MAX_EDI_BYTES // 2**20} MB"]})
    company_id = _company_id(args["company"])
    services = current_app.extensions["medbill"]
    key = company_key(company_id, "edi", "inbound", f"{hashlib.sha256(data).hexdigest()}.x12")
    services.storage.put(key, data, content_type="application/edi-x12")
    report = intake(services.db, data, storage_key=key, slugs=practice_slugs_for(services.db, company_id=company_id))
    session = db_session()
    audit.record(
        session,
        user_id=principal().user_id,
        practice_id=None,
        object_type="edi_file",
        object_id=key[-80:],
        action="upload",
        detail={
            "applied": len(report.applied),
            "duplicates": len(report.duplicates),
            "unmatched": len(report.unmatched),
        },
    )
    session.commit()
    return report.as_dict() | {"storage_key": key}
