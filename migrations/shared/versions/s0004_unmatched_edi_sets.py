"""The unmatched queue: EDI transaction sets that name no practice of their billing company, until assigned.

Revision ID: s0004
Revises: s0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

revision = "s0004"
down_revision = "s0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unmatched_edi_sets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("sender_id", sa.String(length=80), server_default="", nullable=False),
        sa.Column("payee_npi", sa.String(length=80), nullable=True),
        sa.Column("payee_tax_id", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("assigned_practice_id", sa.BigInteger(), nullable=True),
        sa.Column("assigned_by", sa.BigInteger(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_id", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('999', '277CA', '835')", name=op.f("ck_unmatched_edi_sets_kind")),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["shared.users.id"],
            name=op.f("fk_unmatched_edi_sets_assigned_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assigned_practice_id"],
            ["shared.practices.id"],
            name=op.f("fk_unmatched_edi_sets_assigned_practice_id_practices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_unmatched_edi_sets_company_id_billing_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmatched_edi_sets")),
        sa.UniqueConstraint("company_id", "content_key", name=op.f("uq_unmatched_edi_sets_company_id_content_key")),
        schema="shared",
    )


def downgrade() -> None:
    op.drop_table("unmatched_edi_sets", schema="shared")
