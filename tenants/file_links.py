"""File links of the web app (`/files/<link id>`, local storage's stand-in for S3 presigned URLs), bound to the user
who asked for them.

A link is a random id whose SHA-256 is the key of a `FileGrant` row: one storage key and one download name, for
one user signed in with one credential (api/security.py `request_credential`), for a short time. Nothing in the link
is derived from the server's secret key, so a leaked key cannot make one; a link is honoured only for the same user
and credential that asked for it, before it expires. Every use is audited, honoured or refused (with the reason)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from tenants import audit
from tenants.models import FileGrant, Practice

# A link's id: 32 random bytes, URL-safe base64 (43 characters).
LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PRACTICE_KEY_RE = re.compile(r"^practices/(?P<slug>[a-z][a-z0-9_]{1,40})/")

# Why a use was refused, as recorded in its audit entry.
NO_SUCH_LINK = "no such link"
EXPIRED = "expired"
NOT_SIGNED_IN = "not signed in"
OTHER_USER = "another user"
OTHER_CREDENTIAL = "another session or token of the user"


@dataclass(frozen=True)
class Credential:
    """Who authenticated a request: the user and which of their credentials (a token or session), e.g. 'token:42'."""

    user_id: int
    credential: str


@dataclass(frozen=True)
class Granted:
    storage_key: str
    download_name: str | None


class LinkRefused(Exception):
    """The link is not honoured for this request; `reason` is one of the constants above."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"file link refused: {reason}")
        self.reason = reason


def _hash(link_id: str) -> str:
    return hashlib.sha256(link_id.encode()).hexdigest()


def mint(session: Session, who: Credential, storage_key: str, download_name: str | None, *, ttl_seconds: int) -> str:
    """A new link id for this key and name, valid for `who` for `ttl_seconds` (in the caller's transaction)."""
    if ttl_seconds <= 0:
        raise ValueError(f"a file link's lifetime must be positive, got {ttl_seconds}")
    link_id = secrets.token_urlsafe(32)
    match = _PRACTICE_KEY_RE.match(storage_key)
    practice_id = session.scalar(select(Practice.id).where(Practice.slug == match["slug"])) if match else None
    session.execute(
        insert(FileGrant).values(
            id_hash=_hash(link_id),
            storage_key=storage_key,
            download_name=download_name,
            user_id=who.user_id,
            credential=who.credential,
            practice_id=practice_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
    )
    return link_id


def redeem(session: Session, link_id: str, who: Credential | None, *, ip: str | None = None) -> Granted:
    """What the link opens, for this caller now; LinkRefused otherwise. Either way the use is audited in the caller's
    transaction (the caller commits, also when refused)."""
    grant = None
    if LINK_ID_RE.match(link_id or ""):
        grant = session.scalar(select(FileGrant).where(FileGrant.id_hash == _hash(link_id)).with_for_update())
    reason = _refusal(grant, who)
    user_id = who.user_id if who is not None else None
    detail: dict = {"link": _hash(link_id or "")[:16]}
    if grant is not None:
        detail |= {"storage_key": grant.storage_key, "download_name": grant.download_name,
                   "granted_to": grant.user_id}  # fmt: skip
    if reason is not None:
        audit.record(
            session,
            user_id=user_id,
            practice_id=grant.practice_id if grant is not None else None,
            object_type="file_link",
            object_id=None,
            action="download_refused",
            detail=detail | {"reason": reason},
            ip=ip,
        )
        raise LinkRefused(reason)
    assert grant is not None  # _refusal refuses a missing grant
    if grant.used_at is None:
        session.execute(update(FileGrant).where(FileGrant.id_hash == grant.id_hash).values(used_at=datetime.now(UTC)))
    audit.record(
        session,
        user_id=user_id,
        practice_id=grant.practice_id,
        object_type="file_link",
        object_id=None,
        action="download",
        detail=detail,
        ip=ip,
    )
    return Granted(grant.storage_key, grant.download_name)


def _refusal(grant: FileGrant | None, who: Credential | None) -> str | None:
    if grant is None:
        return NO_SUCH_LINK
    if grant.expires_at <= datetime.now(UTC):
        return EXPIRED
    if who is None:
        return NOT_SIGNED_IN
    if who.user_id != grant.user_id:
        return OTHER_USER
    if who.credential != grant.credential:
        return OTHER_CREDENTIAL
    return None


def purge_expired(session: Session, *, older_than: timedelta = timedelta(days=1)) -> int:
    """Drop grants that expired more than `older_than` ago (their uses stay in the audit log)."""
    cutoff = datetime.now(UTC) - older_than
    return session.execute(delete(FileGrant).where(FileGrant.expires_at < cutoff)).rowcount
