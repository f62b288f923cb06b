"""Authentication: argon2 password hashes and bearer tokens (stored as SHA-256, shown to the caller once)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tenants.models import ApiToken, User

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("medbill-no-such-user")
TOKEN_PREFIX = "mb_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = datetime.now(UTC)
    return user


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
    """Returns the raw secret (never stored) and the stored token row."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
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


def resolve_token(session: Session, raw: str) -> tuple[User, ApiToken] | None:
    """The user behind a live token, or None if unknown, expired, revoked or the user is disabled."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash(raw))
    ).first()
    if row is None:
        return None
    token, user = row
    now = datetime.now(UTC)
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not user.is_active:
        return None
    return user, token


def revoke_token(session: Session, token_id: int, *, user_ids: list[int] | None = None) -> bool:
    """Revoke a token; with user_ids, only if it belongs to one of them (an admin's reach)."""
    stmt = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    if user_ids is not None:
        stmt = stmt.where(ApiToken.user_id.in_(user_ids))
    result = session.execute(stmt.values(revoked_at=datetime.now(UTC)))
    return result.rowcount == 1
