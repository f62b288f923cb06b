"""The database engine and the one way to open sessions: `shared_session()` for the registry,
`tenant_session(slug)` for a practice's schema (chosen with schema_translate_map, never a pooled search_path)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.orm import Session

SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


def validate_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise ValueError(
            f"invalid slug {slug!r}: use 2-41 characters, lowercase letters, digits and '_', starting with a letter"
        )
    return slug


def schema_for(slug: str) -> str:
    """Schema names only ever come from validated slugs."""
    return f"practice_{validate_slug(slug)}"


# The practice schemas a pooled connection has opened tenant sessions on (kept in the pool record's info).
SCHEMAS_SEEN = "medbill_schemas"
# A PostgreSQL backend caches the catalog entries of every table it touches and never gives them back: a connection
# that served hundreds of practices holds tens of MB. A connection retires once it has served this many schemas
# (MEDBILL_DB_SCHEMAS_PER_CONNECTION, 0 = never), so the memory stays bounded however many practices there are.
DEFAULT_SCHEMAS_PER_CONNECTION = int(os.environ.get("MEDBILL_DB_SCHEMAS_PER_CONNECTION", "100"))


@event.listens_for(Session, "after_begin")
def _note_schema(session: Session, _transaction, connection) -> None:
    slug = session.info.get("practice_slug")
    if slug:
        connection.info.setdefault(SCHEMAS_SEEN, set()).add(slug)


class Database:
    """Owns the engine (one pool per process) and hands out sessions."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        echo: bool = False,
        schemas_per_connection: int = DEFAULT_SCHEMAS_PER_CONNECTION,
    ) -> None:
        self.url = url
        self.engine: Engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_pre_ping=True,
            # Recycling bounds per-backend catalog caches, which grow with every tenant schema a connection touches.
            pool_recycle=900,
            echo=echo,
            # SQL errors carry no bound values (patient names, member ids) into exceptions, logs or RQ's failure
            # records in Redis: the statement and its error are enough to debug.
            hide_parameters=True,
            # A search_path that finds no tenant table: unqualified SQL against tenant tables fails loudly
            # instead of silently reading whichever schema a pooled connection last pointed at.
            connect_args={"options": "-c search_path=pg_catalog"},
        )
        engine = self.engine
        if schemas_per_connection > 0:

            @event.listens_for(engine, "checkout")
            def _retire_wide_connection(_dbapi_connection, record, _proxy) -> None:
                # The pool discards a connection whose checkout raises DisconnectionError and opens a fresh one.
                if len(record.info.get(SCHEMAS_SEEN, ())) >= schemas_per_connection:
                    raise exc.DisconnectionError("retired after serving many practice schemas")

        # Forked workers must not reuse the parent's sockets.
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))

    @lru_cache(maxsize=4096)  # noqa: B019 - one option-engine per schema, bounded; Database lives for the process
    def tenant_engine(self, slug: str) -> Engine:
        return self.engine.execution_options(schema_translate_map={None: schema_for(slug)})

    @contextmanager
    def shared_session(self) -> Iterator[Session]:
        session = Session(bind=self.engine, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def tenant_session(self, slug: str) -> Iterator[Session]:
        session = Session(bind=self.tenant_engine(slug), expire_on_commit=False, info={"practice_slug": slug})
        try:
            yield session
        finally:
            session.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def set_local_search_path(session: Session, slug: str) -> None:
    """For raw SQL inside a tenant transaction: scoped to the transaction, so it cannot leak to the pool."""
    session.execute(text(f'SET LOCAL search_path TO "{schema_for(slug)}", pg_catalog'))
