"""Authentication: argon2 password hashes, the password policy, and credentials stored as SHA-256 (shown to the
caller once): bearer tokens of the API (`access` from a login, `api` for integrations) and portal sessions (`portal`).

A portal session id starts with `ps_`, a bearer token with `mb_`, and every resolver names the kinds it accepts, so
a session id copied out of a browser cookie is refused by the API, and an API token inside a forged cookie by the
portal. Portal sessions also end when idle (`last_used_at` slides with each request) and at their absolute expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medbill.errors import Invalid
from tenants.models import ApiToken, PasswordReset, User

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("medbill-no-such-user")
TOKEN_PREFIX = "mb_"
SESSION_PREFIX = "ps_"
API_KINDS = ("access", "api")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1000
# A service account's stored hash: not an argon2 hash, so no password ever verifies against it.
NO_PASSWORD = "!service-account"


def check_password_policy(password: str, *, field: str = "password") -> None:
    """The one password policy (user creation, change, reset): long enough to resist guessing."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        message = f"use at least {MIN_PASSWORD_LENGTH} characters"
        raise Invalid(f"{field}: {message}", errors={field: [message]})
    if len(password) > MAX_PASSWORD_LENGTH:
        message = f"use at most {MAX_PASSWORD_LENGTH} characters"
        raise Invalid(f"{field}: {message}", errors={field: [message]})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class SignIn:
    """The outcome of checking an email and password: the user when they may sign in, else the reason (for the
    audit trail only; the caller is told the same "wrong email or password" in every case)."""

    user: User | None
    reason: str | None = None
    user_id: int | None = None  # the account the email names, when there is one (also on failures)


def check_credentials(session: Session, email: str, password: str) -> SignIn:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active or user.is_service_account:
        verify_password(_DUMMY_HASH, password)
        if user is None:
            return SignIn(None, "unknown email")
        return SignIn(None, "service account" if user.is_service_account else "account deactivated", user.id)
    if not verify_password(user.password_hash, password):
        return SignIn(None, "wrong password", user.id)
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = datetime.now(UTC)
    return SignIn(user, None, user.id)


def authenticate(session: Session, email: str, password: str) -> User | None:
    return check_credentials(session, email, password).user


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(
    session: Session,
    user: User,
    *,
    kind: str,
    ttl_seconds: int | None,
    name: str = "",
    created_by: User | None = None,
) -> tuple[str, ApiToken]:
    """Returns the raw secret (never stored) and the stored token row. A portal session's `ttl_seconds` is its
    absolute lifetime."""
    raw = (SESSION_PREFIX if kind == "portal" else TOKEN_PREFIX) + secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    token = ApiToken(
        user_id=user.id,
        kind=kind,
        name=name,
        token_hash=token_hash(raw),
        prefix=raw[:10],
        expires_at=expires_at,
        created_by_id=created_by.id if created_by else None,
    )
    session.add(token)
    session.flush()
    session.refresh(token)
    return raw, token


def resolve_token(session: Session, raw: str, *, kinds: tuple[str, ...] | None = None) -> tuple[User, ApiToken] | None:
    """The user behind a live credential of one of `kinds` (None: any kind, the caller checks `token.kind`), or None
    if unknown, of another kind, expired, revoked or the user is disabled."""
    if not raw or not isinstance(raw, str) or not raw.startswith((TOKEN_PREFIX, SESSION_PREFIX)) or len(raw) > 100:
        return None
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash(raw))
    ).first()
    if row is None:
        return None
    token, user = row
    if kinds is not None and token.kind not in kinds:
        return None
    now = datetime.now(UTC)
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not user.is_active:
        return None
    return user, token


@dataclass(frozen=True)
class PortalSession:
    user: User | None
    token: ApiToken | None
    ended: str | None = None  # "idle" when it was live but idle too long (the user is told why)


# The key of the portal session token in the signed Flask session cookie (the portal writes it, the file links read it).
PORTAL_TOKEN_KEY = "portal_token"


def resolve_portal_session(session: Session, raw: str, *, idle_seconds: int) -> PortalSession:
    """The live portal session behind a cookie's session id, its last-seen time slid to now. A session idle for
    longer than `idle_seconds` is revoked on the spot (ended="idle"). The caller commits."""
    found = resolve_token(session, raw, kinds=("portal",))
    if found is None:
        return PortalSession(None, None)
    user, token = found
    now = datetime.now(UTC)
    last_seen = token.last_used_at or token.created_at
    if last_seen + timedelta(seconds=idle_seconds) <= now:
        token.revoked_at = now
        return PortalSession(None, token, "idle")
    token.last_used_at = now
    return PortalSession(user, token)


def revoke_token(session: Session, token_id: int, *, user_ids: list[int] | None = None) -> bool:
    """Revoke a token; with user_ids, only if it belongs to one of them (an admin's reach)."""
    stmt = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    if user_ids is not None:
        stmt = stmt.where(ApiToken.user_id.in_(user_ids))
    result = session.execute(stmt.values(revoked_at=datetime.now(UTC)))
    return result.rowcount == 1


def revoke_all(session: Session, user_id: int, *, keep_token_id: int | None = None) -> int:
    """End every portal session and API token of a user at once (deactivation, password change or reset), and
    void their outstanding password reset links. `keep_token_id`: the credential that made a password change
    stays. Returns the number of credentials revoked."""
    now = datetime.now(UTC)
    stmt = update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    if keep_token_id is not None:
        stmt = stmt.where(ApiToken.id != keep_token_id)
    revoked = session.execute(stmt.values(revoked_at=now)).rowcount
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    return revoked
