"""Shared registry: companies, practices, users, memberships, tokens, agencies, audit log.

Revision ID: s0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Text

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS shared")
    op.create_table(
        "billing_companies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=41), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_companies")),
        sa.UniqueConstraint("slug", name=op.f("uq_billing_companies_slug")),
        schema="shared",
    )
    op.create_table(
        "collection_agencies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.String(length=41), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_agencies")),
        sa.UniqueConstraint("slug", name=op.f("uq_collection_agencies_slug")),
        schema="shared",
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        schema="shared",
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("kind IN ('access', 'api', 'portal')", name=op.f("ck_api_tokens_kind")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["shared.users.id"],
            name=op.f("fk_api_tokens_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        schema="shared",
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False, schema="shared")
    op.create_table(
        "practices",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=False),
        sa.Column("slug", sa.String(length=41), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("schema_name = 'practice_' || slug", name=op.f("ck_practices_schema_name")),
        sa.CheckConstraint("status IN ('active', 'suspended', 'archived')", name=op.f("ck_practices_status")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_practices_company_id_billing_companies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practices")),
        sa.UniqueConstraint("schema_name", name=op.f("uq_practices_schema_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_practices_slug")),
        schema="shared",
    )
    op.create_index(op.f("ix_practices_company_id"), "practices", ["company_id"], unique=False, schema="shared")
    op.create_table(
        "agency_practices",
        sa.Column("agency_id", sa.BigInteger(), nullable=False),
        sa.Column("practice_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["shared.collection_agencies.id"],
            name=op.f("fk_agency_practices_agency_id_collection_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["shared.practices.id"],
            name=op.f("fk_agency_practices_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agency_id", "practice_id", name=op.f("pk_agency_practices")),
        schema="shared",
    )
    op.create_index(
        op.f("ix_agency_practices_practice_id"),
        "agency_practices",
        ["practice_id"],
        unique=False,
        schema="shared",
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("practice_id", sa.BigInteger(), nullable=True),
        sa.Column("object_type", sa.String(length=50), nullable=False),
        sa.Column("object_id", sa.String(length=100), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["shared.practices.id"],
            name=op.f("fk_audit_log_practice_id_practices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_audit_log_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="shared",
    )
    op.create_index("ix_audit_log_practice_at", "audit_log", ["practice_id", "at"], unique=False, schema="shared")
    op.create_index(op.f("ix_audit_log_user_id"), "audit_log", ["user_id"], unique=False, schema="shared")
    op.create_table(
        "memberships",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("company_id", sa.BigInteger(), nullable=True),
        sa.Column("practice_id", sa.BigInteger(), nullable=True),
        sa.Column("agency_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(role IN ('company_admin', 'biller') AND company_id IS NOT NULL AND practice_id IS NULL"
            " AND agency_id IS NULL)"
            " OR (role = 'doctor' AND practice_id IS NOT NULL AND company_id IS NULL AND agency_id IS NULL)"
            " OR (role = 'agency' AND agency_id IS NOT NULL AND company_id IS NULL AND practice_id IS NULL)",
            name=op.f("ck_memberships_role_scope"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["shared.collection_agencies.id"],
            name=op.f("fk_memberships_agency_id_collection_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["shared.billing_companies.id"],
            name=op.f("fk_memberships_company_id_billing_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["shared.practices.id"],
            name=op.f("fk_memberships_practice_id_practices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint(
            "user_id",
            "role",
            "company_id",
            "practice_id",
            "agency_id",
            name=op.f("uq_memberships_user_id_role_company_id_practice_id_agency_id"),
            postgresql_nulls_not_distinct=True,
        ),
        schema="shared",
    )
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False, schema="shared")


def downgrade() -> None:
    op.drop_index(op.f("ix_memberships_user_id"), table_name="memberships", schema="shared")
    op.drop_table("memberships", schema="shared")
    op.drop_index(op.f("ix_audit_log_user_id"), table_name="audit_log", schema="shared")
    op.drop_index("ix_audit_log_practice_at", table_name="audit_log", schema="shared")
    op.drop_table("audit_log", schema="shared")
    op.drop_index(op.f("ix_agency_practices_practice_id"), table_name="agency_practices", schema="shared")
    op.drop_table("agency_practices", schema="shared")
    op.drop_index(op.f("ix_practices_company_id"), table_name="practices", schema="shared")
    op.drop_table("practices", schema="shared")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens", schema="shared")
    op.drop_table("api_tokens", schema="shared")
    op.drop_table("users", schema="shared")
    op.drop_table("collection_agencies", schema="shared")
    op.drop_table("billing_companies", schema="shared")
