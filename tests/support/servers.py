"""The PostgreSQL and Redis a test run uses: the ones named by the environment, else the local ones when they answer,
else embedded ones (medbill.embedded, as `medbill up` runs them) started once for the run and stopped when it ends.

This module owns the choice of servers for the test process (each answer cached for the run), the Redis DB index of
the run, and the embedded servers' run directory under ``var/test-servers/`` of the repository (gitignored), which it
creates, and removes with everything in it when the process exits.

Environment:

* ``MEDBILL_TEST_PG``: admin URL of a PostgreSQL to use as is (a superuser, any database); no probe.
* ``MEDBILL_TEST_REDIS``: base URL of a Redis to use as is (without DB index); no probe.
* ``MEDBILL_TEST_REDIS_DB``: the Redis DB index of the run, 0-15 (default 8 + pid % 8).
* ``MEDBILL_TEST_PG_PROBE`` / ``MEDBILL_TEST_REDIS_PROBE``: the ``host:port`` probed when no URL is given
  (default ``127.0.0.1:5432`` / ``127.0.0.1:6379``).

Once chosen, the URLs are put into ``MEDBILL_TEST_PG`` / ``MEDBILL_TEST_REDIS`` of this process's environment, so
subprocesses that import the test helpers use the same servers instead of starting embedded ones of their own.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import psycopg
from redis import Redis

from medbill.embedded import EmbeddedPostgres, EmbeddedValkey

PG_ENV = "MEDBILL_TEST_PG"
REDIS_ENV = "MEDBILL_TEST_REDIS"
REDIS_DB_ENV = "MEDBILL_TEST_REDIS_DB"
PG_PROBE_ENV = "MEDBILL_TEST_PG_PROBE"
REDIS_PROBE_ENV = "MEDBILL_TEST_REDIS_PROBE"
DEFAULT_PG_PROBE = "127.0.0.1:5432"
DEFAULT_REDIS_PROBE = "127.0.0.1:6379"
REDIS_DB_COUNT = 16  # Redis' and Valkey's default `databases`
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
SERVERS_DIR = PROJECT_ROOT / "var" / "test-servers"
# Short: a probe of a port nobody listens on is refused at once; the timeout is for a host that drops packets.
_PROBE_TIMEOUT = 2


def _log(message: str) -> None:
    # stderr: pytest shows it for a failing setup, and it never mixes with a subprocess's printed result.
    print(f"[tests.support.servers] {message}", file=sys.stderr)


def _plain(url: str) -> str:
    """psycopg takes libpq URLs; SQLAlchemy's driver suffix would be refused."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=_PROBE_TIMEOUT) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=_PROBE_TIMEOUT, socket_timeout=_PROBE_TIMEOUT).ping())
    except Exception:  # redis-py raises its own errors, OSError and ValueError alike for "nothing usable there"
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_runs() -> None:
    """Stop the servers of runs that died without their atexit (SIGKILL, a lost CI runner) and remove their dirs:
    PostgreSQL runs detached from us and would otherwise keep running, and each run has a directory of its own."""
    for run_dir in SERVERS_DIR.glob("run-*-*"):
        pid = run_dir.name.split("-")[1]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        _log(f"removing {run_dir}, left by test process {pid} which is gone")
        try:
            _stop_postgres(EmbeddedPostgres(run_dir, log=_log), run_dir)
            EmbeddedValkey(run_dir, log=_log).stop()
        except Exception as exc:  # a broken leftover must not stop this run: said and kept
            _log(f"could not stop the servers in {run_dir} ({exc}); left in place")
            continue
        shutil.rmtree(run_dir, ignore_errors=True)


@functools.cache
def _run_dir() -> Path:
    """This process's directory for embedded servers, removed (servers stopped first) when the process exits."""
    SERVERS_DIR.mkdir(parents=True, exist_ok=True)
    _remove_stale_runs()
    path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=SERVERS_DIR))
    # mkdtemp makes it 0700; PostgreSQL runs as the medbill-pg system user when we are root and must enter it.
    path.chmod(0o755)
    atexit.register(shutil.rmtree, path, ignore_errors=True)  # atexit runs last-registered first: after the stops
    return path


def _stop_postgres(pg: EmbeddedPostgres, run_dir: Path) -> None:
    # A cluster kept outside the run directory (root, data directory unreachable by the system user) goes too.
    record = run_dir / "postgres" / "cluster_home"
    home = Path(record.read_text().strip()) if record.exists() else None
    try:
        pg.stop()
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


@functools.cache
def pg_admin() -> str:
    """A ``postgresql://`` URL of a superuser on the run's PostgreSQL (its ``postgres`` database)."""
    url = os.environ.get(PG_ENV)
    if url:
        return _plain(url)
    probe = os.environ.get(PG_PROBE_ENV) or DEFAULT_PG_PROBE
    url = f"postgresql://postgres@{probe}/postgres"
    if not _pg_answers(url):
        run_dir = _run_dir()
        _log(f"no PostgreSQL answers on {probe}: starting an embedded one in {run_dir}")
        pg = EmbeddedPostgres(run_dir, log=_log)
        atexit.register(_stop_postgres, pg, run_dir)  # before start(): a half-started server is stopped too
        url = _plain(pg.start()).rsplit("/", 1)[0] + "/postgres"
    os.environ[PG_ENV] = url
    return url


@functools.cache
def redis_base() -> str:
    """A ``redis://`` URL of the run's Redis without DB index (append ``/<redis_db()>``)."""
    url = os.environ.get(REDIS_ENV)
    if url:
        return url.rstrip("/")
    probe = os.environ.get(REDIS_PROBE_ENV) or DEFAULT_REDIS_PROBE
    url = f"redis://{probe}"
    if not _redis_answers(url):
        run_dir = _run_dir()
        _log(f"no Redis answers on {probe}: starting an embedded Valkey in {run_dir}")
        valkey = EmbeddedValkey(run_dir, log=_log)
        atexit.register(valkey.stop)
        url = valkey.start().rsplit("/", 1)[0]  # drop the "/0" DB index
    os.environ[REDIS_ENV] = url
    return url


@functools.cache
def redis_db() -> int:
    """The run's Redis DB index: ``MEDBILL_TEST_REDIS_DB``, else 8-15 by pid (two runs on one machine rarely meet)."""
    raw = os.environ.get(REDIS_DB_ENV, "").strip()
    db = int(raw) if raw else 8 + os.getpid() % 8
    if not 0 <= db < REDIS_DB_COUNT:
        raise ValueError(f"{REDIS_DB_ENV}={raw!r}: a Redis DB index is 0-{REDIS_DB_COUNT - 1}")
    os.environ[REDIS_DB_ENV] = str(db)
    return db


def other_redis_db(db: int) -> int:
    """A DB index in 8-15 other than ``db``, for a second Redis user in the same run (the browser tests' live app);
    it wraps inside 8-15 so it never reaches 16, the first index a default Redis does not have."""
    return 8 + (db - 8 + 4) % 8
