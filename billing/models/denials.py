"""Tables of denial work and appeals: work items, notes, appeal letters and their templates, follow-up."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.money import MoneyColumn
from tenants.orm import TenantBase, utcnow_column

__all__ = ["Appeal", "AppealTemplate", "DenialItem", "DenialNote", "FollowUpItem", "FollowUpRule"]


class Appeal(TenantBase):
    """An appeal letter sent to the payer for a claim: the rendered letter (text and PDF in storage), the payer's
    deadline (denial date + the enrolment's appeal window) and, once the payer answers, the outcome."""

    __tablename__ = "appeals"
    __table_args__ = (
        CheckConstraint(
            "family IN ('medical_necessity', 'timely_filing', 'coding', 'authorization', 'underpayment')",
            name="family",
        ),
        CheckConstraint("outcome IS NULL OR outcome IN ('upheld', 'overturned')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    family: Mapped[str] = mapped_column(String(30))
    argument: Mapped[str] = mapped_column(Text)
    # The letter as rendered (what the PDF says), kept with the claim so it stays readable without storage.
    letter_text: Mapped[str] = mapped_column(Text)
    # "default" or "practice": which template wrote the letter.
    template_source: Mapped[str] = mapped_column(String(10))
    storage_key: Mapped[str] = mapped_column(String(500), server_default="")
    filename: Mapped[str] = mapped_column(String(200), server_default="")
    denial_date: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(String(12))
    outcome_note: Mapped[str] = mapped_column(Text, server_default="")
    outcome_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()


class DenialItem(TenantBase):
    """One denied (or underpaid) claim line in the denial work queue and where its work stands. Items are derived from
    what posting recorded (the ledger's CARC codes per remittance, the underpayment queue) by billing.denials.sync,
    keyed by `source_key` so deriving again adds nothing."""

    __tablename__ = "denial_items"
    __table_args__ = (
        CheckConstraint("kind IN ('denial', 'underpayment')", name="kind"),
        CheckConstraint("status IN ('open', 'appealed', 'closed')", name="status"),
        CheckConstraint(
            "action IS NULL OR action IN ('corrected', 'voided', 'written_off', 'billed_patient', "
            "'appeal_overturned', 'paid', 'resolved', 'superseded')",
            name="action",
        ),
        Index("ix_denial_items_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # "denial:<remittance claim id>:<claim line id>" or "underpayment:<underpayment id>".
    source_key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    claim_line_id: Mapped[int] = mapped_column(ForeignKey("claim_lines.id"))
    payer_id: Mapped[int] = mapped_column(BigInteger)  # shared.payers.id
    deposit_id: Mapped[int] = mapped_column(ForeignKey("deposits.id"))
    remittance_claim_id: Mapped[int | None] = mapped_column(ForeignKey("remittance_claims.id"))
    underpayment_id: Mapped[int | None] = mapped_column(ForeignKey("underpayments.id"))
    # "CO-50", "PI-204" ...: the CARC codes the payer gave (in words through billing.adjustment_codes).
    reason_codes: Mapped[list[str]] = mapped_column(ARRAY(String(8)), server_default="{}")
    charge: Mapped[Decimal] = mapped_column(MoneyColumn)
    # What is in dispute: the denied amount, or the shortfall against the contract.
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    expected_allowed: Mapped[Decimal | None] = mapped_column(MoneyColumn)
    denial_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    assigned_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id"), index=True)
    action: Mapped[str | None] = mapped_column(String(20))
    # What the closing action did: the correction's claim id, ledger entry ids, the write-off reason...
    action_detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()


class DenialNote(TenantBase):
    """A biller's note on a work item. Append-only."""

    __tablename__ = "denial_notes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("denial_items.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()


class AppealTemplate(TenantBase):
    """The practice's own wording of an appeal letter for one reason family; without a row the project's template
    (billing/data/appeal_templates/<family>.txt) applies."""

    __tablename__ = "appeal_templates"
    __table_args__ = (
        CheckConstraint(
            "family IN ('medical_necessity', 'timely_filing', 'coding', 'authorization', 'underpayment')",
            name="family",
        ),
    )

    family: Mapped[str] = mapped_column(String(30), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = utcnow_column()


class FollowUpRule(TenantBase):
    """After how many days without a 277CA or 835 a claim to this payer needs a follow-up (default 30), set on the
    practice's enrolment with the payer."""

    __tablename__ = "follow_up_rules"
    __table_args__ = (CheckConstraint("days BETWEEN 1 AND 365", name="days"),)

    payer_id: Mapped[int] = mapped_column(
        ForeignKey("practice_payers.payer_id", ondelete="CASCADE"), primary_key=True
    )  # shared.payers.id, through the enrolment
    days: Mapped[int] = mapped_column(Integer)


class FollowUpItem(TenantBase):
    """A submitted claim the payer has not answered (no 277CA, no 835) within the payer's follow-up days. One row per
    claim and submission: the daily job adds it once, and it stays resolved once a response arrives or a biller
    closes it (until the claim is submitted again)."""

    __tablename__ = "follow_up_items"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        CheckConstraint("resolution IS NULL OR resolution IN ('response', 'closed')", name="resolution"),
        UniqueConstraint("claim_id", "submitted_at"),
        Index("ix_follow_up_items_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    payer_id: Mapped[int] = mapped_column(BigInteger)  # shared.payers.id
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    days: Mapped[int] = mapped_column(Integer)  # the payer's follow-up days when the item was added
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    resolution: Mapped[str | None] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = utcnow_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
