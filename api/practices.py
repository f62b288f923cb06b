"""Practices the caller may see."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.security import access, db_session, policy, principal
from tenants.authz import visible_practices
from tenants.registry import get_practice as load_practice

blp = Blueprint("practices", __name__, url_prefix="/api/v1", description="Client practices")


class PracticeSchema(Schema):
    slug = fields.String(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    company = fields.Function(lambda p: p.company.slug, required=True)


@blp.route("/practices", methods=["GET"])
@policy(None)
@blp.response(200, PracticeSchema(many=True))
def list_practices():
    """Every practice the caller may see (a doctor: their own; an agency: those it serves)."""
    return visible_practices(db_session(), principal())


class PracticeDetail(PracticeSchema):
    company = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    permissions = fields.List(fields.String(), required=True)


@blp.route("/practices/<slug>", methods=["GET"])
@policy("practice:read")
@blp.response(200, PracticeDetail)
def get_practice(slug: str):
    """One practice, with what the caller may do in it."""
    practice = load_practice(db_session(), slug)
    return {
        "slug": practice.slug,
        "name": practice.name,
        "status": practice.status,
        "company": practice.company.slug,
        "roles": sorted(access().roles),
        "permissions": sorted(access().permissions),
    }
