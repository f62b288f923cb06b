"""A stalled PostgreSQL (every process of a server of the test's own stopped with SIGSTOP: it accepts TCP but answers
nothing, the way an overloaded or paused server looks): the API and /health answer 503 within the configured timeouts
instead of hanging, and work again once the server continues (SIGCONT). The machine's shared PostgreSQL is never
stopped: other test runs use it."""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from medbill.app import create_app
from medbill.embedded import EmbeddedPostgres
from tenants.db import Database
from tenants.migrate import migrate_all
from tests.faults.support import descendants

STATEMENT_TIMEOUT_MS = 2000
CONNECT_TIMEOUT = 2


@pytest.fixture(scope="module")
def own_postgres():
    data_dir = Path(tempfile.mkdtemp(prefix="medbill-stall-"))
    os.chmod(data_dir, 0o755)  # as root the server runs as its system user, which must reach its cluster
    server = EmbeddedPostgres(data_dir, log=lambda _msg: None)
    url = server.start()
    db = Database(url, pool_size=1)
    migrate_all(db.engine)
    db.dispose()
    pid = int((data_dir / "postgres" / "cluster" / "postmaster.pid").read_text().split()[0])
    try:
        yield url, pid
    finally:
        _signal_all(pid, signal.SIGCONT)
        server.stop()


def _signal_all(postmaster: int, sig: int) -> None:
    for pid in [postmaster, *descendants(postmaster)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _timed(fn):
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def test_a_stalled_database_gives_503_within_the_timeouts_and_recovers(own_postgres, settings):
    url, postmaster = own_postgres
    app = create_app(
        dataclasses.replace(
            settings,
            database_url=url,
            db_statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            db_connect_timeout=CONNECT_TIMEOUT,
            db_pool_size=2,
        )
    )
    app.config["TESTING"] = True
    client = app.test_client()
    db = app.extensions["medbill"].db

    def sign_in():
        return client.post("/api/v1/auth/token", json={"email": "nobody@example.test", "password": "wrong"})

    assert client.get("/api/v1/health").status_code == 200
    assert sign_in().status_code == 401  # the database answered: no such user
    held = db.engine.connect()  # checked out before the stall: its next statement gets no pre-ping
    held.execute(text("SELECT 1"))

    _signal_all(postmaster, signal.SIGSTOP)
    try:
        # A statement on a connection already in hand: the server cannot cancel it, our side ends the wait.
        failure, took = _timed(lambda: pytest.raises(OperationalError, held.execute, text("SELECT 1")))
        assert isinstance(failure.value.orig, psycopg.OperationalError), failure.value
        assert STATEMENT_TIMEOUT_MS / 1000 <= took < STATEMENT_TIMEOUT_MS / 1000 + 3, took
        held.close()

        # Requests: a pooled connection's pre-ping and then a new connection each give up after the connect timeout.
        limit = 2 * CONNECT_TIMEOUT + STATEMENT_TIMEOUT_MS / 1000 + 3
        health, took = _timed(lambda: client.get("/api/v1/health"))
        assert health.status_code == 503 and took < limit, (health.status_code, took)
        assert health.get_json()["database"].startswith("down") and health.get_json()["redis"] == "ok"
        refused, took = _timed(sign_in)
        assert refused.status_code == 503 and took < limit, (refused.status_code, took)
        body = refused.get_json()
        assert body["code"] == "unavailable" and "database" in body["message"], body
        assert refused.headers["Retry-After"]
    finally:
        _signal_all(postmaster, signal.SIGCONT)

    # Back: the pool drops what the stall broke and connects again; no restart of the app.
    deadline = time.monotonic() + 30
    while client.get("/api/v1/health").status_code != 200:
        assert time.monotonic() < deadline, "health did not recover after SIGCONT"
        time.sleep(0.5)
    assert sign_in().status_code == 401
    db.dispose()


def test_a_live_server_cancels_a_statement_at_the_statement_timeout(own_postgres):
    url, _ = own_postgres
    db = Database(url, pool_size=1, statement_timeout_ms=1000)
    try:
        with db.engine.connect() as conn:
            failure, took = _timed(lambda: pytest.raises(OperationalError, conn.execute, text("SELECT pg_sleep(5)")))
            assert isinstance(failure.value.orig, psycopg.errors.QueryCanceled) and 1 <= took < 2, took
            conn.rollback()
            # Cancelled by the server, not cut by us: the same connection goes on.
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()
