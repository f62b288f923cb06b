"""Identities unique across companies (reserved for: tenant boundary); a no-op until it is filled in.

Revision ID: s0010
Revises: s0009
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0010"
down_revision = "s0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
