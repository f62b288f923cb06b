"""The sandbox as a service: run_sandbox in a thread with a real SFTP server on loopback, driven by paramiko."""

from __future__ import annotations

import io
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from integrations.sandbox import SandboxConfig, host_key_fingerprint, run_sandbox
from tests.sandbox.conftest import sample_837
from tests.sandbox.helpers import assert_balanced, assert_valid, read_835

ACCOUNTS = {"acme": "acme-s3cret", "beta": "beta-s3cret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        ready = threading.Event()
        self.thread = threading.Thread(target=run_sandbox, args=(config, self.stop), kwargs={"ready": ready})
        self.thread.start()
        assert ready.wait(20), "sandbox did not start"

    def connect(self, user: str, password: str) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
        transport = paramiko.Transport(("127.0.0.1", self.config.sftp_port))
        transport.connect()
        # Pin the host key before sending any credential, as medbill's transport does.
        assert transport.get_remote_server_key().fingerprint == host_key_fingerprint(self.config)
        transport.auth_password(user, password)
        return transport, paramiko.SFTPClient.from_transport(transport)


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Running]:
    config = SandboxConfig(root=tmp_path / "root", sftp_port=free_port(), accounts=dict(ACCOUNTS), poll_seconds=0.2)
    running = Running(config)
    try:
        yield running
    finally:
        running.stop.set()
        running.thread.join(10)


def wait_for(sftp: paramiko.SFTPClient, suffixes: set[str], timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = sftp.listdir("outbox")
        if all(any(n.endswith(s) for n in names) for s in suffixes):
            return names
        time.sleep(0.2)
    raise AssertionError(f"outbox never held {suffixes}: {names}")


def test_upload_process_download_and_stop(sandbox: Running, tmp_path: Path) -> None:
    transport, sftp = sandbox.connect("acme", ACCOUNTS["acme"])
    try:
        assert sorted(sftp.listdir("/")) == ["archive", "inbox", "outbox"]
        data = sample_837()
        sftp.putfo(io.BytesIO(data), "inbox/claims-001.837.part")
        time.sleep(0.5)  # a poll passes while the upload is still a .part: it must be left alone
        assert sftp.listdir("inbox") == ["claims-001.837.part"]
        sftp.rename("inbox/claims-001.837.part", "inbox/claims-001.837")

        names = wait_for(sftp, {".999", ".277ca", ".835"})
        local = tmp_path / "downloaded"
        local.mkdir()
        for name in names:
            sftp.get(f"outbox/{name}", str(local / name))
            assert_valid(local / name)
            if name.endswith(".835"):
                for remit in read_835(local / name):
                    assert_balanced(remit)
        assert "claims-001.999" in names and "claims-001.277ca" in names
        assert sftp.listdir("inbox") == []
        with sftp.open("archive/claims-001.837", "rb") as fh:
            assert fh.read() == data
        # A client may tidy its outbox the way medbill's transport does.
        sftp.mkdir("outbox/archive")
        sftp.rename("outbox/claims-001.999", "outbox/archive/claims-001.999")
    finally:
        sftp.close()
        transport.close()

    # Stopping with another session still open must not hang.
    transport2, sftp2 = sandbox.connect("acme", ACCOUNTS["acme"])
    started = time.monotonic()
    sandbox.stop.set()
    sandbox.thread.join(10)
    assert not sandbox.thread.is_alive()
    assert time.monotonic() - started < 5
    transport2.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", sandbox.config.sftp_port), timeout=1):
        pass


def test_accounts_are_chrooted_and_passwords_checked(sandbox: Running) -> None:
    t1, acme = sandbox.connect("acme", ACCOUNTS["acme"])
    t2, beta = sandbox.connect("beta", ACCOUNTS["beta"])
    try:
        acme.putfo(io.BytesIO(b"private to acme"), "outbox/secret.txt")
        assert (sandbox.config.root / "acme" / "outbox" / "secret.txt").exists()
        # Beta's "/" is its own directory; every way out lands back inside it.
        assert sorted(beta.listdir("/")) == ["archive", "inbox", "outbox"]
        assert beta.listdir("/..") == beta.listdir("/")
        assert beta.normalize("../../..") == "/"
        for path in ("/acme/outbox/secret.txt", "../acme/outbox/secret.txt", "/../acme/outbox/secret.txt"):
            with pytest.raises(OSError):
                beta.stat(path)
        with pytest.raises(OSError):
            beta.putfo(io.BytesIO(b"x"), "../acme/inbox/evil.837")
        with pytest.raises(OSError):
            beta.symlink(str(sandbox.config.root / "acme"), "inbox/link")
        assert not (sandbox.config.root / "acme" / "inbox" / "evil.837").exists()
        assert stat.S_ISDIR(beta.stat("/inbox").st_mode)
    finally:
        for client, transport in ((acme, t1), (beta, t2)):
            client.close()
            transport.close()

    for user, password in (("acme", "wrong"), ("nobody", "acme-s3cret"), ("beta", ACCOUNTS["acme"])):
        transport = paramiko.Transport(("127.0.0.1", sandbox.config.sftp_port))
        try:
            transport.connect()
            with pytest.raises(paramiko.AuthenticationException):
                transport.auth_password(user, password)
        finally:
            transport.close()


def test_host_key_is_persisted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    first = host_key_fingerprint(SandboxConfig(root=root))
    assert first.startswith("SHA256:") and len(first) == len("SHA256:") + 43
    assert host_key_fingerprint(SandboxConfig(root=root)) == first
    key_file = root / ".sandbox" / "ssh_host_ed25519_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    custom = tmp_path / "keys" / "host_key"
    other = host_key_fingerprint(SandboxConfig(root=root, host_key_path=custom))
    assert custom.exists() and other != first
