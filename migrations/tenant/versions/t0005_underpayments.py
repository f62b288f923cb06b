"""Underpayments: lines paid short of the contract beyond a tolerance, and the tolerance per payer enrolment.

Revision ID: t0005
Revises: t0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "t0005"
down_revision = "t0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "underpayment_tolerances",
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), server_default="1.00", nullable=False),
        sa.Column("percent", sa.Numeric(precision=6, scale=3), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(
            ["payer_id"],
            ["practice_payers.payer_id"],
            name=op.f("fk_underpayment_tolerances_payer_id_practice_payers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payer_id", name=op.f("pk_underpayment_tolerances")),
    )
    op.create_table(
        "underpayments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_line_id", sa.BigInteger(), nullable=False),
        sa.Column("deposit_id", sa.BigInteger(), nullable=False),
        sa.Column("remittance_claim_id", sa.BigInteger(), nullable=True),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("procedure_code", sa.String(length=5), nullable=False),
        sa.Column("expected_allowed", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("paid", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("patient_responsibility", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("shortfall", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("tolerance", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_underpayments_status")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_underpayments_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["claim_line_id"], ["claim_lines.id"], name=op.f("fk_underpayments_claim_line_id_claim_lines")
        ),
        sa.ForeignKeyConstraint(["deposit_id"], ["deposits.id"], name=op.f("fk_underpayments_deposit_id_deposits")),
        sa.ForeignKeyConstraint(
            ["remittance_claim_id"],
            ["remittance_claims.id"],
            name=op.f("fk_underpayments_remittance_claim_id_remittance_claims"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_underpayments")),
        sa.UniqueConstraint("claim_line_id", "deposit_id", name=op.f("uq_underpayments_claim_line_id_deposit_id")),
    )
    op.create_index(op.f("ix_underpayments_claim_id"), "underpayments", ["claim_id"], unique=False)
    op.create_index(op.f("ix_underpayments_deposit_id"), "underpayments", ["deposit_id"], unique=False)
    op.create_index("ix_underpayments_status", "underpayments", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_underpayments_status", table_name="underpayments")
    op.drop_index(op.f("ix_underpayments_deposit_id"), table_name="underpayments")
    op.drop_index(op.f("ix_underpayments_claim_id"), table_name="underpayments")
    op.drop_table("underpayments")
    op.drop_table("underpayment_tolerances")
