"""Embedded PostgreSQL and Valkey (medbill.embedded) against the real bundled binaries, no mocks."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from medbill.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedValkey

# Each test takes a few seconds (initdb is the slowest step); the per-test cap keeps the file under 60 s.
pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="medbill-embedded-"))
    # The test's own decision: mkdtemp makes 0700 dirs, which the PostgreSQL system user (used when the
    # suite runs as root) could not enter. medbill.embedded must never loosen this itself.
    os.chmod(path, 0o755)
    yield path
    # Files owned by the PostgreSQL system user are removable here: the suite runs as root or as that owner.
    shutil.rmtree(path, ignore_errors=True)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def test_postgres_data_persists_across_restart_without_initdb(data_dir: Path) -> None:
    messages: list[str] = []
    pg = EmbeddedPostgres(data_dir, log=messages.append)
    try:
        url = pg.start()
        assert url.startswith("postgresql+psycopg://postgres:") and "@127.0.0.1:" in url and url.endswith("/medbill")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(psycopg.OperationalError):  # the generated password is required
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="medbill", connect_timeout=3)
        assert stat.S_IMODE((data_dir / "postgres" / "password").stat().st_mode) == 0o600
        with psycopg.connect(_plain(url)) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            system_id = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
            conn.execute("CREATE TABLE claim (id int PRIMARY KEY, payer text)")
            conn.execute("INSERT INTO claim VALUES (1, 'Acme Health')")
        pg.stop()
        pg.stop()  # idempotent
        assert any("Initialising" in m for m in messages)

        messages.clear()
        url = pg.start()
        with psycopg.connect(_plain(url)) as conn:
            assert conn.execute("SELECT payer FROM claim WHERE id = 1").fetchone() == ("Acme Health",)
            # Same cluster identity: initdb did not run again.
            assert conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone() == system_id
        assert not any("Initialising" in m for m in messages)

        cluster = data_dir / "postgres" / "cluster"
        assert stat.S_IMODE(cluster.stat().st_mode) == 0o700
        if os.geteuid() == 0:
            assert cluster.stat().st_uid != 0, "PostgreSQL cluster must belong to the system user, not root"
    finally:
        pg.stop()


def test_valkey_key_persists_across_restart(data_dir: Path) -> None:
    valkey = EmbeddedValkey(data_dir, log=lambda _msg: None)
    try:
        url = valkey.start()
        assert url.startswith("redis://:") and "@127.0.0.1:" in url and url.endswith("/0")
        client = redis.Redis.from_url(url)
        client.set("medbill:test", "persisted")
        client.close()
        valkey.stop()
        valkey.stop()  # idempotent
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()

        client = redis.Redis.from_url(valkey.start())
        assert client.get("medbill:test") == b"persisted"
        client.close()
        assert (data_dir / "valkey" / "appendonlydir").is_dir()
    finally:
        valkey.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="the system-user reachability check only applies to root")
def test_unreachable_data_dir_is_refused_without_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = Path(tempfile.mkdtemp(prefix="medbill-private-"))  # mode 0700, deliberately left as is
    # The only cluster home allowed is behind the same 0700 directory: nowhere the system user can reach is left.
    monkeypatch.setenv("MEDBILL_PG_CLUSTER_HOME", str(parent / "pg-home"))
    try:
        assert stat.S_IMODE(parent.stat().st_mode) == 0o700
        with pytest.raises(EmbeddedError) as excinfo:
            EmbeddedPostgres(parent / "var", log=lambda _msg: None).start()
        message = str(excinfo.value)
        assert str(parent) in message
        assert "0700" in message and "chmod o+x" in message
        assert stat.S_IMODE(parent.stat().st_mode) == 0o700
        assert not (parent / "var").exists()
        assert not (parent / "pg-home").exists()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_valkey_has_a_generated_password_kept_off_its_command_line(data_dir: Path) -> None:
    valkey = EmbeddedValkey(data_dir, log=lambda _msg: None)
    try:
        url = valkey.start()
        password = (data_dir / "valkey" / "password").read_text().strip()
        assert len(password) >= 24 and f":{password}@" in url
        assert stat.S_IMODE((data_dir / "valkey" / "password").stat().st_mode) == 0o600
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping()
        assert redis.Redis.from_url(url).ping()
        assert password.encode() not in Path(f"/proc/{valkey._proc.pid}/cmdline").read_bytes()
        valkey.stop()
        assert f":{password}@" in valkey.start()  # the same password on a later start
    finally:
        valkey.stop()
