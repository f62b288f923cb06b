"""Quarantine of fetched files that belong to no practice of the company, EDI intake jobs: `edi_quarantine` holds
transaction sets whose envelope names none of the receiving company's practices (for the operator only), and
`edi_intakes` records each uploaded file and the outcome of the job that reads it.

Revision ID: s0009
Revises: s0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "s0009"
down_revision = "s0008"
branch_labels = None
depends_on = None


def _jsonb(name: str) -> sa.Column:
    return sa.Column(
        name, postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "edi_quarantine",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("receiver_id", sa.String(length=80), server_default="", nullable=False),
        sa.Column("sender_id", sa.String(length=80), server_default="", nullable=False),
        sa.Column("payee_npi", sa.String(length=80), nullable=True),
        sa.Column("payee_tax_id", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        _jsonb("detail"),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="held", nullable=False),
        sa.Column("released_to_company_id", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        _jsonb("result"),
        sa.CheckConstraint("kind IN ('999', '277CA', '835')", name=op.f("ck_edi_quarantine_kind")),
        sa.CheckConstraint("status IN ('held', 'released', 'dropped')", name=op.f("ck_edi_quarantine_status")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_edi_quarantine_company_id_billing_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["released_to_company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_edi_quarantine_released_to_company_id_billing_companies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edi_quarantine")),
        sa.UniqueConstraint("company_id", "content_key", name=op.f("uq_edi_quarantine_company_id_content_key")),
        schema="shared",
    )
    op.create_table(
        "edi_intakes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("file_name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="queued", nullable=False),
        sa.Column("job_id", sa.Text(), nullable=True),
        _jsonb("report"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'refused')", name=op.f("ck_edi_intakes_status")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_edi_intakes_company_id_billing_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_edi_intakes_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edi_intakes")),
        schema="shared",
    )
    op.create_index(op.f("ix_edi_intakes_company_id"), "edi_intakes", ["company_id"], schema="shared")


def downgrade() -> None:
    op.drop_index(op.f("ix_edi_intakes_company_id"), table_name="edi_intakes", schema="shared")
    op.drop_table("edi_intakes", schema="shared")
    op.drop_table("edi_quarantine", schema="shared")
