"""A billing company's stored credentials over HTTP (company admins, `connections:write`): set or replace a secret,
delete it, list names with their dates. The value is write-only: no answer ever carries it. Thin views over
tenants.secrets; transports name these secrets (`password_secret`, `private_key_secret`)."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.security import db_session, policy, principal
from billing.secret_uses import delete_unused_secret
from tenants import secrets

blp = Blueprint(
    "secrets",
    __name__,
    url_prefix="/api/v1/company",
    description="The billing company's stored credentials (write-only), named by its transports",
)


class CompanyArgs(Schema):
    company = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=41),
        metadata={"description": "the company's slug; needed only by an admin of several companies"},
    )


class SecretIn(Schema):
    value = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=1, max=secrets.MAX_VALUE_LENGTH),
        metadata={"description": "the password or PEM private key; stored encrypted, never returned"},
    )


class SecretOut(Schema):
    name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    created_by = fields.Integer(allow_none=True, metadata={"description": "user id"})
    updated_at = fields.DateTime(required=True)
    updated_by = fields.Integer(allow_none=True, metadata={"description": "user id"})


class SecretList(Schema):
    company = fields.String(required=True)
    items = fields.List(fields.Nested(SecretOut), required=True)


@blp.route("/secrets", methods=["GET"])
@policy("connections:write")
@blp.arguments(CompanyArgs, location="query")
@blp.response(200, SecretList)
def list_secrets(args):
    """The company's secrets by name, with who set them and when (never their values)."""
    session = db_session()
    company = secrets.admin_company(session, principal(), args["company"])
    return {"company": company.slug, "items": secrets.list_secrets(session, company.id)}


@blp.route("/secrets/<name>", methods=["PUT"])
@policy("connections:write")
@blp.arguments(CompanyArgs, location="query")
@blp.arguments(SecretIn)
@blp.response(200, SecretOut)
def put_secret(args, body, name: str):
    """Set or replace a secret (audited, by name). The answer carries its dates, not its value."""
    session = db_session()
    company = secrets.admin_company(session, principal(), args["company"])
    box = secrets.SecretBox.from_settings(current_app.extensions["medbill"].settings)
    row, _created = secrets.put_secret(session, box, company.id, name, body["value"], user_id=principal().user_id)
    session.commit()
    return row


@blp.route("/secrets/<name>", methods=["DELETE"])
@policy("connections:write")
@blp.arguments(CompanyArgs, location="query")
@blp.response(204)
def delete_secret(args, name: str):
    """Delete a secret (audited). 409 `secret_in_use`, nothing deleted, while a connection of the company (a
    practice's clearinghouse transport or agency delivery) names it: `errors.used_by` lists them."""
    session = db_session()
    company = secrets.admin_company(session, principal(), args["company"])
    delete_unused_secret(session, company.id, name, user_id=principal().user_id)
    session.commit()
