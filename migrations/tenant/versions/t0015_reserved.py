"""Tenant boundary audits (reserved for: tenant boundary); a no-op until it is filled in.

Revision ID: t0015
Revises: t0014
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "t0015"
down_revision = "t0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
