"""Payers curated at platform level or scoped to a company: shared.payers.company_id (NULL = a platform entry every
company sees, added by the operator; otherwise the company that added it, and only it sees it). Entries that exist
already were added by company administrators without a record of which company: they stay platform entries (every
company may already bill them), and new ones are scoped. A payer id is unique among platform entries and within a
company.

Revision ID: s0008
Revises: s0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "s0008"
down_revision = "s0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payers", sa.Column("company_id", sa.BigInteger(), nullable=True), schema="shared")
    op.create_foreign_key(
        op.f("fk_payers_company_id_billing_companies"), "payers", "billing_companies", ["company_id"], ["id"],
        source_schema="shared", referent_schema="shared",
    )  # fmt: skip
    op.drop_constraint(op.f("uq_payers_payer_id"), "payers", schema="shared", type_="unique")
    op.create_index(
        "uq_payers_platform_payer_id", "payers", ["payer_id"], unique=True, schema="shared",
        postgresql_where=sa.text("company_id IS NULL"),
    )  # fmt: skip
    op.create_index(
        "uq_payers_company_payer_id", "payers", ["company_id", "payer_id"], unique=True, schema="shared",
        postgresql_where=sa.text("company_id IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_payers_company_payer_id", "payers", schema="shared")
    op.drop_index("uq_payers_platform_payer_id", "payers", schema="shared")
    op.create_unique_constraint(op.f("uq_payers_payer_id"), "payers", ["payer_id"], schema="shared")
    op.drop_constraint(op.f("fk_payers_company_id_billing_companies"), "payers", schema="shared", type_="foreignkey")
    op.drop_column("payers", "company_id", schema="shared")
