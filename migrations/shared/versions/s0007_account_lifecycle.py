"""Account lifecycle: service accounts, password change and deactivation times, password reset links.

Revision ID: s0007
Revises: s0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "s0007"
down_revision = "s0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("is_service_account", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="shared",
    )
    op.add_column("users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True), schema="shared")
    op.add_column("users", sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True), schema="shared")
    op.create_table(
        "password_resets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_password_resets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
        schema="shared",
    )
    op.create_index(op.f("ix_password_resets_user_id"), "password_resets", ["user_id"], unique=False, schema="shared")


def downgrade() -> None:
    op.drop_index(op.f("ix_password_resets_user_id"), table_name="password_resets", schema="shared")
    op.drop_table("password_resets", schema="shared")
    op.drop_column("users", "deactivated_at", schema="shared")
    op.drop_column("users", "password_changed_at", schema="shared")
    op.drop_column("users", "is_service_account", schema="shared")
