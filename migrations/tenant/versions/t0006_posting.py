"""Posting: ledger entries on the account of a service line (one charge per service, every claim that bills it posts
to it), and the crossover payer a claim was forwarded to.

Existing entries get the service line of their claim line. Charges were keyed per claim line, so a secondary or a
corrected claim charged a service again: the first charge of each service line takes the new per-service key, and
every later charge of the same service line is reversed (append-only: the duplicate stays, cancelled).

Revision ID: t0006
Revises: t0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "t0006"
down_revision = "t0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("claims", sa.Column("crossover_payer_name", sa.String(length=60), nullable=True))
    op.add_column("claims", sa.Column("crossover_payer_id", sa.String(length=80), nullable=True))
    op.add_column("ledger_entries", sa.Column("service_line_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE ledger_entries le SET service_line_id = cl.service_line_id FROM claim_lines cl "
        "WHERE cl.id = le.claim_line_id"
    )
    # Duplicate charges of one service (one per claim that billed it): keep the first, cancel the others.
    op.execute(
        """
        INSERT INTO ledger_entries (service_line_id, claim_line_id, claim_id, patient_id, kind, amount,
                                    insurance_delta, patient_delta, reverses_entry_id, source_type, posting_key, note)
        SELECT le.service_line_id, le.claim_line_id, le.claim_id, le.patient_id, 'reversal', -le.amount,
               -le.insurance_delta, -le.patient_delta, le.id, 'migration', 'charge-duplicate:' || le.id,
               'the service was already charged: one charge per service line (t0006)'
        FROM ledger_entries le
        WHERE le.kind = 'charge'
          AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses_entry_id = le.id)
          AND EXISTS (SELECT 1 FROM ledger_entries f WHERE f.kind = 'charge' AND f.service_line_id = le.service_line_id
                      AND f.id < le.id
                      AND NOT EXISTS (SELECT 1 FROM ledger_entries r2 WHERE r2.reverses_entry_id = f.id))
        """
    )
    op.execute(
        """
        UPDATE ledger_entries le SET posting_key = 'charge:service:' || le.service_line_id
        WHERE le.kind = 'charge' AND le.posting_key LIKE 'charge:%'
          AND le.id = (SELECT min(f.id) FROM ledger_entries f WHERE f.kind = 'charge'
                       AND f.service_line_id = le.service_line_id AND f.posting_key LIKE 'charge:%'
                       AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses_entry_id = f.id))
          AND NOT EXISTS (SELECT 1 FROM ledger_entries k WHERE k.posting_key = 'charge:service:' || le.service_line_id)
        """
    )
    op.alter_column("ledger_entries", "service_line_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_ledger_entries_service_line_id_service_lines"),
        "ledger_entries",
        "service_lines",
        ["service_line_id"],
        ["id"],
    )
    op.create_index(op.f("ix_ledger_entries_service_line_id"), "ledger_entries", ["service_line_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_entries_service_line_id"), table_name="ledger_entries")
    op.drop_constraint(op.f("fk_ledger_entries_service_line_id_service_lines"), "ledger_entries", type_="foreignkey")
    op.drop_column("ledger_entries", "service_line_id")
    op.drop_column("claims", "crossover_payer_id")
    op.drop_column("claims", "crossover_payer_name")
