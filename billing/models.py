"""Tables that live in every practice schema (placed there by schema_translate_map)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.orm import TenantBase, utcnow_column


class Patient(TenantBase):
    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint("sex IN ('F', 'M', 'U')", name="sex"),
        Index("ix_patients_name", "last_name", "first_name"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The practice's own account number (MRN): what billers and the practice system call the patient.
    account_number: Mapped[str] = mapped_column(String(30), unique=True)
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    middle_name: Mapped[str] = mapped_column(String(60), server_default="")
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    address_line1: Mapped[str] = mapped_column(String(55))
    address_line2: Mapped[str] = mapped_column(String(55), server_default="")
    city: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(9))
    # Contact details are often unknown at registration.
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class AgencyPlacement(TenantBase):
    """A patient account placed with a collection agency; agency users see only what is placed with them."""

    __tablename__ = "agency_placements"
    __table_args__ = (
        Index(
            "uq_agency_placements_open",
            "patient_id",
            unique=True,
            postgresql_where=text("recalled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # shared.collection_agencies.id; no cross-schema foreign key, so a practice schema stays self-contained
    # (movable to another node when schemas are distributed).
    agency_id: Mapped[int] = mapped_column(BigInteger, index=True)
    placed_at: Mapped[datetime] = utcnow_column()
    # Null while the account is with the agency.
    recalled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PatientImport(TenantBase):
    """A CSV of patients uploaded for registration in bulk; one row per file content (sha256)."""

    __tablename__ = "patient_imports"
    __table_args__ = (CheckConstraint("status IN ('queued', 'done', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_created: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_existing: Mapped[int] = mapped_column(Integer, server_default="0")
    # Row-level problems of a rejected file: {"row 3": ["date_of_birth: ..."]}.
    errors: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    job_id: Mapped[str | None] = mapped_column(Text)
