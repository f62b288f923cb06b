"""Shared payer master list.

Revision ID: s0002
Revises: s0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payer_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("claim_filing_indicator", sa.String(length=2), nullable=False),
        sa.Column("address_line1", sa.String(length=55), server_default="", nullable=False),
        sa.Column("city", sa.String(length=30), server_default="", nullable=False),
        sa.Column("state", sa.String(length=2), server_default="", nullable=False),
        sa.Column("postal_code", sa.String(length=9), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payers")),
        sa.UniqueConstraint("payer_id", name=op.f("uq_payers_payer_id")),
        schema="shared",
    )


def downgrade() -> None:
    op.drop_table("payers", schema="shared")
