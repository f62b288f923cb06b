"""Patient billing: statements, patient payments and credits, payment plans.

Revision ID: t0008
Revises: t0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0008"
down_revision = "t0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_billing_settings",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("cycle_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("cycle_anchor", sa.Date(), server_default=sa.text("'2026-01-01'"), nullable=False),
        sa.Column("minimum_balance", sa.Numeric(precision=12, scale=2), server_default="5.00", nullable=False),
        sa.Column("scheduled_runs", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "messages", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("payment_instructions", sa.Text(), server_default="", nullable=False),
        sa.Column("plan_reminder_days", sa.Integer(), server_default="5", nullable=False),
        sa.Column("plan_break_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("cycle_days BETWEEN 7 AND 120", name=op.f("ck_patient_billing_settings_cycle_days")),
        sa.CheckConstraint("id = 1", name=op.f("ck_patient_billing_settings_single_row")),
        sa.CheckConstraint("minimum_balance >= 0", name=op.f("ck_patient_billing_settings_minimum_balance")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_billing_settings")),
    )
    op.create_table(
        "statement_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("cycle_start", sa.Date(), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="running", nullable=False),
        sa.Column("trigger", sa.String(length=10), nullable=False),
        sa.Column("started_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("job_id", sa.Text(), nullable=True),
        sa.Column("patients_selected", sa.Integer(), server_default="0", nullable=False),
        sa.Column("statements_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_due", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("batch_storage_key", sa.String(length=500), server_default="", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_statement_runs_status")),
        sa.CheckConstraint("trigger IN ('schedule', 'user')", name=op.f("ck_statement_runs_trigger")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_runs")),
        sa.UniqueConstraint("cycle_start", name=op.f("uq_statement_runs_cycle_start")),
    )
    op.create_table(
        "patient_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("reference", sa.String(length=100), server_default="", nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("source_type", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=100), server_default="", nullable=False),
        sa.Column("posting_key", sa.String(length=200), nullable=True),
        sa.Column("refund_of_payment_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('payment', 'refund')", name=op.f("ck_patient_payments_kind")),
        sa.CheckConstraint(
            "method IN ('cash', 'check', 'card', 'eft', 'agency', 'other')", name=op.f("ck_patient_payments_method")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_patient_payments_amount")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_patient_payments_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["refund_of_payment_id"],
            ["patient_payments.id"],
            name=op.f("fk_patient_payments_refund_of_payment_id_patient_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_payments")),
        sa.UniqueConstraint("posting_key", name=op.f("uq_patient_payments_posting_key")),
    )
    op.create_index("ix_patient_payments_patient", "patient_payments", ["patient_id", "received_on"], unique=False)
    op.create_table(
        "payment_plans",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("installment_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("frequency IN ('monthly', 'biweekly')", name=op.f("ck_payment_plans_frequency")),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'broken', 'cancelled')", name=op.f("ck_payment_plans_status")
        ),
        sa.CheckConstraint(
            "total > 0 AND installment_amount > 0 AND installment_amount <= total",
            name=op.f("ck_payment_plans_amounts"),
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_payment_plans_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plans")),
    )
    op.create_index(op.f("ix_payment_plans_patient_id"), "payment_plans", ["patient_id"], unique=False)
    op.create_index(
        "uq_payment_plans_active",
        "payment_plans",
        ["patient_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("patient_balance", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("credit", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("oldest_age_days", sa.Integer(), nullable=False),
        sa.Column("message_level", sa.SmallInteger(), nullable=False),
        sa.Column(
            "aging", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_statements_patient_id_patients")),
        sa.ForeignKeyConstraint(["run_id"], ["statement_runs.id"], name=op.f("fk_statements_run_id_statement_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
        sa.UniqueConstraint("run_id", "patient_id", name=op.f("uq_statements_run_id_patient_id")),
    )
    op.create_index("ix_statements_patient", "statements", ["patient_id", "statement_date"], unique=False)
    op.create_table(
        "patient_credits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("reason IN ('overpayment', 'applied', 'refunded')", name=op.f("ck_patient_credits_reason")),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_patient_credits_amount")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_patient_credits_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["patient_payments.id"], name=op.f("fk_patient_credits_payment_id_patient_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_credits")),
    )
    op.create_index(op.f("ix_patient_credits_patient_id"), "patient_credits", ["patient_id"], unique=False)
    op.create_index(op.f("ix_patient_credits_payment_id"), "patient_credits", ["payment_id"], unique=False)
    op.create_table(
        "payment_plan_installments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("paid_amount", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=10), server_default="due", nullable=False),
        sa.Column("reminded_on", sa.Date(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('due', 'paid', 'missed', 'cancelled')", name=op.f("ck_payment_plan_installments_status")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["payment_plans.id"], name=op.f("fk_payment_plan_installments_plan_id_payment_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plan_installments")),
        sa.UniqueConstraint("plan_id", "number", name=op.f("uq_payment_plan_installments_plan_id_number")),
    )
    op.create_table(
        "patient_payment_applications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_line_id", sa.BigInteger(), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["claim_line_id"],
            ["claim_lines.id"],
            name=op.f("fk_patient_payment_applications_claim_line_id_claim_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_patient_payment_applications_ledger_entry_id_ledger_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["patient_payments.id"],
            name=op.f("fk_patient_payment_applications_payment_id_patient_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_payment_applications")),
        sa.UniqueConstraint("ledger_entry_id", name=op.f("uq_patient_payment_applications_ledger_entry_id")),
    )
    op.create_index(
        op.f("ix_patient_payment_applications_claim_line_id"),
        "patient_payment_applications",
        ["claim_line_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_patient_payment_applications_payment_id"), "patient_payment_applications", ["payment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_patient_payment_applications_payment_id"), table_name="patient_payment_applications")
    op.drop_index(op.f("ix_patient_payment_applications_claim_line_id"), table_name="patient_payment_applications")
    op.drop_table("patient_payment_applications")
    op.drop_table("payment_plan_installments")
    op.drop_index(op.f("ix_patient_credits_payment_id"), table_name="patient_credits")
    op.drop_index(op.f("ix_patient_credits_patient_id"), table_name="patient_credits")
    op.drop_table("patient_credits")
    op.drop_index("ix_statements_patient", table_name="statements")
    op.drop_table("statements")
    op.drop_index("uq_payment_plans_active", table_name="payment_plans", postgresql_where=sa.text("status = 'active'"))
    op.drop_index(op.f("ix_payment_plans_patient_id"), table_name="payment_plans")
    op.drop_table("payment_plans")
    op.drop_index("ix_patient_payments_patient", table_name="patient_payments")
    op.drop_table("patient_payments")
    op.drop_table("statement_runs")
    op.drop_table("patient_billing_settings")
