"""The sandbox as a running service: an SFTP server (asyncssh) in its own event-loop thread plus the inbox poller.

Owns:
- the host key: ``<root>/.sandbox/ssh_host_ed25519_key`` unless ``host_key_path`` says otherwise, generated on first
  use and kept (0600) so clients can pin ``host_key_fingerprint``;
- password authentication against ``SandboxConfig.accounts`` (constant-time comparison; no other method offered);
- a per-account chroot: an account's SFTP "/" is ``root/<account>`` (inbox/, outbox/, archive/); links are
  refused so nobody can point outside their own directory;
- ``run_sandbox``: blocking loop until ``stop`` is set, then closes the listener and open sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import threading
import warnings
from pathlib import Path

from cryptography.utils import CryptographyDeprecationWarning

from .config import SandboxConfig
from .processor import account_dirs, process_inbox_once
from .state import private_dir

# asyncssh's type aliases name cryptography's DSA classes, so importing it emits five "DSA is deprecated" warnings
# on every `medbill up` and test run. We never offer or accept DSA keys (ed25519 host key, password auth), so the
# warning says nothing about our code; hide exactly that category from asyncssh's own modules, only for the import.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module="asyncssh")
    import asyncssh

__all__ = ["host_key_fingerprint", "run_sandbox"]

log = logging.getLogger(__name__)
_KEY_LOCK = threading.Lock()


def _host_key_path(config: SandboxConfig) -> Path:
    return config.host_key_path or private_dir(config.root) / "ssh_host_ed25519_key"


def _host_key(config: SandboxConfig) -> asyncssh.SSHKey:
    path = _host_key_path(config)
    with _KEY_LOCK:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = asyncssh.generate_private_key("ssh-ed25519", comment="medbill sandbox clearinghouse")
            tmp = path.with_name(path.name + ".tmp")
            key.write_private_key(str(tmp))
            os.chmod(tmp, 0o600)
            # link() refuses to replace: if another process won the race, its key stays and is read below.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            os.unlink(tmp)
        return asyncssh.read_private_key(str(path))


def host_key_fingerprint(config: SandboxConfig) -> str:
    """``SHA256:<base64>`` of the server's host key (as OpenSSH prints it), creating the key if needed."""
    return _host_key(config).get_fingerprint("sha256")


class _SSHServer(asyncssh.SSHServer):
    def __init__(self, accounts: dict[str, str], connections: set[asyncssh.SSHServerConnection]) -> None:
        self._accounts = accounts
        self._connections = connections
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # always authenticate, whoever claims to be whom

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._accounts.get(username)
        if expected is None:
            hmac.compare_digest(password.encode(), password.encode())  # same work for unknown users
            return False
        return hmac.compare_digest(expected.encode(), password.encode())


class _ChrootSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path) -> None:
        username = chan.get_extra_info("username")
        home = account_dirs(root, username)
        super().__init__(chan, chroot=os.fsencode(home))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not allowed on this server")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not allowed on this server")


class _SftpThread:
    """asyncssh's listener on an event loop of its own, so the poller can stay plain blocking code."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.acceptor: asyncssh.SSHAcceptor | None = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sandbox-sftp", daemon=True)

    def start(self) -> None:
        self.thread.start()
        if not self.started.wait(30):
            raise RuntimeError("sandbox SFTP server did not start within 30 s")
        if self.error is not None:
            raise self.error

    async def _listen(self) -> None:
        config = self.config
        key = _host_key(config)
        accounts = dict(config.accounts)
        root = config.root
        self.acceptor = await asyncssh.listen(
            config.host,
            config.sftp_port,
            server_host_keys=[key],
            server_factory=lambda: _SSHServer(accounts, self.connections),
            sftp_factory=lambda chan: _ChrootSFTPServer(chan, root),
            allow_scp=False,
            reuse_address=True,
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._listen())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self.error = exc
            self.started.set()
            self.loop.close()
            return
        self.started.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

    async def _shutdown(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.acceptor.wait_closed(), 3)
        for conn in list(self.connections):
            conn.close()
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)
        tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def run_sandbox(config: SandboxConfig, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
    """Serve SFTP (when ``sftp_port`` is set) and poll the inboxes every ``poll_seconds`` until ``stop`` is set.

    ``ready`` (optional) is set once the SFTP listener accepts connections and the account directories exist.
    """
    config.root.mkdir(parents=True, exist_ok=True)
    for account in config.accounts:
        account_dirs(config.root, account)
    sftp = _SftpThread(config) if config.sftp_port is not None else None
    if sftp is not None:
        sftp.start()
        log.info("sandbox clearinghouse: SFTP on %s:%s, root %s", config.host, config.sftp_port, config.root)
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            try:
                process_inbox_once(config)
            except Exception:  # noqa: BLE001 - the sandbox keeps serving; the error is in the log
                log.exception("sandbox clearinghouse: pass failed")
            stop.wait(config.poll_seconds)
    finally:
        if sftp is not None:
            sftp.stop()
