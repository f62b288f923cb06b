"""Job catalogue and stored 835 sets, shared part (reserved for: job catalogue); a no-op until it is filled in.

Revision ID: s0011
Revises: s0010
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0011"
down_revision = "s0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
