"""Payers, providers, billing identity, coverages, pricing, encounters, claims, submissions, acknowledgements.

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_identity",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("organization_name", sa.String(length=60), nullable=False),
        sa.Column("group_npi", sa.String(length=10), nullable=False),
        sa.Column("tax_id", sa.String(length=9), nullable=False),
        sa.Column("taxonomy_code", sa.String(length=10), nullable=True),
        sa.Column("address_line1", sa.String(length=55), nullable=False),
        sa.Column("address_line2", sa.String(length=55), server_default="", nullable=False),
        sa.Column("city", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("postal_code", sa.String(length=9), nullable=False),
        sa.Column("pay_to_address_line1", sa.String(length=55), nullable=True),
        sa.Column("pay_to_city", sa.String(length=30), nullable=True),
        sa.Column("pay_to_state", sa.String(length=2), nullable=True),
        sa.Column("pay_to_postal_code", sa.String(length=9), nullable=True),
        sa.Column("contact_name", sa.String(length=60), nullable=False),
        sa.Column("contact_phone", sa.String(length=15), nullable=False),
        sa.Column("contact_email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("clearinghouse_name", sa.String(length=60), server_default="", nullable=False),
        sa.Column("submitter_id", sa.String(length=15), server_default="", nullable=False),
        sa.Column("receiver_id", sa.String(length=15), server_default="", nullable=False),
        sa.Column("usage_indicator", sa.String(length=1), server_default="P", nullable=False),
        sa.Column(
            "transport", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_billing_identity_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_identity")),
    )
    op.create_table(
        "control_counters",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_control_counters")),
    )
    op.create_table(
        "fee_schedule",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("procedure_code", sa.String(length=5), nullable=False),
        sa.Column("modifier", sa.String(length=2), server_default="", nullable=False),
        sa.Column("charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_schedule")),
        sa.UniqueConstraint("procedure_code", "modifier", name=op.f("uq_fee_schedule_procedure_code_modifier")),
    )
    op.create_table(
        "inbound_files",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "summary", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_files")),
        sa.UniqueConstraint("content_sha256", name=op.f("uq_inbound_files_content_sha256")),
    )
    op.create_table(
        "payer_contracts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("default_percent_of_billed", sa.Numeric(precision=6, scale=3), nullable=True),
        sa.CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from", name=op.f("ck_payer_contracts_dates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_contracts")),
    )
    op.create_index(op.f("ix_payer_contracts_payer_id"), "payer_contracts", ["payer_id"], unique=False)
    op.create_table(
        "practice_payers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("timely_filing_days", sa.Integer(), server_default="365", nullable=False),
        sa.Column("appeal_window_days", sa.Integer(), server_default="180", nullable=False),
        sa.Column(
            "scrub_overrides",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practice_payers")),
        sa.UniqueConstraint("payer_id", name=op.f("uq_practice_payers_payer_id")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=False),
        sa.Column("first_name", sa.String(length=35), nullable=False),
        sa.Column("last_name", sa.String(length=60), nullable=False),
        sa.Column("credential", sa.String(length=10), server_default="", nullable=False),
        sa.Column("taxonomy_code", sa.String(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("npi", name=op.f("uq_providers_npi")),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("clearinghouse_name", sa.String(length=60), nullable=False),
        sa.Column("interchange_control_number", sa.Integer(), nullable=False),
        sa.Column("group_control_number", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="created", nullable=False),
        sa.Column("claim_count", sa.Integer(), nullable=False),
        sa.Column("total_charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "ack_detail", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("transmitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'transmitted', 'failed', 'accepted', 'partially_accepted', 'rejected')",
            name=op.f("ck_submissions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint(
            "clearinghouse_name",
            "interchange_control_number",
            name=op.f("uq_submissions_clearinghouse_name_interchange_control_number"),
        ),
    )
    op.create_table(
        "contract_rates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("contract_id", sa.BigInteger(), nullable=False),
        sa.Column("procedure_code", sa.String(length=5), nullable=False),
        sa.Column("modifier", sa.String(length=2), server_default="", nullable=False),
        sa.Column("allowed", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["payer_contracts.id"],
            name=op.f("fk_contract_rates_contract_id_payer_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_rates")),
        sa.UniqueConstraint(
            "contract_id",
            "procedure_code",
            "modifier",
            name=op.f("uq_contract_rates_contract_id_procedure_code_modifier"),
        ),
    )
    op.create_table(
        "coverages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("member_id", sa.String(length=80), nullable=False),
        sa.Column("group_number", sa.String(length=50), nullable=True),
        sa.Column("relationship_code", sa.String(length=2), server_default="18", nullable=False),
        sa.Column("subscriber_first_name", sa.String(length=35), nullable=True),
        sa.Column("subscriber_last_name", sa.String(length=60), nullable=True),
        sa.Column("subscriber_date_of_birth", sa.Date(), nullable=True),
        sa.Column("subscriber_sex", sa.String(length=1), nullable=True),
        sa.Column("subscriber_address_line1", sa.String(length=55), nullable=True),
        sa.Column("subscriber_city", sa.String(length=30), nullable=True),
        sa.Column("subscriber_state", sa.String(length=2), nullable=True),
        sa.Column("subscriber_postal_code", sa.String(length=9), nullable=True),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("end_date IS NULL OR end_date >= effective_date", name=op.f("ck_coverages_dates")),
        sa.CheckConstraint("priority IN (1, 2, 3)", name=op.f("ck_coverages_priority")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_coverages_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coverages")),
    )
    op.create_index("ix_coverages_patient", "coverages", ["patient_id", "priority"], unique=False)
    op.create_table(
        "encounters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("date_of_service", sa.Date(), nullable=False),
        sa.Column("place_of_service", sa.String(length=2), nullable=False),
        sa.Column("rendering_provider_id", sa.BigInteger(), nullable=False),
        sa.Column("diagnoses", postgresql.ARRAY(sa.String(length=8)), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_encounters_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["rendering_provider_id"], ["providers.id"], name=op.f("fk_encounters_rendering_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounters")),
    )
    op.create_index(op.f("ix_encounters_patient_id"), "encounters", ["patient_id"], unique=False)
    op.create_table(
        "guarantors",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("relationship", sa.String(length=10), nullable=False),
        sa.Column("first_name", sa.String(length=60), nullable=False),
        sa.Column("last_name", sa.String(length=60), nullable=False),
        sa.Column("address_line1", sa.String(length=55), nullable=False),
        sa.Column("address_line2", sa.String(length=55), server_default="", nullable=False),
        sa.Column("city", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("postal_code", sa.String(length=9), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_guarantors_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guarantors")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_guarantors_patient_id")),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("encounter_id", sa.BigInteger(), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("coverage_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("rendering_provider_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("frequency_code", sa.String(length=1), server_default="1", nullable=False),
        sa.Column("original_claim_id", sa.BigInteger(), nullable=True),
        sa.Column("payer_claim_number", sa.String(length=50), nullable=True),
        sa.Column("total_charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("frequency_code IN ('1', '7', '8')", name=op.f("ck_claims_frequency")),
        sa.ForeignKeyConstraint(["coverage_id"], ["coverages.id"], name=op.f("fk_claims_coverage_id_coverages")),
        sa.ForeignKeyConstraint(["encounter_id"], ["encounters.id"], name=op.f("fk_claims_encounter_id_encounters")),
        sa.ForeignKeyConstraint(["original_claim_id"], ["claims.id"], name=op.f("fk_claims_original_claim_id_claims")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_claims_patient_id_patients")),
        sa.ForeignKeyConstraint(
            ["rendering_provider_id"], ["providers.id"], name=op.f("fk_claims_rendering_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    op.create_index(op.f("ix_claims_encounter_id"), "claims", ["encounter_id"], unique=False)
    op.create_index("ix_claims_patient", "claims", ["patient_id"], unique=False)
    op.create_index(op.f("ix_claims_payer_id"), "claims", ["payer_id"], unique=False)
    op.create_index("ix_claims_status", "claims", ["status"], unique=False)
    op.create_table(
        "service_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("encounter_id", sa.BigInteger(), nullable=False),
        sa.Column("line_number", sa.SmallInteger(), nullable=False),
        sa.Column("procedure_code", sa.String(length=5), nullable=False),
        sa.Column("modifiers", postgresql.ARRAY(sa.String(length=2)), server_default="{}", nullable=False),
        sa.Column("units", sa.Numeric(precision=9, scale=3), nullable=False),
        sa.Column("diagnosis_pointers", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("date_of_service", sa.Date(), nullable=False),
        sa.Column("place_of_service", sa.String(length=2), nullable=False),
        sa.Column("rendering_provider_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounters.id"], name=op.f("fk_service_lines_encounter_id_encounters")
        ),
        sa.ForeignKeyConstraint(
            ["rendering_provider_id"], ["providers.id"], name=op.f("fk_service_lines_rendering_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_lines")),
        sa.UniqueConstraint("encounter_id", "line_number", name=op.f("uq_service_lines_encounter_id_line_number")),
    )
    op.create_table(
        "claim_acknowledgements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("inbound_file_id", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("payer_claim_number", sa.String(length=50), nullable=True),
        sa.Column(
            "reasons", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_acknowledgements_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["inbound_file_id"],
            ["inbound_files.id"],
            name=op.f("fk_claim_acknowledgements_inbound_file_id_inbound_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_acknowledgements")),
    )
    op.create_index(op.f("ix_claim_acknowledgements_claim_id"), "claim_acknowledgements", ["claim_id"], unique=False)
    op.create_table(
        "claim_lines",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("service_line_id", sa.BigInteger(), nullable=False),
        sa.Column("line_number", sa.SmallInteger(), nullable=False),
        sa.Column("charge", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_lines_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["service_line_id"], ["service_lines.id"], name=op.f("fk_claim_lines_service_line_id_service_lines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_lines")),
        sa.UniqueConstraint("claim_id", "line_number", name=op.f("uq_claim_lines_claim_id_line_number")),
    )
    op.create_index(op.f("ix_claim_lines_claim_id"), "claim_lines", ["claim_id"], unique=False)
    op.create_index(op.f("ix_claim_lines_service_line_id"), "claim_lines", ["service_line_id"], unique=False)
    op.create_table(
        "claim_status_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_claim_status_changes_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_status_changes")),
    )
    op.create_index(op.f("ix_claim_status_changes_claim_id"), "claim_status_changes", ["claim_id"], unique=False)
    op.create_table(
        "scrub_findings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=50), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_scrub_findings_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scrub_findings")),
    )
    op.create_index(op.f("ix_scrub_findings_claim_id"), "scrub_findings", ["claim_id"], unique=False)
    op.create_table(
        "submission_claims",
        sa.Column("submission_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("transaction_control_number", sa.String(length=9), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_submission_claims_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"], name=op.f("fk_submission_claims_submission_id_submissions")
        ),
        sa.PrimaryKeyConstraint("submission_id", "claim_id", name=op.f("pk_submission_claims")),
    )
    op.create_index(op.f("ix_submission_claims_claim_id"), "submission_claims", ["claim_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_submission_claims_claim_id"), table_name="submission_claims")
    op.drop_table("submission_claims")
    op.drop_index(op.f("ix_scrub_findings_claim_id"), table_name="scrub_findings")
    op.drop_table("scrub_findings")
    op.drop_index(op.f("ix_claim_status_changes_claim_id"), table_name="claim_status_changes")
    op.drop_table("claim_status_changes")
    op.drop_index(op.f("ix_claim_lines_service_line_id"), table_name="claim_lines")
    op.drop_index(op.f("ix_claim_lines_claim_id"), table_name="claim_lines")
    op.drop_table("claim_lines")
    op.drop_index(op.f("ix_claim_acknowledgements_claim_id"), table_name="claim_acknowledgements")
    op.drop_table("claim_acknowledgements")
    op.drop_table("service_lines")
    op.drop_index("ix_claims_status", table_name="claims")
    op.drop_index(op.f("ix_claims_payer_id"), table_name="claims")
    op.drop_index("ix_claims_patient", table_name="claims")
    op.drop_index(op.f("ix_claims_encounter_id"), table_name="claims")
    op.drop_table("claims")
    op.drop_table("guarantors")
    op.drop_index(op.f("ix_encounters_patient_id"), table_name="encounters")
    op.drop_table("encounters")
    op.drop_index("ix_coverages_patient", table_name="coverages")
    op.drop_table("coverages")
    op.drop_table("contract_rates")
    op.drop_table("submissions")
    op.drop_table("providers")
    op.drop_table("practice_payers")
    op.drop_index(op.f("ix_payer_contracts_payer_id"), table_name="payer_contracts")
    op.drop_table("payer_contracts")
    op.drop_table("inbound_files")
    op.drop_table("fee_schedule")
    op.drop_table("control_counters")
    op.drop_table("billing_identity")
