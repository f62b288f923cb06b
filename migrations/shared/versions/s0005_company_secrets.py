"""Per-company encrypted credentials and outbound endpoints (reserved for: tenant secrets and endpoints; a no-op until it is filled in).

Revision ID: s0005
Revises: s0004
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401

revision = "s0005"
down_revision = "s0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
