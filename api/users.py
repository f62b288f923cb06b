"""A company admin's users: the list with each user's roles and status, deactivation (every session and token of
the user ends at once) and reactivation, and service accounts for integrations (users that hold only API tokens).
Only the company's own users: its billers and admins, its practices' doctors and the users of agencies attached to
its practices; anyone else is a 404. The flows live in tenants.accounts."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.security import db_session, policy, principal
from tenants import accounts

blp = Blueprint("users", __name__, url_prefix="/api/v1/company", description="Company users and service accounts")


class UserOut(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    full_name = fields.String(required=True)
    roles = fields.List(fields.String(), required=True)
    is_active = fields.Boolean(required=True)
    is_service_account = fields.Boolean(required=True)
    last_login_at = fields.DateTime(allow_none=True)
    deactivated_at = fields.DateTime(allow_none=True)


class DeactivationOut(Schema):
    id = fields.Integer(required=True)
    is_active = fields.Boolean(required=True)
    credentials_revoked = fields.Integer(required=True)


class ServiceAccountCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(load_default="biller", validate=validate.OneOf(accounts.SERVICE_ACCOUNT_ROLES))
    company_id = fields.Integer(load_default=None, metadata={"description": "needed only by an admin of several"})


def _row(session, user_id: int) -> accounts.UserRow:
    return next(r for r in accounts.company_users(session, principal()) if r.id == user_id)


@blp.route("/users", methods=["GET"])
@policy("users:admin")
@blp.response(200, UserOut(many=True))
def list_users():
    """The company's users with their roles and whether they may sign in."""
    return accounts.company_users(db_session(), principal())


@blp.route("/users/<id:user_id>/deactivate", methods=["POST"])
@policy("users:admin")
@blp.response(200, DeactivationOut)
def deactivate_user(user_id: int):
    """Deactivate a user: they cannot sign in, and every portal session and API token of theirs stops working at
    once (reactivation does not bring those back). Audited."""
    session = db_session()
    user = accounts.managed_user(session, principal(), user_id)
    revoked = accounts.deactivate(session, user, actor_id=principal().user_id, ip=request.remote_addr, via="api")
    session.commit()
    return {"id": user.id, "is_active": user.is_active, "credentials_revoked": revoked}


@blp.route("/users/<id:user_id>/reactivate", methods=["POST"])
@policy("users:admin")
@blp.response(200, UserOut)
def reactivate_user(user_id: int):
    """Let a deactivated user sign in again. Audited."""
    session = db_session()
    user = accounts.managed_user(session, principal(), user_id)
    accounts.reactivate(session, user, actor_id=principal().user_id, ip=request.remote_addr, via="api")
    session.commit()
    return _row(session, user.id)


@blp.route("/service-accounts", methods=["POST"])
@policy("users:admin")
@blp.arguments(ServiceAccountCreate)
@blp.response(201, UserOut)
def create_service_account(body):
    """A service account of your company for an integration: it cannot sign in with a password; mint its API
    tokens with POST /api/v1/tokens and its user_id."""
    session = db_session()
    user = accounts.create_service_account(
        session, principal(), body["name"], role=body["role"], company_id=body["company_id"], ip=request.remote_addr
    )
    session.commit()
    return _row(session, user.id)
