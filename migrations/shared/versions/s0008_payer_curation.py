"""Payers curated at platform level or scoped to a company (reserved for: payer list curation; a no-op until it is filled in).

Revision ID: s0008
Revises: s0007
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0008"
down_revision = "s0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
