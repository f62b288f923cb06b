"""Shared-schema registry: billing companies, practices, users, memberships, API tokens, collection agencies,
and the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tenants.orm import SharedBase, utcnow_column

ROLES = ("company_admin", "biller", "doctor", "agency")
PRACTICE_STATUSES = ("active", "suspended", "archived")


class BillingCompany(SharedBase):
    __tablename__ = "billing_companies"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(41), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = utcnow_column()


class Practice(SharedBase):
    __tablename__ = "practices"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended', 'archived')", name="status"),
        CheckConstraint("schema_name = 'practice_' || slug", name="schema_name"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("billing_companies.id"), index=True)
    slug: Mapped[str] = mapped_column(String(41), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    settings: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = utcnow_column()

    company: Mapped[BillingCompany] = relationship(lazy="joined")


class User(SharedBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Stored lowercased so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    # A service account (an integration, created by a company admin) has no usable password: it only holds API
    # tokens, and sign-in and password reset refuse it.
    is_service_account: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = utcnow_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="selectin")


class CollectionAgency(SharedBase):
    __tablename__ = "collection_agencies"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(41), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = utcnow_column()


class AgencyPractice(SharedBase):
    """Which practices an agency takes placements from."""

    __tablename__ = "agency_practices"

    agency_id: Mapped[int] = mapped_column(ForeignKey("collection_agencies.id", ondelete="CASCADE"), primary_key=True)
    practice_id: Mapped[int] = mapped_column(
        ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Membership(SharedBase):
    """A user's role: over a billing company (admin, biller), one practice (doctor) or one agency (agency)."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(
            "(role IN ('company_admin', 'biller') AND company_id IS NOT NULL AND practice_id IS NULL"
            " AND agency_id IS NULL)"
            " OR (role = 'doctor' AND practice_id IS NOT NULL AND company_id IS NULL AND agency_id IS NULL)"
            " OR (role = 'agency' AND agency_id IS NOT NULL AND company_id IS NULL AND practice_id IS NULL)",
            name="role_scope",
        ),
        UniqueConstraint(
            "user_id", "role", "company_id", "practice_id", "agency_id", postgresql_nulls_not_distinct=True
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("billing_companies.id", ondelete="CASCADE"))
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("collection_agencies.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = utcnow_column()

    user: Mapped[User] = relationship(back_populates="memberships")


class ApiToken(SharedBase):
    """Bearer credentials, stored only as a SHA-256 of the secret. `kind`: access (short-lived, from a login),
    api (long-lived, for integrations, created by an admin), portal (a browser session)."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("kind IN ('access', 'api', 'portal')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100), server_default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class PasswordReset(SharedBase):
    """A password reset link sent by mail: stored only as a SHA-256 of its secret, usable once, until expires_at.
    A later reset, a password change or a deactivation voids the user's outstanding ones (used_at set).
    `token_hash` is null until the mail job mints the link (the link is never in a job's arguments)."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ip: Mapped[str | None] = mapped_column(Text)


class CompanySecret(SharedBase):
    """A billing company's stored credential (an SFTP password or private key), encrypted by tenants.secrets:
    envelope encryption bound to the company id and the name, so a ciphertext copied to another row never opens.
    Write-only through the API: names and dates are listed, the value never."""

    __tablename__ = "company_secrets"
    __table_args__ = (
        UniqueConstraint("company_id", "name"),
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'", name="name"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("billing_companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = utcnow_column()
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = utcnow_column()
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class AuditEntry(SharedBase):
    """Who did what to which object of which practice, and when. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_practice_at", "practice_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Indexed for the company audit view, whose entries span practices and users (tenants/audit.py `company_log`).
    at: Mapped[datetime] = utcnow_column(index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="SET NULL"))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    ip: Mapped[str | None] = mapped_column(Text)


class FileGrant(SharedBase):
    """One file link of the web app (local storage's stand-in for a presigned URL): one storage key and download name,
    for one user signed in with one credential, until `expires_at`. A link is valid only while its row exists, so
    the server's secret key alone cannot make one; only the SHA-256 of the link's random id is stored."""

    __tablename__ = "file_grants"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(500))
    download_name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What authenticated the request that asked (api/security.py request_credential), e.g. "token:42".
    credential: Mapped[str] = mapped_column(String(64))
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = utcnow_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UnmatchedEdiSet(SharedBase):
    """A transaction set of an incoming EDI file that names no practice of its billing company (unknown payee NPI or
    tax id, a group control number no practice sent...): the unmatched queue, until a user assigns it to a practice
    of that company. One row per company and set content, so the same file uploaded again adds nothing."""

    __tablename__ = "unmatched_edi_sets"
    __table_args__ = (
        CheckConstraint("kind IN ('999', '277CA', '835')", name="kind"),
        UniqueConstraint("company_id", "content_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("billing_companies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    storage_key: Mapped[str] = mapped_column(String(500))
    content_key: Mapped[str] = mapped_column(String(64))
    sender_id: Mapped[str] = mapped_column(String(80), server_default="")  # ISA06
    payee_npi: Mapped[str | None] = mapped_column(String(80))
    payee_tax_id: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # What identifies the set to a person: control number, trace number, payer, amount, claims.
    detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    received_at: Mapped[datetime] = utcnow_column()
    assigned_practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="SET NULL"))
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[str | None] = mapped_column(Text)


class EdiQuarantine(SharedBase):
    """A transaction set that reached a billing company (its clearinghouse mailbox, an upload, an import) but whose
    envelope names none of its practices (ISA08 receiver not one of its submitter ids, a payee or billing NPI that is
    not one of its practices'): held for the operator, never shown to the company or assignable by it. The operator
    releases it to the company it belongs to (`medbill edi quarantine release`) or drops it. The file itself is kept
    under the operator's own storage prefix (`storage_key`); a fetched file is also left in the mailbox."""

    __tablename__ = "edi_quarantine"
    __table_args__ = (
        CheckConstraint("kind IN ('999', '277CA', '835')", name="kind"),
        CheckConstraint("status IN ('held', 'released', 'dropped')", name="status"),
        UniqueConstraint("company_id", "content_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The company that fetched (or uploaded) the file, not necessarily the one it belongs to.
    company_id: Mapped[int] = mapped_column(ForeignKey("billing_companies.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(10))  # fetch, upload, import
    kind: Mapped[str] = mapped_column(String(10))
    storage_key: Mapped[str] = mapped_column(String(500))
    content_key: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(255), server_default="")
    receiver_id: Mapped[str] = mapped_column(String(80), server_default="")  # ISA08
    sender_id: Mapped[str] = mapped_column(String(80), server_default="")  # ISA06
    payee_npi: Mapped[str | None] = mapped_column(String(80))
    payee_tax_id: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    received_at: Mapped[datetime] = utcnow_column()
    status: Mapped[str] = mapped_column(String(10), server_default="held")
    released_to_company_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_companies.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class EdiIntake(SharedBase):
    """An EDI file uploaded to a billing company, read and routed by a job (`jobs.edi_intake.run_upload`): the
    request only stores and records the file, the job writes the outcome here for the uploader to poll."""

    __tablename__ = "edi_intakes"
    __table_args__ = (CheckConstraint("status IN ('queued', 'running', 'done', 'refused')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("billing_companies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(String(500))
    file_name: Mapped[str] = mapped_column(String(255), server_default="")
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    job_id: Mapped[str | None] = mapped_column(Text)
    # The intake report (applied, queued, duplicates, unmatched, quarantined) once done; the refusal once refused.
    report: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
