"""Practice schema: patients, agency placements, patient imports.

Revision ID: t0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

revision = "t0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_imports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="queued", nullable=False),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_created", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_existing", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("job_id", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'done', 'failed')", name=op.f("ck_patient_imports_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_imports")),
        sa.UniqueConstraint("file_sha256", name=op.f("uq_patient_imports_file_sha256")),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_number", sa.String(length=30), nullable=False),
        sa.Column("first_name", sa.String(length=60), nullable=False),
        sa.Column("last_name", sa.String(length=60), nullable=False),
        sa.Column("middle_name", sa.String(length=60), server_default="", nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("address_line1", sa.String(length=55), nullable=False),
        sa.Column("address_line2", sa.String(length=55), server_default="", nullable=False),
        sa.Column("city", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("postal_code", sa.String(length=9), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sex IN ('F', 'M', 'U')", name=op.f("ck_patients_sex")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("account_number", name=op.f("uq_patients_account_number")),
    )
    op.create_index("ix_patients_name", "patients", ["last_name", "first_name"], unique=False)
    op.create_table(
        "agency_placements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_agency_placements_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_placements")),
    )
    op.create_index(op.f("ix_agency_placements_agency_id"), "agency_placements", ["agency_id"], unique=False)
    op.create_index(op.f("ix_agency_placements_patient_id"), "agency_placements", ["patient_id"], unique=False)
    op.create_index(
        "uq_agency_placements_open",
        "agency_placements",
        ["patient_id"],
        unique=True,
        postgresql_where=sa.text("recalled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_agency_placements_open",
        table_name="agency_placements",
        postgresql_where=sa.text("recalled_at IS NULL"),
    )
    op.drop_index(op.f("ix_agency_placements_patient_id"), table_name="agency_placements")
    op.drop_index(op.f("ix_agency_placements_agency_id"), table_name="agency_placements")
    op.drop_table("agency_placements")
    op.drop_index("ix_patients_name", table_name="patients")
    op.drop_table("patients")
    op.drop_table("patient_imports")
