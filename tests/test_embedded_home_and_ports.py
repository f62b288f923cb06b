"""The embedded servers as root under a private home, their stable ports, and the CLI finding them (issue 12).

Real bundled PostgreSQL and Valkey binaries, real subprocesses of the `medbill` CLI; nothing is mocked."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from medbill.embedded import EmbeddedPostgres, EmbeddedValkey

pytestmark = pytest.mark.timeout(180)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the PostgreSQL system user only exists when run as root")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def tmp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="medbill-embedded-"))
    os.chmod(path, 0o755)  # the test's own decision, so the system user can reach data dirs made under it
    yield path
    shutil.rmtree(path, ignore_errors=True)


@root_only
def test_root_keeps_the_cluster_of_a_private_data_dir_in_a_home_of_its_own(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_root / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # like /root: the system user cannot traverse it
    homes = tmp_root / "pg-homes"  # does not exist yet: medbill creates it
    monkeypatch.setenv("MEDBILL_PG_CLUSTER_HOME", str(homes))
    messages: list[str] = []
    first = EmbeddedPostgres(private / "clone" / "var", log=messages.append)
    second = EmbeddedPostgres(private / "other" / "var", log=messages.append)
    try:
        url = first.start()
        record = private / "clone" / "var" / "postgres" / "cluster_home"
        home = Path(record.read_text().strip())
        assert home.parent == homes and (home / "cluster" / "PG_VERSION").exists()
        assert any(str(home) in m and "cannot reach" in m for m in messages), messages
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # never loosened
        assert not (private / "clone" / "var" / "postgres" / "cluster").exists()
        with psycopg.connect(_plain(url)) as conn:
            system_id = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
            conn.execute("CREATE TABLE claim (id int PRIMARY KEY, payer text)")
            conn.execute("INSERT INTO claim VALUES (1, 'Acme Health')")
        first.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_plain(url), connect_timeout=2)

        # A new object (a restart of `medbill up`) finds the same cluster through the record.
        messages.clear()
        again = EmbeddedPostgres(private / "clone" / "var", log=messages.append)
        url = again.start()
        assert not any("Initialising" in m for m in messages)
        with psycopg.connect(_plain(url)) as conn:
            assert conn.execute("SELECT payer FROM claim WHERE id = 1").fetchone() == ("Acme Health",)
            assert conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone() == system_id

        other_url = second.start()
        other_home = Path((private / "other" / "var" / "postgres" / "cluster_home").read_text().strip())
        assert other_home != home and other_home.parent == homes
        with psycopg.connect(_plain(other_url)) as conn:
            assert conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone() != system_id
            assert conn.execute("SELECT to_regclass('claim')").fetchone() == (None,)
        assert _port(other_url) != _port(url)
        again.stop()
    finally:
        first.stop()
        second.stop()


def test_ports_are_recorded_reused_and_replaced_when_taken(tmp_root: Path) -> None:
    data_dir = tmp_root / "var"
    messages: list[str] = []

    def log(message: str) -> None:
        messages.append(message)

    pg = EmbeddedPostgres(data_dir, log=log)
    valkey = EmbeddedValkey(data_dir, log=log)
    try:
        pg_port, valkey_port = _port(pg.start()), _port(valkey.start())
        assert (data_dir / "postgres" / "port").read_text().strip() == str(pg_port)
        assert (data_dir / "valkey" / "port").read_text().strip() == str(valkey_port)
        pg.stop()
        valkey.stop()
        # New objects, as a new `medbill up` makes (stopped through them: Valkey is their child process).
        pg_again, valkey_again = EmbeddedPostgres(data_dir, log=log), EmbeddedValkey(data_dir, log=log)
        assert _port(pg_again.start()) == pg_port
        assert _port(valkey_again.start()) == valkey_port
        pg_again.stop()
        valkey_again.stop()

        # Another program took both ports meanwhile: said on the console, a new port chosen and recorded.
        squatters = []
        for port in (pg_port, valkey_port):
            sock = socket.socket()
            # The stopped servers leave the port in TIME_WAIT; a listening squatter still blocks them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
            squatters.append(sock)
        messages.clear()
        try:
            new_pg = _port(pg.start())
            new_valkey = _port(valkey.start())
        finally:
            for sock in squatters:
                sock.close()
        assert new_pg != pg_port and new_valkey != valkey_port
        assert any(f"port {pg_port}" in m and "taken by another program" in m for m in messages), messages
        assert any(f"port {valkey_port}" in m and "taken by another program" in m for m in messages), messages
        assert (data_dir / "postgres" / "port").read_text().strip() == str(new_pg)
        assert (data_dir / "valkey" / "port").read_text().strip() == str(new_valkey)
    finally:
        pg.stop()
        valkey.stop()


def _cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["MEDBILL_DATA_DIR"] = str(data_dir)
    return env


def _medbill(args: list[str], *, data_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medbill.cli", *args],
        env=_cli_env(data_dir), cwd=cwd, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_finds_the_embedded_servers_and_web_starts_beside_a_medbill_folder(tmp_root: Path) -> None:
    data_dir = tmp_root / "var"
    # The working directory holds a folder named `medbill` (as the parent of a clone does).
    workdir = tmp_root / "work"
    (workdir / "medbill").mkdir(parents=True)

    stopped = _medbill(["practices", "list"], data_dir=data_dir, cwd=workdir)
    assert stopped.returncode != 0
    # One line, no traceback (third-party warnings at import are another matter, not counted here).
    error_lines = [line for line in stopped.stderr.splitlines() if line.startswith("Error")]
    assert "Traceback" not in stopped.stderr, stopped.stderr
    assert len(error_lines) == 1 and "medbill up" in error_lines[0] and str(data_dir) in error_lines[0], stopped.stderr

    pg = EmbeddedPostgres(data_dir, log=lambda _m: None)
    valkey = EmbeddedValkey(data_dir, log=lambda _m: None)
    web = None
    try:
        pg.start()
        redis_url = valkey.start()
        migrated = _medbill(["migrate"], data_dir=data_dir, cwd=workdir)
        assert migrated.returncode == 0, migrated.stderr
        created = _medbill(["companies", "create", "acme", "--name", "Acme Billing"], data_dir=data_dir, cwd=workdir)
        assert created.returncode == 0, created.stderr
        practice = ["practices", "create", "riverside", "--name", "Riverside Clinic", "--company", "acme"]
        created = _medbill(practice, data_dir=data_dir, cwd=workdir)
        assert created.returncode == 0, created.stderr
        listed = _medbill(["practices", "list"], data_dir=data_dir, cwd=workdir)
        assert listed.returncode == 0, listed.stderr
        header, *rows = listed.stdout.splitlines()
        assert header.split()[:2] == ["slug", "company"]
        assert [row.split()[:3] for row in rows] == [["riverside", "acme", "active"]]

        # `medbill web` (gunicorn) from that directory: its workers find the package's root path and serve.
        (data_dir / "storage").mkdir(mode=0o700)  # the health check checks local storage (medbill up makes it)
        port = _free_port()
        log = tmp_root / "web.log"
        with open(log, "wb") as out:
            web = subprocess.Popen(
                [sys.executable, "-m", "medbill.cli", "web", "--port", str(port), "--processes", "1"],
                env=_cli_env(data_dir) | {"DATABASE_URL": pg.running_url(), "REDIS_URL": redis_url},
                cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        status = None
        deadline = time.monotonic() + 90
        while status is None and time.monotonic() < deadline and web.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=3) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.3)
        output = log.read_text(errors="replace")
        assert "root path" not in output, output[-3000:]
        assert status == 200, output[-3000:]
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=30)
        valkey.stop()
        pg.stop()
