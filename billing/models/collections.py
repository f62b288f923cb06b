"""Tables of collections: placement rules and candidates, agency file formats, export files, agency reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.money import MoneyColumn
from tenants.orm import TenantBase, utcnow_column

__all__ = [
    "AgencyExport",
    "AgencyExportItem",
    "AgencyPaymentReport",
    "AgencyTerms",
    "AgencyUpdateItem",
    "CollectionRules",
    "PlacementDetail",
    "PlacementReview",
]


class CollectionRules(TenantBase):
    """Which accounts the practice turns over to collections. One row; defaults apply while there is none."""

    __tablename__ = "collection_rules"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("min_age_days >= 0 AND min_statements >= 0 AND min_balance >= 0", name="bounds"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    # The oldest date of service with a patient balance must be at least this many days ago.
    min_age_days: Mapped[int] = mapped_column(Integer, server_default="120")
    min_statements: Mapped[int] = mapped_column(Integer, server_default="3")
    min_balance: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="25.00")
    exclude_payment_plans: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # A skipped candidate stays off the list this long (unless the biller names another date).
    skip_days: Mapped[int] = mapped_column(Integer, server_default="30")
    updated_at: Mapped[datetime] = utcnow_column()
    updated_by_user_id: Mapped[int | None] = mapped_column(BigInteger)


class AgencyTerms(TenantBase):
    """What this practice agreed with an agency: its file format, its fee, and optional SFTP delivery."""

    __tablename__ = "agency_terms"
    __table_args__ = (CheckConstraint("fee_percent >= 0 AND fee_percent <= 100", name="fee_percent"),)

    agency_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # shared.collection_agencies.id
    # A billing.agency_formats format (validated when configured); null: the agency's default, else ours.
    file_format: Mapped[dict | None] = mapped_column(JSONB)
    # The format of the payment files the agency sends back (purpose "report"); null: the agency's default, else ours.
    report_format: Mapped[dict | None] = mapped_column(JSONB)
    fee_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    # {"host", "port", "username", "password_env" | "private_key_env", "host_key_sha256", "directory"}; no secrets.
    sftp: Mapped[dict | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = utcnow_column()
    updated_by_user_id: Mapped[int | None] = mapped_column(BigInteger)


class PlacementReview(TenantBase):
    """A biller's decision on a collection candidate: approved (placed with an agency) or skipped, with a reason."""

    __tablename__ = "placement_reviews"
    __table_args__ = (
        CheckConstraint("decision IN ('approved', 'skipped')", name="decision"),
        CheckConstraint("decision = 'skipped' OR placement_id IS NOT NULL", name="approved_placement"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    agency_id: Mapped[int | None] = mapped_column(BigInteger)
    placement_id: Mapped[int | None] = mapped_column(ForeignKey("agency_placements.id"))
    patient_balance: Mapped[Decimal] = mapped_column(MoneyColumn)
    # A skip holds until this date; then the account is a candidate again if it still qualifies.
    skip_until: Mapped[date | None] = mapped_column(Date)
    decided_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    decided_at: Mapped[datetime] = utcnow_column()


class PlacementDetail(TenantBase):
    """What a placement was (balance placed, by whom) and how it ended (recall: by whom, why)."""

    __tablename__ = "placement_details"
    __table_args__ = (CheckConstraint("recalled_by IN ('practice', 'agency')", name="recalled_by"),)

    placement_id: Mapped[int] = mapped_column(ForeignKey("agency_placements.id"), primary_key=True)
    balance_placed: Mapped[Decimal] = mapped_column(MoneyColumn)
    oldest_service_date: Mapped[date | None] = mapped_column(Date)
    placed_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    recalled_by: Mapped[str | None] = mapped_column(String(10))
    recall_reason: Mapped[str] = mapped_column(Text, server_default="")
    recalled_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    # What the agency was last told the patient owes (placement or update file), and whether it was told of the
    # recall: an updates file carries only what changed since.
    sent_balance: Mapped[Decimal | None] = mapped_column(MoneyColumn)
    recall_sent: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class AgencyExport(TenantBase):
    """A file written for one agency in its format and kept in storage: newly placed accounts (`placements`), or
    what changed on accounts sent before (`updates`: balances, recalls)."""

    __tablename__ = "agency_exports"
    __table_args__ = (CheckConstraint("kind IN ('placements', 'updates')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    agency_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(20), server_default="placements")
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    file_type: Mapped[str] = mapped_column(String(10))  # csv | fixed
    row_count: Mapped[int] = mapped_column(Integer)
    account_count: Mapped[int] = mapped_column(Integer)
    total_placed: Mapped[Decimal] = mapped_column(MoneyColumn)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = utcnow_column()
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    delivered_sftp_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivery_error: Mapped[str] = mapped_column(Text, server_default="")


class AgencyExportItem(TenantBase):
    """A placement written to an export: each placement goes out once, however often the export job runs."""

    __tablename__ = "agency_export_items"

    placement_id: Mapped[int] = mapped_column(ForeignKey("agency_placements.id"), primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("agency_exports.id"), index=True)


class AgencyUpdateItem(TenantBase):
    """An account carried by an updates file: its new balance, or its recall."""

    __tablename__ = "agency_update_items"
    __table_args__ = (CheckConstraint("update_type IN ('balance', 'recalled')", name="update_type"),)

    export_id: Mapped[int] = mapped_column(ForeignKey("agency_exports.id"), primary_key=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("agency_placements.id"), primary_key=True, index=True)
    update_type: Mapped[str] = mapped_column(String(10))
    balance: Mapped[Decimal] = mapped_column(MoneyColumn)


class AgencyPaymentReport(TenantBase):
    """A payment an agency collected on a placed account: posted to the ledger as a patient payment of the gross;
    the agency's fee (its percent at the time) and the net the practice receives are kept here."""

    __tablename__ = "agency_payment_reports"
    __table_args__ = (
        UniqueConstraint("agency_id", "reference"),
        CheckConstraint("gross > 0 AND fee >= 0 AND net = gross - fee", name="amounts"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("agency_placements.id"), index=True)
    agency_id: Mapped[int] = mapped_column(BigInteger)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # The agency's own receipt reference: the same payment reported twice is recognised by it.
    reference: Mapped[str] = mapped_column(String(100))
    received_on: Mapped[date] = mapped_column(Date)
    gross: Mapped[Decimal] = mapped_column(MoneyColumn)
    fee_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    fee: Mapped[Decimal] = mapped_column(MoneyColumn)
    net: Mapped[Decimal] = mapped_column(MoneyColumn)
    reported_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
