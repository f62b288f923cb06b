"""Migrations: one head each, models agree with migrations, every practice schema upgraded (50 of them), a new
migration reaches all, no-op runs cost a constant number of queries, and the advisory lock serialises runs."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.exc import ProgrammingError

import tenants.migrate as migrate
import tenants.models  # noqa: F401  (registers the shared tables on SharedBase.metadata)
from tenants.orm import SharedBase, TenantBase
from tests.conftest import run_cli, settings_env
from tests.support.servers import pg_admin


@pytest.fixture()
def scratch_engine():
    """A database of its own, so these tests can add migrations and many schemas without touching the others."""
    name = f"medbill_mig_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin().rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(f"{base}/{name}", connect_args={"options": "-c search_path=pg_catalog"})
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(pg_admin(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _register_empty_practices(engine, count: int) -> list[str]:
    """Practices whose schemas exist but hold nothing yet: what an upgrade from base must fill."""
    slugs = [f"p{i:04d}" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO shared.billing_companies (slug, name) VALUES ('co', 'Co')"))
        for slug in slugs:
            conn.execute(
                text(
                    "INSERT INTO shared.practices (company_id, slug, name, schema_name) "
                    "SELECT id, :slug, :slug, :schema FROM shared.billing_companies WHERE slug = 'co'"
                ),
                {"slug": slug, "schema": f"practice_{slug}"},
            )
            conn.execute(text(f'CREATE SCHEMA "practice_{slug}"'))
    return slugs


def test_single_head_each():
    assert len(migrate.shared_scripts().get_heads()) == 1
    assert len(migrate.tenant_scripts().get_heads()) == 1


def _shared_only(name, type_, _parent) -> bool:
    if type_ == "schema":
        return name == "shared"
    return name != "alembic_version"


def test_models_and_migrations_agree(scratch_engine):
    migrate.upgrade_shared(scratch_engine)
    _register_empty_practices(scratch_engine, 1)
    migrate.upgrade_tenants(scratch_engine)
    with scratch_engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={"include_schemas": True, "include_name": _shared_only},
        )
        assert compare_metadata(ctx, SharedBase.metadata) == []
    with scratch_engine.begin() as conn:
        conn.execute(text('SET LOCAL search_path TO "practice_p0000"'))
        ctx = MigrationContext.configure(conn, opts={"include_name": lambda n, t, p: n != "alembic_version"})
        assert compare_metadata(ctx, TenantBase.metadata) == []


def test_provisioned_schema_equals_migrated_schema(scratch_engine):
    """create_practice builds from the models; the result must match a schema built by running migrations."""
    from tenants.registry import create_practice

    migrate.upgrade_shared(scratch_engine)
    _register_empty_practices(scratch_engine, 1)
    migrate.upgrade_tenants(scratch_engine)
    create_practice(scratch_engine, "co", "fresh", "Fresh")

    def shape(schema: str):
        insp = inspect(scratch_engine)
        out = {}
        for table in insp.get_table_names(schema=schema):
            cols = [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table, schema=schema)]
            idx = sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(table, schema))
            uqs = sorted(u["name"] for u in insp.get_unique_constraints(table, schema=schema))
            cks = sorted(c["name"] for c in insp.get_check_constraints(table, schema=schema))
            fks = sorted(f["name"] for f in insp.get_foreign_keys(table, schema=schema))
            out[table] = (sorted(cols), idx, uqs, cks, fks)
        return out

    assert shape("practice_fresh") == shape("practice_p0000")
    with scratch_engine.connect() as conn:
        assert migrate.tenant_revisions(conn)["practice_fresh"] == migrate.tenant_head()


def _add_migration(tmp_path: Path) -> Path:
    """A copy of the migrations with one more tenant revision that adds a column."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.tenant_head()
    (copy / "tenant" / "versions" / "t9999_language.py").write_text(
        f'''"""Test-only: preferred language."""
import sqlalchemy as sa
from alembic import op

revision = "t9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("patients", sa.Column("preferred_language", sa.String(10), nullable=True))


def downgrade():
    op.drop_column("patients", "preferred_language")
'''
    )
    return copy


def test_fifty_practices_upgrade_and_a_new_migration_reaches_all(scratch_engine, tmp_path, monkeypatch, settings):
    migrate.upgrade_shared(scratch_engine)
    slugs = _register_empty_practices(scratch_engine, 50)
    report = migrate.migrate_all(scratch_engine)
    assert len(report.upgraded) == 50 and report.already_current == 0
    with scratch_engine.connect() as conn:
        revisions = migrate.tenant_revisions(conn)
    assert set(revisions.values()) == {migrate.tenant_head()}
    assert len(revisions) == 50

    env = settings_env(settings) | {"DATABASE_URL": scratch_engine.url.render_as_string(hide_password=False)}
    listed = run_cli(env, "practices", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.startswith("p0")]
    assert len(rows) == 50 and all(migrate.tenant_head() in line and "behind" not in line for line in rows)

    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", _add_migration(tmp_path))
    report = migrate.migrate_all(scratch_engine)
    assert len(report.upgraded) == 50
    assert all(
        change == (migrate.tenant_scripts().get_revision("t9999").down_revision, "t9999")
        for change in report.upgraded.values()
    )
    insp = inspect(scratch_engine)
    for slug in slugs:
        columns = {c["name"] for c in insp.get_columns("patients", schema=f"practice_{slug}")}
        assert "preferred_language" in columns, slug

    again = migrate.migrate_all(scratch_engine)
    assert again.upgraded == {} and again.already_current == 50


def test_noop_migrate_costs_constant_queries(scratch_engine):
    """At 200 practices a no-op run must not touch each schema: the statement count does not grow with N."""
    migrate.upgrade_shared(scratch_engine)

    def count_statements() -> int:
        seen = []
        listener = lambda *a, **k: seen.append(1)  # noqa: E731
        event.listen(scratch_engine, "before_cursor_execute", listener)
        try:
            migrate.migrate_all(scratch_engine)
        finally:
            event.remove(scratch_engine, "before_cursor_execute", listener)
        return len(seen)

    _register_empty_practices(scratch_engine, 20)
    migrate.migrate_all(scratch_engine)
    with_20 = count_statements()
    head = migrate.tenant_head()
    with scratch_engine.begin() as conn:
        for i in range(20, 200):
            slug, schema = f"p{i:04d}", f"practice_p{i:04d}"
            conn.execute(
                text(
                    "INSERT INTO shared.practices (company_id, slug, name, schema_name) "
                    "SELECT id, :s, :s, :schema FROM shared.billing_companies WHERE slug = 'co'"
                ),
                {"s": slug, "schema": schema},
            )
            # Only the version table matters to a no-op run; building 180 full schemas would just be slow.
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'CREATE TABLE "{schema}".alembic_version (version_num varchar(32) PRIMARY KEY)'))
            conn.execute(text(f"INSERT INTO \"{schema}\".alembic_version VALUES ('{head}')"))
    started = time.perf_counter()
    with_200 = count_statements()
    elapsed = time.perf_counter() - started
    assert with_200 == with_20, (with_20, with_200)
    print(f"no-op migrate over 200 practices: {elapsed:.3f}s, {with_200} statements")


def test_advisory_lock_serialises_runs(scratch_engine):
    migrate.upgrade_shared(scratch_engine)
    with scratch_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": migrate.ADVISORY_LOCK_KEY})
        done = threading.Event()
        thread = threading.Thread(target=lambda: (migrate.migrate_all(scratch_engine), done.set()))
        thread.start()
        assert not done.wait(1.0), "migrate ran while another run held the lock"
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": migrate.ADVISORY_LOCK_KEY})
        holder.commit()
        assert done.wait(30), "migrate did not proceed after the lock was released"
        thread.join()


def test_failed_practice_creation_leaves_no_schema(scratch_engine):
    from medbill.errors import Conflict
    from tenants.registry import create_practice

    migrate.upgrade_shared(scratch_engine)
    _register_empty_practices(scratch_engine, 0)
    with scratch_engine.begin() as conn:
        conn.execute(text("INSERT INTO shared.billing_companies (slug, name) VALUES ('co2', 'Co2')"))
    create_practice(scratch_engine, "co2", "dup", "Dup")
    with pytest.raises(Conflict):
        create_practice(scratch_engine, "co2", "dup", "Dup again")
    # Schema exists but no row: the schema creation fails and the row insert rolls back with it.
    with scratch_engine.begin() as conn:
        conn.execute(text('CREATE SCHEMA "practice_orphan"'))
    with pytest.raises(ProgrammingError, match="already exists"):
        create_practice(scratch_engine, "co2", "orphan", "Orphan")
    with scratch_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM shared.practices WHERE slug = 'orphan'")).scalar() == 0


def test_cli_creates_a_practice_at_head_in_one_step(scratch_engine, settings):
    migrate.upgrade_shared(scratch_engine)
    env = settings_env(settings) | {"DATABASE_URL": scratch_engine.url.render_as_string(hide_password=False)}
    assert run_cli(env, "companies", "create", "acme", "--name", "Acme Billing").returncode == 0
    created = run_cli(env, "practices", "create", "sunrise", "--name", "Sunrise Clinic", "--company", "acme")
    assert created.returncode == 0, created.stderr
    assert "schema practice_sunrise" in created.stdout
    with scratch_engine.connect() as conn:
        assert migrate.tenant_revisions(conn) == {"practice_sunrise": migrate.tenant_head()}
    again = run_cli(env, "practices", "create", "sunrise", "--name", "Again", "--company", "acme")
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = run_cli(env, "practices", "create", "Bad-Slug", "--name", "Bad", "--company", "acme")
    assert bad.returncode != 0 and "invalid slug" in bad.stderr
