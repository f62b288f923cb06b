"""Authentication endpoints: exchange email+password for a short-lived bearer token; admins manage long-lived API
tokens for integrations (the secret is shown once, only its hash is stored)."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from api.errors import error_response
from api.security import db_session, policy, principal
from medbill.errors import NotFound, Unauthorized
from tenants import audit, throttle
from tenants.auth import authenticate, issue_token, revoke_token
from tenants.models import ApiToken, Membership, User

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Authentication and API tokens")


class TokenRequest(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1000))


class TokenResponse(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class ApiTokenCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    user_id = fields.Integer(load_default=None, metadata={"description": "defaults to the caller"})
    expires_in_days = fields.Integer(load_default=None, validate=validate.Range(min=1, max=3650))


class ApiTokenOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class ApiTokenCreated(ApiTokenOut):
    token = fields.String(required=True, metadata={"description": "the secret; shown only in this response"})


@blp.route("/auth/token", methods=["POST"])
@policy(public=True)
@blp.arguments(TokenRequest)
@blp.response(200, TokenResponse)
@blp.alt_response(401, schema=None, description="wrong email or password")
@blp.alt_response(429, schema=None, description="too many failed attempts; retry after the Retry-After seconds")
def create_token(body):
    """Log in: exchange email and password for a bearer access token. Failed attempts are limited per account and
    per client address; past the limit the answer is 429 with Retry-After."""
    limiter = throttle.for_services(current_app.extensions["medbill"])
    wait = limiter.retry_after(body["email"], request.remote_addr)
    if wait is not None:
        response = error_response(429, f"too many failed sign-in attempts; try again in {throttle.minutes_text(wait)}")
        response.headers["Retry-After"] = str(wait)
        return response
    session = db_session()
    user = authenticate(session, body["email"], body["password"])
    if user is None:
        limiter.failed(body["email"], request.remote_addr)
        raise Unauthorized("wrong email or password")
    limiter.succeeded(body["email"], request.remote_addr)
    ttl = current_app.extensions["medbill"].settings.access_token_ttl
    raw, token = issue_token(session, user, kind="access", ttl_seconds=ttl)
    audit.record(session, user_id=user.id, practice_id=None, object_type="session", object_id=token.id, action="login")
    session.commit()
    return {"access_token": raw, "token_type": "bearer", "expires_in": ttl}


def _admin_user_ids(session) -> list[int]:
    """Users an admin may issue or revoke tokens for: members of the companies they administer."""
    companies = principal().admin_company_ids
    return list(session.scalars(select(Membership.user_id).where(Membership.company_id.in_(companies)).distinct())) or [
        principal().user_id
    ]


@blp.route("/tokens", methods=["GET"])
@policy("tokens:admin")
@blp.response(200, ApiTokenOut(many=True))
def list_tokens():
    """Long-lived API tokens of the caller's billing companies."""
    session = db_session()
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.kind == "api", ApiToken.user_id.in_(_admin_user_ids(session)))
            .order_by(ApiToken.id)
        )
    )


@blp.route("/tokens", methods=["POST"])
@policy("tokens:admin")
@blp.arguments(ApiTokenCreate)
@blp.response(201, ApiTokenCreated)
def create_api_token(body):
    """Create a long-lived API token for an integration (for yourself or a member of your company)."""
    session = db_session()
    user_id = body["user_id"] or principal().user_id
    if user_id not in _admin_user_ids(session):
        raise NotFound(f"user {user_id} not found")
    user = session.get(User, user_id)
    admin = session.get(User, principal().user_id)
    ttl = body["expires_in_days"] * 86400 if body["expires_in_days"] else None
    raw, token = issue_token(session, user, kind="api", ttl_seconds=ttl, name=body["name"], created_by=admin)
    audit.record(
        session, user_id=admin.id, practice_id=None, object_type="api_token", object_id=token.id, action="create"
    )
    session.commit()
    return {**{c: getattr(token, c) for c in ApiTokenOut().fields}, "token": raw}


@blp.route("/tokens/<id:token_id>", methods=["DELETE"])
@policy("tokens:admin")
@blp.response(204)
def delete_api_token(token_id: int):
    """Revoke a token; it stops working at once."""
    session = db_session()
    if not revoke_token(session, token_id, user_ids=_admin_user_ids(session)):
        raise NotFound(f"token {token_id} not found")
    audit.record(
        session,
        user_id=principal().user_id,
        practice_id=None,
        object_type="api_token",
        object_id=token_id,
        action="revoke",
    )
    session.commit()
