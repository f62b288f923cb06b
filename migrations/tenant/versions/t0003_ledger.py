"""The append-only ledger of claim lines.

Revision ID: t0003
Revises: t0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_line_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("insurance_delta", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("patient_delta", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("group_code", sa.String(length=2), server_default="", nullable=False),
        sa.Column("reason_code", sa.String(length=5), server_default="", nullable=False),
        sa.Column("reverses_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("source_type", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=100), server_default="", nullable=False),
        sa.Column("posting_key", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind IN ('charge', 'insurance_payment', 'contractual_adjustment', 'other_adjustment', "
            "'patient_responsibility', 'transfer_to_secondary', 'patient_payment', 'write_off', 'refund', 'reversal')",
            name=op.f("ck_ledger_entries_kind"),
        ),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_ledger_entries_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["claim_line_id"], ["claim_lines.id"], name=op.f("fk_ledger_entries_claim_line_id_claim_lines")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_ledger_entries_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("posting_key", name=op.f("uq_ledger_entries_posting_key")),
        sa.UniqueConstraint("reverses_entry_id", name=op.f("uq_ledger_entries_reverses_entry_id")),
    )
    op.create_index("ix_ledger_entries_claim", "ledger_entries", ["claim_id"], unique=False)
    op.create_index(op.f("ix_ledger_entries_claim_line_id"), "ledger_entries", ["claim_line_id"], unique=False)
    op.create_index("ix_ledger_entries_patient", "ledger_entries", ["patient_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_patient", table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_claim_line_id"), table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_claim", table_name="ledger_entries")
    op.drop_table("ledger_entries")
