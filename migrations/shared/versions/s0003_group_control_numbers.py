"""GS06 group control numbers drawn from one sequence, so a 999 (which names only the group) identifies its
practice even when several practices share a submitter id at the clearinghouse.

Revision ID: s0003
Revises: s0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE IF NOT EXISTS shared.group_control_numbers MINVALUE 1 MAXVALUE 999999999 CYCLE")


def downgrade() -> None:
    op.execute("DROP SEQUENCE IF EXISTS shared.group_control_numbers")
