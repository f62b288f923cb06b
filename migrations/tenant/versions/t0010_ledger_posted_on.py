"""The ledger's accounting date (`posted_on`): reports count an entry in the month of the business event that caused
it (the payment date of an 835, the day a claim was billed, the day a patient paid), not of the row's insertion.
Existing entries take the date they were written, or their deposit's payment date when they came from an 835.

Revision ID: t0010
Revises: t0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "t0010"
down_revision = "t0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "ledger_entries", sa.Column("posted_on", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False)
    )
    op.execute("UPDATE ledger_entries SET posted_on = (created_at AT TIME ZONE 'UTC')::date")
    op.execute(
        "UPDATE ledger_entries le SET posted_on = d.payment_date FROM deposits d "
        "WHERE le.source_id = 'deposit:' || d.id AND d.payment_date IS NOT NULL"
    )
    op.create_index("ix_ledger_entries_posted_on", "ledger_entries", ["posted_on"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_posted_on", table_name="ledger_entries")
    op.drop_column("ledger_entries", "posted_on")
