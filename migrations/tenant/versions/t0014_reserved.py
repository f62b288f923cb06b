"""Billing rules (reserved for: one rule per concept); a no-op until it is filled in.

Revision ID: t0014
Revises: t0013
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "t0014"
down_revision = "t0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
