"""The database engine and the one way to open sessions: `shared_session()` for the registry,
`tenant_session(slug)` for a practice's schema (chosen with schema_translate_map, never a pooled search_path).

Timeouts, so that a stalled server (overloaded, paused, a half-dead network path) costs a request a bounded wait and a
503 instead of hanging it: connecting (libpq's connect_timeout), every statement (the server's statement_timeout, and
the same limit on our side: a stopped server cannot cancel anything, so a wait for its answer that outlasts the
statement timeout closes the connection), waiting for a lock (lock_timeout), waiting for a pooled connection
(pool_timeout), and TCP keepalives so a dead peer is noticed on idle connections."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc, text
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


# How long past the server's own statement timeout we wait for an answer before closing the connection: long enough
# that a live server's cancellation (which keeps the connection) always comes first.
CLIENT_GRACE_SECONDS = 1.0


class _BoundedWaitConnection(psycopg.Connection):
    """A psycopg connection whose every wait for the server (a statement, its results, a commit, a ping) ends after
    `wait_seconds`: the connection is then closed (so the pool discards it) and OperationalError raised, which the web
    app answers with 503."""

    wait_seconds: float | None = None

    def wait(self, gen, interval: float = 0.1, timeout: float | None = None):
        if timeout is not None or self.wait_seconds is None:  # psycopg's own bounded waits (cancel) keep theirs
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.wait_seconds)
        except psycopg.errors._WaitTimeout:  # noqa: SLF001 - the exception psycopg's own timeout raises
            # Mid-protocol: the connection cannot be used again. finish() closes the socket without waiting for the
            # server (close() would take the lock this thread already holds).
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database server did not answer within {self.wait_seconds:g} s; connection closed"
            ) from None


def allow_long_statements(conn: Connection, seconds: float | None, *, lock_seconds: float | None = None) -> None:
    """For work known to take long (migrations, waiting for their advisory lock): this transaction's statement and
    lock timeouts (None: no limit), and the same limit on our side for the rest of this checkout."""
    conn.execute(text(f"SET LOCAL statement_timeout = {int((seconds or 0) * 1000)}"))
    conn.execute(text(f"SET LOCAL lock_timeout = {int((lock_seconds or 0) * 1000)}"))
    dbapi = conn.connection.dbapi_connection
    if isinstance(dbapi, _BoundedWaitConnection):
        dbapi.wait_seconds = None if seconds is None else seconds + CLIENT_GRACE_SECONDS


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
        connect_timeout: int = 5,
        statement_timeout_ms: int = 30000,
        lock_timeout_ms: int = 10000,
        pool_timeout: float = 10.0,
    ) -> None:
        for name, value in (("connect_timeout", connect_timeout), ("statement_timeout_ms", statement_timeout_ms),
                            ("lock_timeout_ms", lock_timeout_ms), ("pool_timeout", pool_timeout)):  # fmt: skip
            if value <= 0:
                raise ValueError(f"database {name} must be positive, not {value!r}")
        self.url = url
        statement_wait = statement_timeout_ms / 1000 + CLIENT_GRACE_SECONDS
        # A ping (the pool's pre-ping on checkout, health) is one trivial statement: a server that does not answer
        # it within the connect timeout is away.
        ping_wait = float(max(connect_timeout, 1))
        self.engine: Engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_timeout=pool_timeout,
            pool_pre_ping=True,
            # Recycling bounds per-backend catalog caches, which grow with every tenant schema a connection touches.
            pool_recycle=900,
            echo=echo,
            # SQL errors carry no bound values (patient names, member ids) into exceptions, logs or RQ's failure
            # records in Redis: the statement and its error are enough to debug.
            hide_parameters=True,
            # A search_path that finds no tenant table: unqualified SQL against tenant tables fails loudly
            # instead of silently reading whichever schema a pooled connection last pointed at.
            connect_args={
                "options": f"-c search_path=pg_catalog -c statement_timeout={statement_timeout_ms}"
                f" -c lock_timeout={lock_timeout_ms}",
                # libpq's minimum is 2 s.
                "connect_timeout": max(connect_timeout, 2),
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
                # Data we sent that the peer has not acknowledged after this long: the connection is dead.
                "tcp_user_timeout": int(statement_wait * 1000),
            },
        )
        engine = self.engine

        @event.listens_for(engine, "do_connect")
        def _bounded_connection(_dialect, _record, cargs, cparams):
            conn = _BoundedWaitConnection.connect(*cargs, **cparams)
            conn.wait_seconds = statement_wait
            return conn

        # Checked in, the next use is the pool's pre-ping; checked out (after that ping), statements.
        @event.listens_for(engine, "checkin")
        def _ping_wait(dbapi_connection, _record) -> None:
            if isinstance(dbapi_connection, _BoundedWaitConnection):
                dbapi_connection.wait_seconds = ping_wait

        @event.listens_for(engine, "checkout")
        def _statement_wait(dbapi_connection, _record, _proxy) -> None:
            if isinstance(dbapi_connection, _BoundedWaitConnection):
                dbapi_connection.wait_seconds = statement_wait
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
