"""Schema migrations: the shared registry, then every practice schema (one version table per schema), under a
PostgreSQL advisory lock, one transaction per schema. A no-op run reads every practice's revision in one query."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

import billing.models  # noqa: F401  (registers the tenant tables on TenantBase.metadata)
from tenants.db import allow_long_statements, schema_for
from tenants.orm import SHARED_SCHEMA, SharedBase, TenantBase

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
ADVISORY_LOCK_KEY = 0x6D6564_62696C6C  # "medbill"
VERSION_TABLE = "alembic_version"


def _config(kind: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR / kind))
    return cfg


@lru_cache(maxsize=8)
def _scripts(kind: str, location: str) -> ScriptDirectory:
    # Parsing the revision files costs more than a no-op schema upgrade; do it once per process.
    return ScriptDirectory.from_config(_config(kind))


def shared_scripts() -> ScriptDirectory:
    return _scripts("shared", str(MIGRATIONS_DIR))


def tenant_scripts() -> ScriptDirectory:
    return _scripts("tenant", str(MIGRATIONS_DIR))


def tenant_head() -> str:
    return tenant_scripts().get_current_head()


@dataclass
class MigrationReport:
    shared_from: str | None = None
    shared_to: str | None = None
    upgraded: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    already_current: int = 0
    seconds: float = 0.0


def _run_upgrade(conn: Connection, cfg: Config, script: ScriptDirectory, version_schema: str, target: str) -> None:
    def upgrade(rev, _context):
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(cfg, script, fn=upgrade, destination_rev=target) as env:
        env.configure(connection=conn, version_table_schema=version_schema, transaction_per_migration=False)
        with env.begin_transaction():
            env.run_migrations()


def _guard_timeouts(conn: Connection) -> None:
    # Never queue forever behind a long transaction holding a lock on a tenant table; DDL on big tables may take
    # longer than a request's statement timeout.
    allow_long_statements(conn, 300, lock_seconds=10)


def shared_revision(conn: Connection) -> str | None:
    exists = conn.execute(
        text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{SHARED_SCHEMA}.{VERSION_TABLE}"}
    ).scalar_one()
    if not exists:
        return None
    return conn.execute(text(f"SELECT version_num FROM {SHARED_SCHEMA}.{VERSION_TABLE}")).scalar()


def upgrade_shared(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    script = shared_scripts()
    head = script.get_current_head() if target == "head" else target
    with engine.begin() as conn:
        _guard_timeouts(conn)
        current = shared_revision(conn)
        if current != head:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SHARED_SCHEMA}"))
            conn.execute(text(f"SET LOCAL search_path TO {SHARED_SCHEMA}, pg_catalog"))
            _run_upgrade(conn, _config("shared"), script, SHARED_SCHEMA, head)
    return current, head


def practice_schemas(conn: Connection) -> list[str]:
    return list(conn.execute(text(f"SELECT schema_name FROM {SHARED_SCHEMA}.practices ORDER BY id")).scalars())


def tenant_revisions(conn: Connection, schemas: Iterable[str] | None = None) -> dict[str, str | None]:
    """Every practice schema's revision in one round trip; None for a schema with no version table."""
    schemas = list(practice_schemas(conn) if schemas is None else schemas)
    if not schemas:
        return {}
    present = set(
        conn.execute(
            text(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = :t AND n.nspname = ANY(:schemas)"
            ),
            {"t": VERSION_TABLE, "schemas": schemas},
        ).scalars()
    )
    revisions: dict[str, str | None] = {s: None for s in schemas}
    with_table = [s for s in schemas if s in present]
    # Chunked UNION ALL: one statement per 500 schemas keeps the statement size sane at thousands of practices.
    for i in range(0, len(with_table), 500):
        chunk = with_table[i : i + 500]
        sql = " UNION ALL ".join(
            f"SELECT '{s}' AS schema_name, version_num FROM \"{s}\".{VERSION_TABLE}" for s in chunk
        )
        for schema_name, version in conn.execute(text(sql)):
            revisions[schema_name] = version
    return revisions


def upgrade_tenant_schema(conn: Connection, schema: str, target: str = "head") -> None:
    """Upgrade one practice schema inside the caller's transaction."""
    script = tenant_scripts()
    if target == "head":
        target = script.get_current_head()
    _guard_timeouts(conn)
    # SET LOCAL: scoped to this transaction, so unqualified DDL in migrations lands in this schema only.
    conn.execute(text(f'SET LOCAL search_path TO "{schema}", pg_catalog'))
    _run_upgrade(conn, _config("tenant"), script, schema, target)


def upgrade_tenants(
    engine: Engine, target: str = "head", progress: Callable[[str], None] | None = None
) -> MigrationReport:
    report = MigrationReport()
    script = tenant_scripts()
    head = script.get_current_head() if target == "head" else target
    with engine.connect() as conn:
        revisions = tenant_revisions(conn)
        conn.rollback()
    for schema, current in revisions.items():
        if current == head:
            report.already_current += 1
            continue
        with engine.begin() as conn:
            upgrade_tenant_schema(conn, schema, head)
        report.upgraded[schema] = (current, head)
        if progress:
            progress(f"{schema}: {current or 'empty'} -> {head}")
    return report


def migrate_all(engine: Engine, progress: Callable[[str], None] | None = None) -> MigrationReport:
    """`medbill migrate`: shared schema then every practice, holding an advisory lock so two deploys never race."""
    started = time.perf_counter()
    with engine.connect() as lock_conn:
        # A second deploy waits for the first however long it takes: no statement or lock timeout on this wait.
        allow_long_statements(lock_conn, None)
        lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        try:
            shared_from, shared_to = upgrade_shared(engine)
            report = upgrade_tenants(engine, progress=progress)
            report.shared_from, report.shared_to = shared_from, shared_to
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            lock_conn.commit()
    report.seconds = time.perf_counter() - started
    return report


def create_tenant_schema(conn: Connection, slug: str) -> str:
    """Create a practice schema at head in the caller's transaction: schema, tables from the models, stamp.
    The test suite checks that models and migrations agree, which is what makes create_all safe here."""
    schema = schema_for(slug)
    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    TenantBase.metadata.create_all(conn.execution_options(schema_translate_map={None: schema}), checkfirst=False)
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    ctx.stamp(tenant_scripts(), "head")
    return schema


def drop_tenant_schema(conn: Connection, slug: str) -> None:
    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_for(slug)}" CASCADE'))


__all__ = [
    "MigrationReport",
    "SharedBase",
    "create_tenant_schema",
    "migrate_all",
    "tenant_revisions",
    "upgrade_shared",
    "upgrade_tenants",
]
