"""A real SFTP server on loopback, in its own process, for tests of the clearinghouse transport.

Owns the test server only: ``start_sftp_server`` runs ``python -m tests.sftpserver`` (asyncssh, an SFTP subsystem
chrooted to a directory, password auth and optionally one authorized public key, a fresh host key per run) and
returns its port and host key fingerprint; ``stop_sftp_server`` ends it. Never used outside tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The password goes through the environment, not argv, so it does not show up in `ps` output.
_PASSWORD_ENV = "MEDBILL_TEST_SFTP_PASSWORD"


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_sftp_server(
    root: Path, username: str, password: str, *, client_public_key: str | None = None, timeout: float = 20.0
) -> tuple[int, str, subprocess.Popen]:
    """Serve ``root`` over SFTP on 127.0.0.1; return (port, host key "SHA256:..." fingerprint, process).

    ``client_public_key`` (OpenSSH one-line format) is also accepted for ``username`` when given.
    """
    args = [sys.executable, "-m", "tests.sftpserver", "--root", str(Path(root).resolve()), "--username", username]
    if client_public_key:
        args += ["--client-public-key", client_public_key]
    env = dict(os.environ, **{_PASSWORD_ENV: password})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    # stderr to a file: nobody drains a pipe, and a full pipe would block the server.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    line = b""
    deadline = time.monotonic() + timeout
    # The child binds port 0 and reports "<port> <fingerprint>" once listening, so no port race is possible.
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            break
    parts = line.decode().split()
    if len(parts) == 2 and parts[0].isdigit():
        port, fingerprint = int(parts[0]), parts[1]
        while time.monotonic() < deadline and proc.poll() is None:
            if _accepts_connections(port):
                log.close()
                return port, fingerprint, proc
            time.sleep(0.05)
    stop_sftp_server(proc)
    log.seek(0)
    output = log.read().decode(errors="replace")[-2000:]
    log.close()
    raise RuntimeError(f"SFTP test server did not start; stdout {line!r}; stderr:\n{output}")


def stop_sftp_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout):
        if stream:
            stream.close()


# ------------------------------------------------------------------------------------------ server process


async def _serve(root: Path, username: str, password: str, client_public_key: str | None) -> None:
    import warnings

    from cryptography.utils import CryptographyDeprecationWarning

    # asyncssh's import warns five times that DSA is deprecated (its type aliases name the DSA classes); this server
    # offers ed25519 only, so the warning is noise on the subprocess's stderr.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module="asyncssh")
        import asyncssh  # only the server process needs it

    authorized = asyncssh.import_public_key(client_public_key) if client_public_key else None

    class Server(asyncssh.SSHServer):
        def begin_auth(self, user: str) -> bool:
            return True  # always require authentication

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, user: str, given: str) -> bool:
            return hmac.compare_digest(user, username) and hmac.compare_digest(given.encode(), password.encode())

        def public_key_auth_supported(self) -> bool:
            return authorized is not None

        def validate_public_key(self, user: str, key: asyncssh.SSHKey) -> bool:
            return (
                authorized is not None
                and user == username
                and key.export_public_key("openssh").split()[:2] == authorized.export_public_key("openssh").split()[:2]
            )

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    chroot = os.fsencode(root)
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=Server,
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=chroot),
        allow_scp=False,
        login_timeout=10,
    )
    print(acceptor.get_port(), host_key.get_fingerprint("sha256"), flush=True)
    await acceptor.wait_closed()


def _exit_when_parent_goes() -> None:
    # The parent holds our stdin open; EOF means it is gone (or stopped us), so no orphaned server outlives a run.
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback SFTP server for tests")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--username", required=True)
    parser.add_argument("--client-public-key")
    args = parser.parse_args(argv)
    password = os.environ.get(_PASSWORD_ENV)
    if not password:
        parser.error(f"{_PASSWORD_ENV} must be set")
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    asyncio.run(_serve(args.root.resolve(), args.username, password, args.client_public_key))


if __name__ == "__main__":
    main()
