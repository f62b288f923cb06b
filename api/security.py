"""Applies authorisation to every API route: each view declares a policy; a before-request hook authenticates the
bearer token, resolves the practice in the URL through tenants.authz and opens the request's one session. A route
without a declared policy is refused (fail closed) and reported when the app is built."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request
from flask import session as flask_session
from sqlalchemy.orm import Session

from medbill.errors import Forbidden, NotFound, Unauthorized
from tenants.auth import API_KINDS, PORTAL_TOKEN_KEY, resolve_portal_session, resolve_token
from tenants.authz import PracticeAccess, Principal, load_principal, require_global, resolve_practice
from tenants.db import SLUG_RE
from tenants.file_links import Credential

POLICY_ATTR = "_medbill_policy"


@dataclass(frozen=True)
class Policy:
    permission: str | None
    public: bool = False


def policy(permission: str | None = None, *, public: bool = False):
    """Declare what a view needs: a permission (checked against the practice in the URL when there is one),
    None for 'any signed-in user', or public=True."""

    def mark(fn):
        setattr(fn, POLICY_ATTR, Policy(permission, public))
        return fn

    return mark


def db_session() -> Session:
    return g.db_session


def principal() -> Principal:
    return g.principal


def access() -> PracticeAccess:
    return g.access


def _open_session(slug: str | None) -> Session:
    db = current_app.extensions["medbill"].db
    # Practice routes get a tenant-bound session (shared tables are schema-qualified, so it serves both).
    ctx = db.tenant_session(slug) if slug else db.shared_session()
    session = ctx.__enter__()
    g.db_session_ctx = ctx
    g.db_session = session
    return session


def close_session(_exc=None) -> None:
    ctx = g.pop("db_session_ctx", None)
    g.pop("db_session", None)
    if ctx is not None:
        ctx.__exit__(None, None, None)


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>' (get one from POST /api/v1/auth/token)")
    return token.strip()


def enforce() -> None:
    if not request.path.startswith("/api/v1/") or request.endpoint is None:
        return
    view = current_app.view_functions[request.endpoint]
    pol: Policy | None = getattr(view, POLICY_ATTR, None)
    if pol is None:
        raise Forbidden("this route declares no access policy")
    slug = (request.view_args or {}).get("slug")
    if slug is not None and not SLUG_RE.match(slug):
        raise NotFound(f"practice {slug!r} not found")
    session = _open_session(slug)
    if pol.public:
        return
    # Only bearer kinds: a portal session id (even one copied out of a browser's cookie) is no API credential.
    found = resolve_token(session, _bearer(), kinds=API_KINDS)
    if found is None:
        raise Unauthorized("token is invalid, expired or revoked")
    user, token = found
    g.principal = load_principal(user, token.id)
    if slug is not None:
        g.access = resolve_practice(session, g.principal, slug, pol.permission or "practice:read")
    elif pol.permission:
        require_global(g.principal, pol.permission)


def request_credential(session: Session | None = None) -> Credential | None:
    """Who authenticated this request, and with which credential: the one place that knows it (file links are bound
    to it). On API and portal routes the sign-in hooks have decided already; on routes outside both (the `/files`
    links) `session` is used to authenticate an API bearer token or, without one, the portal's session cookie."""
    signed_in = g.get("principal") or g.get("portal_principal")
    if signed_in is not None:
        return Credential(signed_in.user_id, f"token:{signed_in.token_id}") if signed_in.token_id else None
    if session is None:
        return None
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and raw.strip():
        found = resolve_token(session, raw.strip(), kinds=API_KINDS)
    else:
        raw = flask_session.get(PORTAL_TOKEN_KEY)
        idle = current_app.extensions["medbill"].settings.session_idle_minutes * 60
        live = resolve_portal_session(session, raw, idle_seconds=idle) if isinstance(raw, str) else None
        found = (live.user, live.token) if live is not None and live.user is not None else None
    if found is None:
        return None
    user, token = found
    return Credential(user.id, f"token:{token.id}")


def unguarded_routes(app) -> list[str]:
    """API rules whose view has no policy: the app factory refuses to start with any."""
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            if getattr(app.view_functions[rule.endpoint], POLICY_ATTR, None) is None:
                missing.append(rule.rule)
    return missing
