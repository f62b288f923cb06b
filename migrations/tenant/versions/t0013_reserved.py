"""Stored 835 transaction sets (reserved for: job catalogue); a no-op until it is filled in.

Revision ID: t0013
Revises: t0012
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "t0013"
down_revision = "t0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
