"""A billing company's stored credentials: the SFTP passwords and private keys its connections use.

Envelope encryption: every value has its own random 256-bit data key (AES-GCM); the data key is wrapped (AES-GCM
again) by the operator's master key, ``MEDBILL_SECRETS_KEY`` (base64 of 32 bytes; the embedded default keeps a
generated one in its data dir, see ``Settings.ensure_secrets_key``). The company id and the secret's name are the
associated data of both layers, so a ciphertext copied to another company's row (or another name) does not decrypt.

Values are write-only: set, replace, delete and list names with their dates; the only reader is
billing.connections, which asks for a name within the company that owns the connection being opened. Every change
is audited (the name, never the value).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from medbill.config import Settings
from medbill.errors import DomainError, Invalid, NotFound
from tenants import audit
from tenants.authz import Principal
from tenants.models import BillingCompany, CompanySecret

__all__ = [
    "NAME_RULE",
    "SecretBox",
    "SecretsUnavailable",
    "admin_company",
    "delete_secret",
    "exists",
    "list_secrets",
    "lock_secret",
    "put_secret",
    "reveal",
    "validate_name",
]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
NAME_RULE = "1-63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_VALUE_LENGTH = 16 * 1024  # an RSA-4096 private key in PEM is about 3.3 KB
FORMAT = b"MBS1"  # version tag: a later format (another wrapping, a KMS) is told apart by it
NONCE = 12
WRAPPED_KEY = 32 + 16  # data key + GCM tag


class SecretsUnavailable(DomainError):
    """No usable master key: stored credentials can be neither written nor read."""

    status = 503
    code = "secrets_unavailable"


class SecretUnreadable(DomainError):
    """A stored value does not decrypt with this master key for this company and name (moved, altered, or the
    master key changed)."""

    status = 500
    code = "secret_unreadable"


def _aad(company_id: int, name: str) -> bytes:
    return b"medbill company secret\x00" + str(int(company_id)).encode() + b"\x00" + name.encode()


class SecretBox:
    """Seals and opens company secrets with one master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise SecretsUnavailable("MEDBILL_SECRETS_KEY must be the base64 of exactly 32 bytes")
        self._master = AESGCM(master_key)

    def __repr__(self) -> str:
        return "SecretBox(<master key>)"

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        key = settings.ensure_secrets_key().secrets_key
        if not key:
            raise SecretsUnavailable(
                "MEDBILL_SECRETS_KEY is not set: stored credentials cannot be used "
                "(generate one with: python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')"
            )
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SecretsUnavailable("MEDBILL_SECRETS_KEY is not valid base64") from exc
        return cls(raw)

    def seal(self, company_id: int, name: str, value: str) -> bytes:
        aad = _aad(company_id, name)
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce, nonce = os.urandom(NONCE), os.urandom(NONCE)
        wrapped = self._master.encrypt(wrap_nonce, data_key, aad)
        body = AESGCM(data_key).encrypt(nonce, value.encode("utf-8"), aad)
        return FORMAT + wrap_nonce + wrapped + nonce + body

    def open(self, company_id: int, name: str, blob: bytes) -> str:
        blob = bytes(blob)
        unreadable = SecretUnreadable(f"the stored secret {name!r} cannot be decrypted for this company")
        head = len(FORMAT)
        if blob[:head] != FORMAT or len(blob) < head + NONCE + WRAPPED_KEY + NONCE + 16:
            raise unreadable
        aad = _aad(company_id, name)
        wrap_nonce = blob[head : head + NONCE]
        wrapped = blob[head + NONCE : head + NONCE + WRAPPED_KEY]
        rest = blob[head + NONCE + WRAPPED_KEY :]
        try:
            data_key = self._master.decrypt(wrap_nonce, wrapped, aad)
            return AESGCM(data_key).decrypt(rest[:NONCE], rest[NONCE:], aad).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise unreadable from exc


def validate_name(name: object, *, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise Invalid("not a secret name", errors={field: [NAME_RULE]})
    return name


def _validate_value(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("the secret is empty", errors={"value": ["a non-empty string"]})
    if len(value) > MAX_VALUE_LENGTH:
        raise Invalid("the secret is too long", errors={"value": [f"at most {MAX_VALUE_LENGTH} characters"]})
    if "\x00" in value:
        raise Invalid("the secret contains a NUL byte", errors={"value": ["no NUL bytes"]})
    return value


def _audit(session: Session, user_id: int | None, company_id: int, name: str, action: str) -> None:
    audit.record(
        session,
        user_id=user_id,
        practice_id=None,
        object_type="company_secret",
        object_id=f"{company_id}:{name}",
        action=action,
        detail={"company_id": company_id, "name": name},
    )


def _get(session: Session, company_id: int, name: str, *, lock: str | None = None) -> CompanySecret | None:
    query = select(CompanySecret).where(CompanySecret.company_id == company_id, CompanySecret.name == name)
    if lock == "update":
        query = query.with_for_update()
    elif lock == "key share":
        query = query.with_for_update(key_share=True, read=True)
    return session.scalar(query)


def put_secret(
    session: Session, box: SecretBox, company_id: int, name: str, value: str, *, user_id: int | None
) -> tuple[CompanySecret, bool]:
    """Set or replace a secret; returns it and whether it was created. The caller commits."""
    validate_name(name)
    sealed = box.seal(company_id, name, _validate_value(value))
    row = _get(session, company_id, name)
    created = row is None
    if row is None:
        row = CompanySecret(company_id=company_id, name=name, ciphertext=sealed, created_by=user_id, updated_by=user_id)
        session.add(row)
    else:
        row.ciphertext = sealed
        row.updated_by = user_id
        row.updated_at = datetime.now(UTC)
    session.flush()
    _audit(session, user_id, company_id, name, "create" if created else "replace")
    return row, created


def delete_secret(session: Session, company_id: int, name: str, *, user_id: int | None) -> None:
    """Delete the secret, whoever names it: callers go through billing.secret_uses.delete_unused_secret, which
    refuses while a connection still names it."""
    row = _get(session, company_id, validate_name(name))
    if row is None:
        raise NotFound(f"no secret named {name!r} in this company")
    session.delete(row)
    session.flush()
    _audit(session, user_id, company_id, name, "delete")


def list_secrets(session: Session, company_id: int) -> list[CompanySecret]:
    return list(
        session.scalars(
            select(CompanySecret).where(CompanySecret.company_id == company_id).order_by(CompanySecret.name)
        )
    )


def exists(session: Session, company_id: int, name: str, *, hold: bool = False) -> bool:
    """Whether the company has the secret. ``hold``: keep it from being deleted until the caller's transaction
    ends (a connection being saved that names it; billing.secret_uses locks it before looking for users)."""
    return _get(session, company_id, name, lock="key share" if hold else None) is not None


def lock_secret(session: Session, company_id: int, name: str) -> CompanySecret:
    """The secret's row, locked for deletion until the caller's transaction ends; NotFound when there is none."""
    row = _get(session, company_id, validate_name(name), lock="update")
    if row is None:
        raise NotFound(f"no secret named {name!r} in this company")
    return row


def reveal(session: Session, box: SecretBox, company_id: int, name: str) -> str:
    """The value, for opening one of this company's own connections (billing.connections only)."""
    row = _get(session, company_id, name)
    if row is None:
        raise NotFound(f"no secret named {name!r} in this company")
    return box.open(company_id, name, row.ciphertext)


def admin_company(session: Session, principal: Principal, company_slug: str | None) -> BillingCompany:
    """The billing company whose secrets the caller administers: the one they are company admin of, or the one
    `company_slug` names among those. Another company is a 404, like one that does not exist."""
    ids = principal.admin_company_ids
    if company_slug is not None:
        company = session.scalar(select(BillingCompany).where(BillingCompany.slug == company_slug))
        if company is None or company.id not in ids:
            raise NotFound(f"company {company_slug!r} not found")
        return company
    if len(ids) != 1:
        raise Invalid(
            "name the company", errors={"company": ["you administer several companies: pass ?company=<slug>"]}
        )
    return session.get(BillingCompany, ids[0])
