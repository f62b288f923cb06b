"""Collections: placement rules, agency formats, exports, agency reports.

Revision ID: t0009
Revises: t0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0009"
down_revision = "t0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_rules",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("min_age_days", sa.Integer(), server_default="120", nullable=False),
        sa.Column("min_statements", sa.Integer(), server_default="3", nullable=False),
        sa.Column("min_balance", sa.Numeric(precision=12, scale=2), server_default="25.00", nullable=False),
        sa.Column("exclude_payment_plans", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("skip_days", sa.Integer(), server_default="30", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_collection_rules_single_row")),
        sa.CheckConstraint(
            "min_age_days >= 0 AND min_statements >= 0 AND min_balance >= 0", name=op.f("ck_collection_rules_bounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_rules")),
    )
    op.create_table(
        "agency_terms",
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("file_format", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("report_format", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("fee_percent", sa.Numeric(precision=5, scale=2), server_default="0", nullable=False),
        sa.Column("sftp", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by_user_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("fee_percent >= 0 AND fee_percent <= 100", name=op.f("ck_agency_terms_fee_percent")),
        sa.PrimaryKeyConstraint("agency_id", name=op.f("pk_agency_terms")),
    )
    op.create_table(
        "placement_reviews",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=True),
        sa.Column("placement_id", sa.BigInteger(), nullable=True),
        sa.Column("patient_balance", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("skip_until", sa.Date(), nullable=True),
        sa.Column("decided_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("decision IN ('approved', 'skipped')", name=op.f("ck_placement_reviews_decision")),
        sa.CheckConstraint(
            "decision = 'skipped' OR placement_id IS NOT NULL", name=op.f("ck_placement_reviews_approved_placement")
        ),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_placement_reviews_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["agency_placements.id"],
            name=op.f("fk_placement_reviews_placement_id_agency_placements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_placement_reviews")),
    )
    op.create_index(op.f("ix_placement_reviews_patient_id"), "placement_reviews", ["patient_id"], unique=False)
    op.create_table(
        "placement_details",
        sa.Column("placement_id", sa.BigInteger(), nullable=False),
        sa.Column("balance_placed", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("oldest_service_date", sa.Date(), nullable=True),
        sa.Column("placed_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("recalled_by", sa.String(length=10), nullable=True),
        sa.Column("recall_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("recalled_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("sent_balance", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("recall_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint("recalled_by IN ('practice', 'agency')", name=op.f("ck_placement_details_recalled_by")),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["agency_placements.id"],
            name=op.f("fk_placement_details_placement_id_agency_placements"),
        ),
        sa.PrimaryKeyConstraint("placement_id", name=op.f("pk_placement_details")),
    )
    op.create_table(
        "agency_exports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), server_default="placements", nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("file_type", sa.String(length=10), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("account_count", sa.Integer(), nullable=False),
        sa.Column("total_placed", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("delivered_sftp_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_error", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("kind IN ('placements', 'updates')", name=op.f("ck_agency_exports_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_exports")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_agency_exports_storage_key")),
    )
    op.create_index(op.f("ix_agency_exports_agency_id"), "agency_exports", ["agency_id"], unique=False)
    op.create_table(
        "agency_export_items",
        sa.Column("placement_id", sa.BigInteger(), nullable=False),
        sa.Column("export_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["export_id"], ["agency_exports.id"], name=op.f("fk_agency_export_items_export_id_agency_exports")
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["agency_placements.id"],
            name=op.f("fk_agency_export_items_placement_id_agency_placements"),
        ),
        sa.PrimaryKeyConstraint("placement_id", name=op.f("pk_agency_export_items")),
    )
    op.create_index(op.f("ix_agency_export_items_export_id"), "agency_export_items", ["export_id"], unique=False)
    op.create_table(
        "agency_update_items",
        sa.Column("export_id", sa.BigInteger(), nullable=False),
        sa.Column("placement_id", sa.BigInteger(), nullable=False),
        sa.Column("update_type", sa.String(length=10), nullable=False),
        sa.Column("balance", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.CheckConstraint("update_type IN ('balance', 'recalled')", name=op.f("ck_agency_update_items_update_type")),
        sa.ForeignKeyConstraint(
            ["export_id"], ["agency_exports.id"], name=op.f("fk_agency_update_items_export_id_agency_exports")
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["agency_placements.id"],
            name=op.f("fk_agency_update_items_placement_id_agency_placements"),
        ),
        sa.PrimaryKeyConstraint("export_id", "placement_id", name=op.f("pk_agency_update_items")),
    )
    op.create_index(op.f("ix_agency_update_items_placement_id"), "agency_update_items", ["placement_id"], unique=False)
    op.create_table(
        "agency_payment_reports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("placement_id", sa.BigInteger(), nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("gross", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("fee_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("fee", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("net", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("reported_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "gross > 0 AND fee >= 0 AND net = gross - fee", name=op.f("ck_agency_payment_reports_amounts")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_agency_payment_reports_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["placement_id"],
            ["agency_placements.id"],
            name=op.f("fk_agency_payment_reports_placement_id_agency_placements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_payment_reports")),
        sa.UniqueConstraint("agency_id", "reference", name=op.f("uq_agency_payment_reports_agency_id_reference")),
    )
    op.create_index(
        op.f("ix_agency_payment_reports_patient_id"), "agency_payment_reports", ["patient_id"], unique=False
    )
    op.create_index(
        op.f("ix_agency_payment_reports_placement_id"), "agency_payment_reports", ["placement_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_agency_payment_reports_placement_id"), table_name="agency_payment_reports")
    op.drop_index(op.f("ix_agency_payment_reports_patient_id"), table_name="agency_payment_reports")
    op.drop_table("agency_payment_reports")
    op.drop_index(op.f("ix_agency_update_items_placement_id"), table_name="agency_update_items")
    op.drop_table("agency_update_items")
    op.drop_index(op.f("ix_agency_export_items_export_id"), table_name="agency_export_items")
    op.drop_table("agency_export_items")
    op.drop_index(op.f("ix_agency_exports_agency_id"), table_name="agency_exports")
    op.drop_table("agency_exports")
    op.drop_table("placement_details")
    op.drop_index(op.f("ix_placement_reviews_patient_id"), table_name="placement_reviews")
    op.drop_table("placement_reviews")
    op.drop_table("agency_terms")
    op.drop_table("collection_rules")
