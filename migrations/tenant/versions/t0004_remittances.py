"""Remittances: deposits (one per 835 transaction set), their PLB pairs, and what became of each CLP.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deposits",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("inbound_file_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_name", sa.String(length=60), server_default="", nullable=False),
        sa.Column("payer_id", sa.String(length=80), server_default="", nullable=False),
        sa.Column("payer_identifier", sa.String(length=50), server_default="", nullable=False),
        sa.Column("payment_method", sa.String(length=10), nullable=False),
        sa.Column("handling_code", sa.String(length=2), server_default="", nullable=False),
        sa.Column("trace_number", sa.String(length=50), nullable=False),
        sa.Column("payment_date", sa.Date(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("payee_npi", sa.String(length=80), nullable=True),
        sa.Column("payee_tax_id", sa.String(length=80), nullable=True),
        sa.Column("storage_key", sa.String(length=500), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_file_id"], ["inbound_files.id"], name=op.f("fk_deposits_inbound_file_id_inbound_files")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
        sa.UniqueConstraint(
            "payer_identifier",
            "trace_number",
            "inbound_file_id",
            name=op.f("uq_deposits_payer_identifier_trace_number_inbound_file_id"),
        ),
    )
    op.create_index(op.f("ix_deposits_inbound_file_id"), "deposits", ["inbound_file_id"], unique=False)
    op.create_table(
        "provider_adjustments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("deposit_id", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=5), nullable=False),
        sa.Column("reference", sa.String(length=50), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("fiscal_period_date", sa.Date(), nullable=True),
        sa.Column("claim_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_provider_adjustments_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["deposit_id"], ["deposits.id"], name=op.f("fk_provider_adjustments_deposit_id_deposits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_adjustments")),
    )
    op.create_index(op.f("ix_provider_adjustments_claim_id"), "provider_adjustments", ["claim_id"], unique=False)
    op.create_index(op.f("ix_provider_adjustments_deposit_id"), "provider_adjustments", ["deposit_id"], unique=False)
    op.create_table(
        "remittance_claims",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("deposit_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=True),
        sa.Column("patient_control_number", sa.String(length=38), nullable=False),
        sa.Column("status_code", sa.String(length=2), nullable=False),
        sa.Column("charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("paid", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("patient_responsibility", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("payer_claim_number", sa.String(length=50), server_default="", nullable=False),
        sa.Column("segment_position", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("exception_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('posted', 'exception', 'reversal', 'duplicate')", name=op.f("ck_remittance_claims_outcome")
        ),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_remittance_claims_claim_id_claims")),
        sa.ForeignKeyConstraint(["deposit_id"], ["deposits.id"], name=op.f("fk_remittance_claims_deposit_id_deposits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remittance_claims")),
    )
    op.create_index(op.f("ix_remittance_claims_claim_id"), "remittance_claims", ["claim_id"], unique=False)
    op.create_index(op.f("ix_remittance_claims_deposit_id"), "remittance_claims", ["deposit_id"], unique=False)
    op.create_index("ix_remittance_claims_outcome", "remittance_claims", ["outcome"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_remittance_claims_outcome", table_name="remittance_claims")
    op.drop_index(op.f("ix_remittance_claims_deposit_id"), table_name="remittance_claims")
    op.drop_index(op.f("ix_remittance_claims_claim_id"), table_name="remittance_claims")
    op.drop_table("remittance_claims")
    op.drop_index(op.f("ix_provider_adjustments_deposit_id"), table_name="provider_adjustments")
    op.drop_index(op.f("ix_provider_adjustments_claim_id"), table_name="provider_adjustments")
    op.drop_table("provider_adjustments")
    op.drop_index(op.f("ix_deposits_inbound_file_id"), table_name="deposits")
    op.drop_table("deposits")
