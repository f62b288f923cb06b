"""Tables of patient billing: statement runs and statements, patient payments and credits, payment plans."""

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
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.money import MoneyColumn
from tenants.orm import TenantBase, utcnow_column

__all__ = [
    "PatientBillingSettings",
    "PatientCredit",
    "PatientPayment",
    "PatientPaymentApplication",
    "PaymentPlan",
    "PaymentPlanInstallment",
    "Statement",
    "StatementRun",
]


class PatientBillingSettings(TenantBase):
    """The practice's rules for patient billing: one row (id 1); without it the defaults of billing.statements apply."""

    __tablename__ = "patient_billing_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("cycle_days BETWEEN 7 AND 120", name="cycle_days"),
        CheckConstraint("minimum_balance >= 0", name="minimum_balance"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    # A statement cycle is `cycle_days` long, counted from `cycle_anchor`: each cycle has at most one run.
    cycle_days: Mapped[int] = mapped_column(Integer, server_default="30")
    cycle_anchor: Mapped[date] = mapped_column(Date, server_default=text("'2026-01-01'"))
    minimum_balance: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="5.00")
    # False: runs only when a biller starts one (the daily scheduler skips the practice).
    scheduled_runs: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Dunning messages by age of the oldest balance: {"0": ..., "30": ..., "60": ..., "90": ..., "120": ...};
    # a missing key falls back to the built-in text.
    messages: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    payment_instructions: Mapped[str] = mapped_column(Text, server_default="")
    # Payment plans: a missed installment gets a reminder after this many days past due, and breaks the plan after
    # `plan_break_days` past due if still unpaid.
    plan_reminder_days: Mapped[int] = mapped_column(Integer, server_default="5")
    plan_break_days: Mapped[int] = mapped_column(Integer, server_default="30")
    updated_at: Mapped[datetime] = utcnow_column()


class StatementRun(TenantBase):
    """One statement run per practice cycle (the unique cycle start makes a second run in the cycle a no-op)."""

    __tablename__ = "statement_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
        CheckConstraint("trigger IN ('schedule', 'user')", name="trigger"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    cycle_start: Mapped[date] = mapped_column(Date, unique=True)
    statement_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), server_default="running")
    trigger: Mapped[str] = mapped_column(String(10))
    started_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    job_id: Mapped[str | None] = mapped_column(Text)
    patients_selected: Mapped[int] = mapped_column(Integer, server_default="0")
    statements_done: Mapped[int] = mapped_column(Integer, server_default="0")
    total_due: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="0")
    # The print vendor's CSV batch of the run, once written.
    batch_storage_key: Mapped[str] = mapped_column(String(500), server_default="")
    error: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Statement(TenantBase):
    """A statement sent to a patient: its PDF in storage and the figures it showed (the patient's history)."""

    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("run_id", "patient_id"),
        Index("ix_statements_patient", "patient_id", "statement_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("statement_runs.id"))
    statement_date: Mapped[date] = mapped_column(Date)
    # What the patient owed on the statement date (the patient part of the ledger on visits insurance is done with).
    patient_balance: Mapped[Decimal] = mapped_column(MoneyColumn)
    # Unapplied credit shown on the statement (normally 0: credits are applied before a run selects patients).
    credit: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="0")
    # Age in days of the oldest balance (by date of service), which picks the dunning message.
    oldest_age_days: Mapped[int] = mapped_column(Integer)
    message_level: Mapped[int] = mapped_column(SmallInteger)  # 0, 30, 60, 90 or 120
    # {"current": "12.00", "31_60": ..., "61_90": ..., "91_120": ..., "over_120": ...}
    aging: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    storage_key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = utcnow_column()


class PatientPayment(TenantBase):
    """Money from (kind payment) or back to (kind refund) a patient, posted to the ledger through its applications.
    A payment's amount not applied to lines is kept as the patient's credit (PatientCredit)."""

    __tablename__ = "patient_payments"
    __table_args__ = (
        CheckConstraint("kind IN ('payment', 'refund')", name="kind"),
        CheckConstraint("method IN ('cash', 'check', 'card', 'eft', 'agency', 'other')", name="method"),
        CheckConstraint("amount > 0", name="amount"),
        Index("ix_patient_payments_patient", "patient_id", "received_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(10))
    method: Mapped[str] = mapped_column(String(10))
    # Check number, card authorisation reference (never a card number), agency remittance id...
    reference: Mapped[str] = mapped_column(String(100), server_default="")
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    received_on: Mapped[date] = mapped_column(Date)
    source_type: Mapped[str] = mapped_column(String(20))  # user, agency, job
    source_id: Mapped[str] = mapped_column(String(100), server_default="")
    # A retried posting finds its key taken and adds nothing.
    posting_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # The refunded payment, for a refund.
    refund_of_payment_id: Mapped[int | None] = mapped_column(ForeignKey("patient_payments.id"))
    note: Mapped[str] = mapped_column(Text, server_default="")
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    applications: Mapped[list[PatientPaymentApplication]] = relationship(
        order_by="PatientPaymentApplication.id", lazy="selectin", viewonly=True
    )


class PatientPaymentApplication(TenantBase):
    """The part of a payment (or refund) posted to one claim line, with the ledger entry that posted it. A payment's
    credit applied later adds applications to the same payment."""

    __tablename__ = "patient_payment_applications"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("patient_payments.id"), index=True)
    claim_line_id: Mapped[int] = mapped_column(ForeignKey("claim_lines.id"), index=True)
    ledger_entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    created_at: Mapped[datetime] = utcnow_column()


class PatientCredit(TenantBase):
    """The patient's credit, append-only: + what a payment brought beyond what was owed, - what was later applied
    to a balance or refunded. The credit is the sum."""

    __tablename__ = "patient_credits"
    __table_args__ = (
        CheckConstraint("reason IN ('overpayment', 'applied', 'refunded')", name="reason"),
        CheckConstraint("amount <> 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("patient_payments.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    reason: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = utcnow_column()


class PaymentPlan(TenantBase):
    """An agreement to pay a balance in installments. While active, the patient gets no statements."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'completed', 'broken', 'cancelled')", name="status"),
        CheckConstraint("frequency IN ('monthly', 'biweekly')", name="frequency"),
        CheckConstraint("total > 0 AND installment_amount > 0 AND installment_amount <= total", name="amounts"),
        # One current plan per patient.
        Index("uq_payment_plans_active", "patient_id", unique=True, postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    total: Mapped[Decimal] = mapped_column(MoneyColumn)
    installment_amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    frequency: Mapped[str] = mapped_column(String(10))
    start_date: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str] = mapped_column(Text, server_default="")

    installments: Mapped[list[PaymentPlanInstallment]] = relationship(
        order_by="PaymentPlanInstallment.number", lazy="selectin", viewonly=True
    )


class PaymentPlanInstallment(TenantBase):
    """One installment of a plan: due on a date, paid by patient payments in order, reminded once if missed."""

    __tablename__ = "payment_plan_installments"
    __table_args__ = (
        UniqueConstraint("plan_id", "number"),
        CheckConstraint("status IN ('due', 'paid', 'missed', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"))
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    paid_amount: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="0")
    status: Mapped[str] = mapped_column(String(10), server_default="due")
    # The day the check found it missed and a reminder was recorded.
    reminded_on: Mapped[date | None] = mapped_column(Date)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
