"""File links bound to their user, audit of reads and sign-ins (reserved for: file links and audit; a no-op until it is filled in).

Revision ID: s0006
Revises: s0005
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0006"
down_revision = "s0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
