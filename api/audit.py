"""The company audit trail over HTTP (company admins): `GET /api/v1/company/audit`, paged JSON or `?format=csv`.
A thin adapter over tenants.audit_view, which scopes, filters and audits the read."""

from __future__ import annotations

from datetime import date

from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.reports import csv_too
from api.schemas import PageArgs, PageMeta
from api.security import db_session, policy, principal
from medbill.web import csv_response
from tenants.audit_view import AuditFilters, audit_csv_table, company_audit

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="The company's audit trail (company admins)")


class AuditArgs(PageArgs):
    practice = fields.String(load_default=None, validate=validate.Length(max=41), metadata={"description": "slug"})
    user = fields.String(load_default=None, validate=validate.Length(max=254), metadata={"description": "email"})
    object_type = fields.String(load_default=None, validate=validate.Length(max=50), metadata={"example": "patient"})
    action = fields.String(load_default=None, validate=validate.Length(max=50), metadata={"example": "read"})
    start = fields.Date(load_default=None, metadata={"description": "first day, UTC"})
    end = fields.Date(load_default=None, metadata={"description": "last day, included, UTC"})
    patient_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**63 - 1))
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(("json", "csv")),
        metadata={"description": "csv: every matching entry (up to 50,000) as CSV with a header row"},
    )

    @validates_schema
    def _range(self, data, **_kwargs):
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise ValidationError("must not be before start", "end")


class AuditEntryOut(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    user_id = fields.Integer(allow_none=True)
    user_email = fields.String(allow_none=True)
    user_name = fields.String(allow_none=True)
    practice = fields.String(allow_none=True, metadata={"description": "the practice's slug"})
    practice_name = fields.String(allow_none=True)
    object_type = fields.String(required=True)
    object_id = fields.String(allow_none=True)
    action = fields.String(required=True)
    patient_id = fields.String(allow_none=True, metadata={"description": "the patient the entry is about, if any"})
    ip = fields.String(allow_none=True, metadata={"description": "client address"})
    detail = fields.Dict(required=True)


class AuditPageOut(Schema):
    items = fields.List(fields.Nested(AuditEntryOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


def _filters(args: dict) -> AuditFilters:
    return AuditFilters(**{k: args[k] for k in AuditFilters.__dataclass_fields__})


@blp.route("/company/audit", methods=["GET"])
@policy("audit:read")
@blp.arguments(AuditArgs, location="query")
@blp.response(200, AuditPageOut)
@blp.doc(responses=csv_too("with ?format=csv: one row per entry (who, when, which practice and patient)", AuditPageOut))
def company_audit_log(args):
    """The audit trail of the caller's billing company: its practices' entries and its users' (newest first),
    filtered by practice, user, object type, action, dates and patient. Reading it is audited."""
    session = db_session()
    export = args["format"] == "csv"
    page = company_audit(
        session, principal(), _filters(args), page=args["page"], per_page=args["per_page"], export=export
    )
    session.commit()
    if export:
        return csv_response(f"audit-{date.today().isoformat()}", audit_csv_table(page))
    return {"items": page.items, "meta": {"page": page.page, "per_page": page.per_page, "total": page.total}}
