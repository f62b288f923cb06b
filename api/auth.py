"""Authentication endpoints: exchange email+password for a short-lived bearer token; change one's password; ask for
and use a password reset link; company admins manage long-lived API tokens (for themselves or a service account of
their company; the secret is shown once, only its hash is stored). The flows live in tenants.accounts."""

from __future__ import annotations

from flask import current_app, request
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from api.errors import error_response
from api.security import db_session, policy, principal
from medbill.errors import NotFound, Unauthorized
from tenants import accounts, audit, throttle
from tenants.auth import MAX_PASSWORD_LENGTH, check_credentials, issue_token, revoke_token
from tenants.models import User

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Authentication and API tokens")

RESET_ANSWER = "if that email belongs to an account that may reset its password, a reset link is on its way"


def _services():
    return current_app.extensions["medbill"]


class TokenRequest(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1000))


class TokenResponse(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class PasswordChange(Schema):
    current_password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )
    new_password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )


class PasswordChanged(Schema):
    credentials_revoked = fields.Integer(
        required=True, metadata={"description": "sessions and tokens ended; the token that made the change stays"}
    )


class ResetRequest(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class ResetAnswer(Schema):
    message = fields.String(required=True)


class ResetConfirm(Schema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=100))
    new_password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_PASSWORD_LENGTH)
    )


class ApiTokenCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    user_id = fields.Integer(
        load_default=None,
        metadata={"description": "defaults to the caller; otherwise a service account of the caller's company"},
    )
    expires_in_days = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=3650),
        metadata={"description": "default MEDBILL_API_TOKEN_DEFAULT_DAYS (90), at most MEDBILL_API_TOKEN_MAX_DAYS"},
    )


class ApiTokenOut(Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    created_by_id = fields.Integer(allow_none=True)
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
    per client address; past the limit the answer is 429 with Retry-After. Every refused attempt is audited."""
    limiter = throttle.for_services(_services())
    session = db_session()
    wait = limiter.retry_after(body["email"], request.remote_addr)
    if wait is not None:
        accounts.record_failed_sign_in(
            session, email=body["email"], reason="throttled", user_id=None, ip=request.remote_addr, channel="api"
        )
        session.commit()
        response = error_response(429, f"too many failed sign-in attempts; try again in {throttle.minutes_text(wait)}")
        response.headers["Retry-After"] = str(wait)
        return response
    outcome = check_credentials(session, body["email"], body["password"])
    user = outcome.user
    if user is None:
        limiter.failed(body["email"], request.remote_addr)
        session.rollback()
        accounts.record_failed_sign_in(
            session, email=body["email"], reason=outcome.reason, user_id=outcome.user_id, ip=request.remote_addr,
            channel="api",
        )  # fmt: skip
        session.commit()
        raise Unauthorized("wrong email or password")
    limiter.succeeded(body["email"], request.remote_addr)
    ttl = _services().settings.access_token_ttl
    raw, token = issue_token(session, user, kind="access", ttl_seconds=ttl)
    audit.record(
        session, user_id=user.id, practice_id=None, object_type="session", object_id=token.id, action="login",
        ip=request.remote_addr,
    )  # fmt: skip
    session.commit()
    return {"access_token": raw, "token_type": "bearer", "expires_in": ttl}


@blp.route("/auth/password", methods=["POST"])
@policy()
@blp.arguments(PasswordChange)
@blp.response(200, PasswordChanged)
def change_password(body):
    """Change your own password (the current one is needed). Every other session and token of yours ends at once;
    the token that made the change stays valid."""
    session = db_session()
    me = principal()
    user = session.get(User, me.user_id)
    revoked = accounts.change_password(
        session, user, body["current_password"], body["new_password"], keep_token_id=me.token_id,
        ip=request.remote_addr, via="api",
    )  # fmt: skip
    session.commit()
    return {"credentials_revoked": revoked}


@blp.route("/auth/password-reset", methods=["POST"])
@policy(public=True)
@blp.arguments(ResetRequest)
@blp.response(202, ResetAnswer)
def request_password_reset(body):
    """Ask for a password reset link by mail (valid once, for MEDBILL_PASSWORD_RESET_MINUTES). The answer is the
    same whether or not the email is an account's; requests are limited per account and per client address."""
    session = db_session()
    st = _services().settings
    accounts.start_password_reset(
        session, _services().dispatcher, email=body["email"], ip=request.remote_addr, minutes=st.password_reset_minutes
    )
    session.commit()
    return {"message": RESET_ANSWER}


@blp.route("/auth/password-reset/confirm", methods=["POST"])
@policy(public=True)
@blp.arguments(ResetConfirm)
@blp.response(204)
@blp.alt_response(422, schema=None, description="the link is invalid, used or expired, or the password too short")
def confirm_password_reset(body):
    """Set a new password with the reset link's token. Every session and token of the account ends."""
    session = db_session()
    accounts.consume_reset(session, body["token"], body["new_password"], ip=request.remote_addr, via="api")
    session.commit()


@blp.route("/tokens", methods=["GET"])
@policy("tokens:admin")
@blp.response(200, ApiTokenOut(many=True))
def list_tokens():
    """Long-lived API tokens of the caller and of the users they manage."""
    return accounts.list_api_tokens(db_session(), principal())


@blp.route("/tokens", methods=["POST"])
@policy("tokens:admin")
@blp.arguments(ApiTokenCreate)
@blp.response(201, ApiTokenCreated)
@blp.alt_response(403, schema=None, description="the user is a person other than you (not a service account)")
def create_api_token(body):
    """Create a long-lived API token for yourself or for a service account of your company. It expires after
    MEDBILL_API_TOKEN_DEFAULT_DAYS (90) unless `expires_in_days` says otherwise, at most
    MEDBILL_API_TOKEN_MAX_DAYS (365); the creator is recorded."""
    session = db_session()
    st = _services().settings
    raw, token = accounts.mint_api_token(
        session, principal(), name=body["name"], user_id=body["user_id"], expires_in_days=body["expires_in_days"],
        default_days=st.api_token_default_days, max_days=st.api_token_max_days, ip=request.remote_addr,
    )  # fmt: skip
    session.commit()
    return {**{c: getattr(token, c) for c in ApiTokenOut().fields}, "token": raw}


@blp.route("/tokens/<id:token_id>", methods=["DELETE"])
@policy("tokens:admin")
@blp.response(204)
def delete_api_token(token_id: int):
    """Revoke a token; it stops working at once."""
    session = db_session()
    if not revoke_token(session, token_id, user_ids=accounts.token_holders(session, principal())):
        raise NotFound(f"token {token_id} not found")
    audit.record(
        session, user_id=principal().user_id, practice_id=None, object_type="api_token", object_id=token_id,
        action="revoke", ip=request.remote_addr,
    )  # fmt: skip
    session.commit()
