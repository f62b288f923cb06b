"""EDI intake in jobs (reserved for: EDI intake; a no-op until it is filled in).

Revision ID: t0012
Revises: t0011
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "t0012"
down_revision = "t0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
