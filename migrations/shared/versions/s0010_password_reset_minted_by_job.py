"""Password reset links made by the mail job (filled in from the slot reserved for: tenant boundary): a reset request
is stored without a token (`token_hash` null) and the job that sends the mail mints the link and stores its hash, so
the link never travels in the job's arguments (kept in Redis in clear).

Revision ID: s0010
Revises: s0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "s0010"
down_revision = "s0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("password_resets", "token_hash", existing_type=sa.String(length=64), nullable=True,
                    schema="shared")  # fmt: skip


def downgrade() -> None:
    # A request whose mail was never sent has no link to keep.
    op.execute("DELETE FROM shared.password_resets WHERE token_hash IS NULL")
    op.alter_column("password_resets", "token_hash", existing_type=sa.String(length=64), nullable=False,
                    schema="shared")  # fmt: skip
