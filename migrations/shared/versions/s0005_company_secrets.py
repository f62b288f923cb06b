"""Per-company encrypted credentials (tenants.secrets): the store SFTP transports name their password or key from.

Transports saved before this revision may still name environment variables (``password_env``) or hold a raw
``password``: they are not migrated (a shared revision does not rewrite tenant schemas, and the master key is not
available to migrations); billing.connections refuses them at connect time with an error that says what to set.

Revision ID: s0005
Revises: s0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "s0005"
down_revision = "s0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "company_secrets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'", name=op.f("ck_company_secrets_name")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_company_secrets_company_id_billing_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["shared.users.id"], name=op.f("fk_company_secrets_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["shared.users.id"], name=op.f("fk_company_secrets_updated_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company_secrets")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_company_secrets_company_id_name")),
        schema="shared",
    )


def downgrade() -> None:
    op.drop_table("company_secrets", schema="shared")
