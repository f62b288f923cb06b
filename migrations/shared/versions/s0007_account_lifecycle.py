"""Portal sessions, password resets, service accounts (reserved for: account lifecycle; a no-op until it is filled in).

Revision ID: s0007
Revises: s0006
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0007"
down_revision = "s0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
