"""tests.support.servers: with nothing answering on the probed addresses it starts embedded PostgreSQL and Valkey
that really serve queries, and removes them when the process ends; the Redis DB index stays within 0-15.

Each case runs in a subprocess (``python -c``) so that this session's own servers and cached choices are untouched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from redis import Redis

from tests.conftest import PROJECT_ROOT
from tests.support import servers

# initdb, the copy of the PostgreSQL binaries when root, and Valkey's start: well under a minute on a slow machine.
pytestmark = pytest.mark.timeout(180)

_SCRIPT = """
import json, psycopg
from redis import Redis
from tests.support import servers
admin = servers.pg_admin()
with psycopg.connect(admin) as conn:
    one = conn.execute("SELECT 1").fetchone()[0]
    version = conn.execute("SHOW server_version_num").fetchone()[0]
url = f"{servers.redis_base()}/{servers.redis_db()}"
client = Redis.from_url(url)
pong = client.ping()
client.set("servers-test", "kept")
import os
print(json.dumps({"pid": str(os.getpid()), "admin": admin, "redis": url, "one": one, "version": version, "pong": pong,
                  "value": client.get("servers-test").decode(), "db": servers.redis_db(),
                  "run_dirs": sorted(p.name for p in servers.SERVERS_DIR.iterdir())}))
"""


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound but not listening for the test's duration: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (servers.PG_ENV, servers.REDIS_ENV, servers.REDIS_DB_ENV)}
    return env | {"PYTHONPATH": str(PROJECT_ROOT)} | extra


def _run(env: dict[str, str], script: str = _SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=170
    )


def _port(url: str) -> int:
    return int(url.rsplit("@", 1)[1].split("/")[0].rsplit(":", 1)[1])


def test_embedded_servers_start_when_nothing_answers_and_are_gone_after(closed_port: int) -> None:
    probe = f"127.0.0.1:{closed_port}"
    before = set(servers.SERVERS_DIR.iterdir()) if servers.SERVERS_DIR.exists() else set()
    proc = _run(_env(MEDBILL_TEST_PG_PROBE=probe, MEDBILL_TEST_REDIS_PROBE=probe))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert result["one"] == 1 and int(result["version"]) >= 100000
    assert result["pong"] is True and result["value"] == "kept"
    assert 8 <= result["db"] <= 15
    pg_port, redis_port = _port(result["admin"]), _port(result["redis"])
    # Embedded, not the probed (closed) port nor the machine's usual servers; password-protected as `medbill up`'s.
    assert closed_port not in (pg_port, redis_port) and pg_port != 5432 and redis_port != 6379
    assert "postgres:" in result["admin"] and result["redis"].startswith("redis://:")
    assert "starting an embedded one" in proc.stderr and "starting an embedded Valkey" in proc.stderr
    assert any(name.startswith("run-") for name in result["run_dirs"])

    # The process exited: both servers are stopped and the run directory is removed.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(result["admin"], connect_timeout=3)
    with pytest.raises(Exception, match="(?i)connect|refused"):
        Redis.from_url(result["redis"], socket_connect_timeout=3).ping()
    after = set(servers.SERVERS_DIR.iterdir()) if servers.SERVERS_DIR.exists() else set()
    assert after <= before


def test_environment_urls_are_used_without_probing(closed_port: int) -> None:
    """MEDBILL_TEST_PG / MEDBILL_TEST_REDIS win: the probe addresses (closed here) do not matter
    and nothing embedded is started."""
    script = (
        "from tests.support import servers; "
        "print(servers.pg_admin()); print(servers.redis_base()); print(servers.redis_db())"
    )
    probe = f"127.0.0.1:{closed_port}"
    env = _env(
        MEDBILL_TEST_PG="postgresql+psycopg://postgres@127.0.0.1:1/postgres",
        MEDBILL_TEST_REDIS="redis://127.0.0.1:1/",
        MEDBILL_TEST_REDIS_DB="3",
        MEDBILL_TEST_PG_PROBE=probe,
        MEDBILL_TEST_REDIS_PROBE=probe,
    )
    proc = _run(env, script)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["postgresql://postgres@127.0.0.1:1/postgres", "redis://127.0.0.1:1", "3"]
    assert "embedded" not in proc.stderr


@pytest.mark.parametrize("value", ["16", "-1"])
def test_redis_db_outside_0_to_15_is_refused(value: str) -> None:
    proc = _run(_env(MEDBILL_TEST_REDIS_DB=value), "from tests.support import servers; servers.redis_db()")
    assert proc.returncode != 0 and "0-15" in proc.stderr


def test_default_redis_db_and_the_live_apps_db_stay_in_8_to_15() -> None:
    for db in range(16):
        other = servers.other_redis_db(db)
        assert 8 <= other <= 15 and other != db
    proc = _run(_env(), "from tests.support import servers; print(servers.redis_db())")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 8 <= int(proc.stdout) <= 15


def test_servers_of_a_killed_run_are_stopped_and_removed_by_the_next(closed_port: int) -> None:
    """A run that dies without its atexit (os._exit here, as after SIGKILL) leaves PostgreSQL detached and Valkey
    orphaned: the next run that needs embedded servers stops them and removes their directory."""
    probe = f"127.0.0.1:{closed_port}"
    env = _env(MEDBILL_TEST_PG_PROBE=probe, MEDBILL_TEST_REDIS_PROBE=probe)
    killed = _run(env, _SCRIPT + "import os; os._exit(0)\n")
    assert killed.returncode == 0, killed.stderr[-4000:]
    result = json.loads(killed.stdout.strip().splitlines()[-1])
    with psycopg.connect(result["admin"], connect_timeout=3) as conn:  # still running: nothing stopped it
        assert conn.execute("SELECT 1").fetchone() == (1,)
    left = [servers.SERVERS_DIR / name for name in result["run_dirs"]]
    assert any(path.name.startswith(f"run-{result['pid']}-") for path in left)

    # Only the run directory is asked for: the cleanup comes with it, before any server of its own is started.
    nxt = _run(env, "from tests.support import servers; print(servers._run_dir())")
    assert nxt.returncode == 0, nxt.stderr[-4000:]
    assert "which is gone" in nxt.stderr
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(result["admin"], connect_timeout=3)
    with pytest.raises(Exception, match="(?i)connect|refused"):
        Redis.from_url(result["redis"], socket_connect_timeout=3).ping()
    assert not [path for path in left if path.name.startswith(f"run-{result['pid']}-") and path.exists()]
