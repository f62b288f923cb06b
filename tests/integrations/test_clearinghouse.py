"""Clearinghouse transports against a real SFTP server process (tests/sftpserver.py) and a real temp directory."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integrations.clearinghouse import (
    DirectoryTransport,
    RemoteFile,
    SftpTransport,
    Transport,
    TransportError,
    transport_from_settings,
    validate_filename,
)
from tests.sftpserver import free_port, start_sftp_server, stop_sftp_server

USERNAME = "acme"
PASSWORD = "s3cret-clearinghouse"
WRONG_FINGERPRINT = "SHA256:" + base64.b64encode(bytes(32)).decode().rstrip("=")


@dataclass(frozen=True)
class SftpServer:
    root: Path
    port: int
    fingerprint: str
    client_key_pem: str


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    import asyncssh  # the test server's library; the client side under test is paramiko

    client_key = asyncssh.generate_private_key("ssh-ed25519")
    root = tmp_path_factory.mktemp("sftp-root")
    port, fingerprint, proc = start_sftp_server(
        root, USERNAME, PASSWORD, client_public_key=client_key.export_public_key().decode()
    )
    try:
        yield SftpServer(root, port, fingerprint, client_key.export_private_key().decode())
    finally:
        stop_sftp_server(proc)


def _sftp(server: SftpServer, area: str, **overrides) -> SftpTransport:
    kwargs = dict(
        username=USERNAME,
        password=PASSWORD,
        host_key_sha256=server.fingerprint,
        inbox=f"{area}/inbox",
        outbox=f"{area}/outbox",
        timeout=5,
    )
    kwargs.update(overrides)
    return SftpTransport("127.0.0.1", server.port, **kwargs)


@dataclass(frozen=True)
class Setup:
    transport: Transport
    inbox: Path
    outbox: Path


@pytest.fixture(params=["directory", "sftp"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    if request.param == "directory":
        return Setup(DirectoryTransport(tmp_path), tmp_path / "inbox", tmp_path / "outbox")
    server: SftpServer = request.getfixturevalue("sftp_server")
    # Each test gets an area of its own under the one server's root.
    area = uuid.uuid4().hex
    (server.root / area / "inbox").mkdir(parents=True)
    (server.root / area / "outbox").mkdir(parents=True)
    return Setup(_sftp(server, area), server.root / area / "inbox", server.root / area / "outbox")


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------------------- both transports


def test_send_is_atomic_and_idempotent(setup: Setup) -> None:
    assert isinstance(setup.transport, Transport)
    data = b"ISA*00*...~GS*HC~" * 1000  # bigger than one SFTP packet

    setup.transport.send("claims-001.837", data)

    assert (setup.inbox / "claims-001.837").read_bytes() == data
    assert _listing(setup.inbox) == ["claims-001.837"]  # no .part left behind

    setup.transport.send("claims-001.837", data)  # a retry after a lost acknowledgement
    assert (setup.inbox / "claims-001.837").read_bytes() == data
    assert _listing(setup.inbox) == ["claims-001.837"]

    with pytest.raises(TransportError, match="refusing to overwrite") as info:
        setup.transport.send("claims-001.837", b"different bytes")
    assert info.value.transient is False
    assert "claims-001.837" in str(info.value)
    assert (setup.inbox / "claims-001.837").read_bytes() == data
    assert _listing(setup.inbox) == ["claims-001.837"]


def test_send_replaces_a_stale_part_file(setup: Setup) -> None:
    setup.inbox.mkdir(exist_ok=True)
    (setup.inbox / "b.837.part").write_bytes(b"half an upl")
    setup.transport.send("b.837", b"the whole upload")
    assert _listing(setup.inbox) == ["b.837"]
    assert (setup.inbox / "b.837").read_bytes() == b"the whole upload"


def test_fetch_and_archive(setup: Setup) -> None:
    setup.outbox.mkdir(exist_ok=True)
    (setup.outbox / "remit-b.835").write_bytes(b"B")
    (setup.outbox / "remit-a.835").write_bytes(b"A")
    (setup.outbox / "ack-c.999").write_bytes(b"")
    (setup.outbox / "remit-d.835.part").write_bytes(b"in progress")
    (setup.outbox / ".hidden").write_bytes(b"x")
    (setup.outbox / "subdir").mkdir()

    files = setup.transport.fetch()

    assert files == [RemoteFile("ack-c.999", b""), RemoteFile("remit-a.835", b"A"), RemoteFile("remit-b.835", b"B")]
    assert setup.transport.fetch() == files  # fetching alone does not consume

    for f in files:
        setup.transport.archive(f.name)
    setup.transport.archive("remit-a.835")  # twice is fine

    assert setup.transport.fetch() == []
    assert _listing(setup.outbox / "archive") == ["ack-c.999", "remit-a.835", "remit-b.835"]
    assert (setup.outbox / "archive" / "remit-a.835").read_bytes() == b"A"
    # What is not ours to take stays where it was.
    assert _listing(setup.outbox) == [".hidden", "archive", "remit-d.835.part", "subdir"]


def test_archive_keeps_a_reused_name(setup: Setup) -> None:
    (setup.outbox / "archive").mkdir(parents=True, exist_ok=True)
    (setup.outbox / "archive" / "daily.835").write_bytes(b"monday")
    (setup.outbox / "daily.835").write_bytes(b"tuesday")

    setup.transport.archive("daily.835")

    assert setup.transport.fetch() == []
    assert (setup.outbox / "archive" / "daily.835").read_bytes() == b"monday"
    assert (setup.outbox / "archive" / "daily.835.1").read_bytes() == b"tuesday"


def test_archive_of_an_unknown_file_fails(setup: Setup) -> None:
    with pytest.raises(TransportError, match="no-such.835") as info:
        setup.transport.archive("no-such.835")
    assert info.value.transient is False


def test_check(setup: Setup) -> None:
    setup.transport.check()


@pytest.mark.parametrize(
    "name", ["", "a/b", "../x", "x..y", "a\x00b", ".hidden", "x" * 201, "a\\b", "line\nbreak", "x.837.part"]
)
def test_bad_filenames_are_rejected(setup: Setup, name: str) -> None:
    with pytest.raises(ValueError):
        setup.transport.send(name, b"data")
    with pytest.raises(ValueError):
        setup.transport.archive(name)


def test_good_filenames() -> None:
    for name in ["x" * 200, "CLM_20260101.837", "a b.txt", "résumé.edi"]:
        assert validate_filename(name) == name


# ------------------------------------------------------------------------------------------------ SFTP only


def test_sftp_private_key_auth(sftp_server: SftpServer) -> None:
    area = uuid.uuid4().hex
    (sftp_server.root / area / "inbox").mkdir(parents=True)
    transport = _sftp(sftp_server, area, password=None, private_key=sftp_server.client_key_pem)
    transport.send("k.837", b"by key")
    assert (sftp_server.root / area / "inbox" / "k.837").read_bytes() == b"by key"


def test_sftp_wrong_password(sftp_server: SftpServer) -> None:
    with pytest.raises(TransportError, match="authentication") as info:
        _sftp(sftp_server, "x", password="wrong").check()
    assert info.value.transient is False
    assert "127.0.0.1" in str(info.value)
    assert "wrong" not in str(info.value)


def test_sftp_wrong_host_key_names_both_fingerprints(sftp_server: SftpServer) -> None:
    area = uuid.uuid4().hex
    (sftp_server.root / area / "inbox").mkdir(parents=True)
    with pytest.raises(TransportError) as info:
        _sftp(sftp_server, area, host_key_sha256=WRONG_FINGERPRINT).send("a.837", b"x")
    assert info.value.transient is False
    assert WRONG_FINGERPRINT in str(info.value)
    assert sftp_server.fingerprint in str(info.value)
    assert not any((sftp_server.root / area / "inbox").iterdir())


def test_sftp_without_host_key_is_refused(sftp_server: SftpServer) -> None:
    with pytest.raises(TransportError, match="host_key_sha256") as info:
        _sftp(sftp_server, "x", host_key_sha256=None).check()
    assert info.value.transient is False
    assert sftp_server.fingerprint in str(info.value)  # so an operator can compare it out of band


def test_sftp_accept_any_for_a_sandbox(sftp_server: SftpServer) -> None:
    area = uuid.uuid4().hex
    (sftp_server.root / area / "inbox").mkdir(parents=True)
    _sftp(sftp_server, area, host_key_sha256="accept-any").check()


def test_sftp_nobody_listening_is_transient() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        SftpTransport(
            "127.0.0.1", port, username=USERNAME, password=PASSWORD, host_key_sha256=WRONG_FINGERPRINT, timeout=2
        ).check()
    assert time.monotonic() - started < 3
    assert info.value.transient is True
    assert f"127.0.0.1:{port}" in str(info.value)


def test_sftp_silent_server_times_out_as_transient() -> None:
    # Accepts TCP connections (the kernel does it from the backlog) but never speaks SSH.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            SftpTransport(
                "127.0.0.1", port, username=USERNAME, password=PASSWORD, host_key_sha256=WRONG_FINGERPRINT, timeout=1
            ).check()
        assert time.monotonic() - started < 4
    assert info.value.transient is True


def test_sftp_missing_outbox_is_not_transient(sftp_server: SftpServer) -> None:
    with pytest.raises(TransportError, match="no-such-area/outbox") as info:
        _sftp(sftp_server, "no-such-area").fetch()
    assert info.value.transient is False


def test_sftp_constructor_validates_settings() -> None:
    with pytest.raises(ValueError, match="password or private_key"):
        SftpTransport("h", username="u", host_key_sha256=WRONG_FINGERPRINT)
    with pytest.raises(ValueError, match="host_key_sha256"):
        SftpTransport("h", username="u", password="p", host_key_sha256="ab:cd:ef")
    with pytest.raises(ValueError, match="private_key"):
        SftpTransport("h", username="u", private_key="not a key", host_key_sha256=WRONG_FINGERPRINT)
    assert "secret" not in repr(SftpTransport("h", username="u", password="secret", host_key_sha256="accept-any"))


# -------------------------------------------------------------------------------------------------- settings


def test_transport_from_settings_sftp(sftp_server: SftpServer) -> None:
    area = uuid.uuid4().hex
    (sftp_server.root / area / "in").mkdir(parents=True)
    transport = transport_from_settings(
        {
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": str(sftp_server.port),
            "username": USERNAME,
            "password": PASSWORD,
            "host_key_sha256": sftp_server.fingerprint,
            "inbox": f"{area}/in",
            "outbox": f"{area}/out",
        }
    )
    assert isinstance(transport, SftpTransport)
    transport.send("s.837", b"via settings")
    assert (sftp_server.root / area / "in" / "s.837").read_bytes() == b"via settings"


def test_transport_from_settings_directory(tmp_path: Path) -> None:
    transport = transport_from_settings(
        {"transport": "directory", "path": str(tmp_path / "acme"), "inbox": "to-ch", "outbox": "from-ch"}
    )
    assert isinstance(transport, DirectoryTransport)
    transport.send("d.837", b"via settings")
    assert (tmp_path / "acme" / "to-ch" / "d.837").read_bytes() == b"via settings"
    assert transport.fetch() == []
    assert (tmp_path / "acme" / "from-ch").is_dir()


def test_transport_from_settings_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="transport"):
        transport_from_settings({"transport": "ftp", "host": "h"})
    with pytest.raises(ValueError, match="transport"):
        transport_from_settings({})
    with pytest.raises(ValueError, match="'host'"):
        transport_from_settings({"transport": "sftp", "username": "u", "password": "p"})
    with pytest.raises(ValueError, match="'path'"):
        transport_from_settings({"transport": "directory"})
