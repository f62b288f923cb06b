"""Quarantine of fetched files that belong to no practice of the company, EDI intake jobs (reserved for: EDI intake; a no-op until it is filled in).

Revision ID: s0009
Revises: s0008
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0009"
down_revision = "s0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
