"""One-time form tokens and duplicate-payment flags (reserved for: double submits; a no-op until it is filled in).

Revision ID: t0011
Revises: t0010
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "t0011"
down_revision = "t0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
