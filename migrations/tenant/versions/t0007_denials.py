"""Denial work and appeals: work items with notes, appeal letters and per-practice templates, follow-up rules and items.

Revision ID: t0007
Revises: t0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import String, Text
from sqlalchemy.dialects import postgresql

revision = "t0007"
down_revision = "t0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appeal_templates",
        sa.Column("family", sa.String(length=30), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "family IN ('medical_necessity', 'timely_filing', 'coding', 'authorization', 'underpayment')",
            name=op.f("ck_appeal_templates_family"),
        ),
        sa.PrimaryKeyConstraint("family", name=op.f("pk_appeal_templates")),
    )
    op.create_table(
        "follow_up_rules",
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.CheckConstraint("days BETWEEN 1 AND 365", name=op.f("ck_follow_up_rules_days")),
        sa.ForeignKeyConstraint(
            ["payer_id"],
            ["practice_payers.payer_id"],
            name=op.f("fk_follow_up_rules_payer_id_practice_payers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("payer_id", name=op.f("pk_follow_up_rules")),
    )
    op.create_table(
        "appeals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("family", sa.String(length=30), nullable=False),
        sa.Column("argument", sa.Text(), nullable=False),
        sa.Column("letter_text", sa.Text(), nullable=False),
        sa.Column("template_source", sa.String(length=10), nullable=False),
        sa.Column("storage_key", sa.String(length=500), server_default="", nullable=False),
        sa.Column("filename", sa.String(length=200), server_default="", nullable=False),
        sa.Column("denial_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("outcome_note", sa.Text(), server_default="", nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "family IN ('medical_necessity', 'timely_filing', 'coding', 'authorization', 'underpayment')",
            name=op.f("ck_appeals_family"),
        ),
        sa.CheckConstraint("outcome IS NULL OR outcome IN ('upheld', 'overturned')", name=op.f("ck_appeals_outcome")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_appeals_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
    )
    op.create_index(op.f("ix_appeals_claim_id"), "appeals", ["claim_id"], unique=False)
    op.create_table(
        "follow_up_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        sa.Column("resolution", sa.String(length=10), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('response', 'closed')", name=op.f("ck_follow_up_items_resolution")
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_follow_up_items_status")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_follow_up_items_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_items")),
        sa.UniqueConstraint("claim_id", "submitted_at", name=op.f("uq_follow_up_items_claim_id_submitted_at")),
    )
    op.create_index("ix_follow_up_items_status", "follow_up_items", ["status"], unique=False)
    op.create_table(
        "denial_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_line_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("deposit_id", sa.BigInteger(), nullable=False),
        sa.Column("remittance_claim_id", sa.BigInteger(), nullable=True),
        sa.Column("underpayment_id", sa.BigInteger(), nullable=True),
        sa.Column("reason_codes", postgresql.ARRAY(String(length=8)), server_default="{}", nullable=False),
        sa.Column("charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("expected_allowed", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("denial_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="open", nullable=False),
        sa.Column("assigned_user_id", sa.BigInteger(), nullable=True),
        sa.Column("appeal_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=True),
        sa.Column(
            "action_detail", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "action IS NULL OR action IN ('corrected', 'voided', 'written_off', 'billed_patient', "
            "'appeal_overturned', 'paid', 'resolved', 'superseded')",
            name=op.f("ck_denial_items_action"),
        ),
        sa.CheckConstraint("kind IN ('denial', 'underpayment')", name=op.f("ck_denial_items_kind")),
        sa.CheckConstraint("status IN ('open', 'appealed', 'closed')", name=op.f("ck_denial_items_status")),
        sa.ForeignKeyConstraint(["appeal_id"], ["appeals.id"], name=op.f("fk_denial_items_appeal_id_appeals")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_denial_items_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["claim_line_id"], ["claim_lines.id"], name=op.f("fk_denial_items_claim_line_id_claim_lines")
        ),
        sa.ForeignKeyConstraint(["deposit_id"], ["deposits.id"], name=op.f("fk_denial_items_deposit_id_deposits")),
        sa.ForeignKeyConstraint(
            ["remittance_claim_id"],
            ["remittance_claims.id"],
            name=op.f("fk_denial_items_remittance_claim_id_remittance_claims"),
        ),
        sa.ForeignKeyConstraint(
            ["underpayment_id"], ["underpayments.id"], name=op.f("fk_denial_items_underpayment_id_underpayments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_denial_items")),
        sa.UniqueConstraint("source_key", name=op.f("uq_denial_items_source_key")),
    )
    op.create_index(op.f("ix_denial_items_appeal_id"), "denial_items", ["appeal_id"], unique=False)
    op.create_index(op.f("ix_denial_items_assigned_user_id"), "denial_items", ["assigned_user_id"], unique=False)
    op.create_index(op.f("ix_denial_items_claim_id"), "denial_items", ["claim_id"], unique=False)
    op.create_index("ix_denial_items_status", "denial_items", ["status"], unique=False)
    op.create_table(
        "denial_notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["denial_items.id"], name=op.f("fk_denial_notes_item_id_denial_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_denial_notes")),
    )
    op.create_index(op.f("ix_denial_notes_item_id"), "denial_notes", ["item_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_denial_notes_item_id"), table_name="denial_notes")
    op.drop_table("denial_notes")
    op.drop_index("ix_denial_items_status", table_name="denial_items")
    op.drop_index(op.f("ix_denial_items_claim_id"), table_name="denial_items")
    op.drop_index(op.f("ix_denial_items_assigned_user_id"), table_name="denial_items")
    op.drop_index(op.f("ix_denial_items_appeal_id"), table_name="denial_items")
    op.drop_table("denial_items")
    op.drop_index("ix_follow_up_items_status", table_name="follow_up_items")
    op.drop_table("follow_up_items")
    op.drop_index(op.f("ix_appeals_claim_id"), table_name="appeals")
    op.drop_table("appeals")
    op.drop_table("follow_up_rules")
    op.drop_table("appeal_templates")
