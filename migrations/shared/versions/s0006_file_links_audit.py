"""File links bound to their user: one grant row per link (shared.file_grants); the company audit view's reads by
time (an index on audit_log.at).

Revision ID: s0006
Revises: s0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "s0006"
down_revision = "s0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_grants",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("download_name", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("credential", sa.String(length=64), nullable=False),
        sa.Column("practice_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_file_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["shared.practices.id"],
            name=op.f("fk_file_grants_practice_id_practices"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_file_grants")),
        schema="shared",
    )
    op.create_index(op.f("ix_file_grants_expires_at"), "file_grants", ["expires_at"], schema="shared")
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], schema="shared")


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log", schema="shared")
    op.drop_index(op.f("ix_file_grants_expires_at"), table_name="file_grants", schema="shared")
    op.drop_table("file_grants", schema="shared")
