"""Clearinghouse file exchange: how medbill moves files to and from a clearinghouse.

Owns:
- ``Transport``, the protocol jobs depend on: ``send`` a file into the clearinghouse inbox, ``fetch`` the complete
  files waiting in its outbox, ``archive`` a fetched file so it is not fetched again, ``check`` connectivity;
- two backends with the same semantics: ``SftpTransport`` (paramiko; production) and ``DirectoryTransport``
  (a local directory; sandbox and tests);
- ``transport_from_settings``, which picks the backend from a practice's clearinghouse settings;
- filename validation, and the error vocabulary: ``TransportError`` with ``.transient`` telling a job whether a
  retry can help (network, timeouts) or a person must act (authentication, host key, configuration).

Delivery rules shared by both backends: a file is uploaded as ``<name>.part`` and renamed when complete, so the
receiver never sees a partial file; an existing file is never overwritten (identical bytes count as an earlier
successful attempt; different bytes are an error); ``*.part`` files, dotfiles and directories in the outbox are not
files to fetch; fetched files are moved to ``<outbox>/archive/``.

SFTP security: the server's host key must match ``host_key_sha256`` (the ``SHA256:...`` fingerprint OpenSSH prints)
before any credential is sent. ``host_key_sha256="accept-any"`` skips the check and exists only for a loopback
sandbox; never configure it for a real clearinghouse.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import io
import logging
import os
import posixpath
import socket
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import paramiko

__all__ = [
    "ACCEPT_ANY_HOST_KEY",
    "ARCHIVE_DIR",
    "DirectoryTransport",
    "RemoteFile",
    "SftpTransport",
    "Transport",
    "TransportError",
    "host_key_fingerprint",
    "transport_from_settings",
    "validate_filename",
]

log = logging.getLogger(__name__)

ACCEPT_ANY_HOST_KEY = "accept-any"
ARCHIVE_DIR = "archive"
PART_SUFFIX = ".part"
MAX_FILENAME_LENGTH = 200

T = TypeVar("T")

# Errors that say the path or permissions are wrong: a retry gives the same answer, a person has to fix settings.
_PERMANENT_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR})


class TransportError(Exception):
    """Moving a file to or from the clearinghouse failed.

    ``transient`` is True when a retry may succeed (network, timeouts, a dropped connection) and False when it
    cannot until someone acts (authentication, host key, configuration, a conflicting file).

    The message (``str``) is for the server log: it may quote host keys, banners, server paths and exception text.
    ``public`` says what went wrong in words fit for the tenant whose connection it is (none of those).
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        host: str | None = None,
        path: str | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.host = host
        self.path = path
        self.public = public or "the file transfer failed (the details are in the server log)"


@dataclass(frozen=True)
class RemoteFile:
    name: str
    data: bytes


@runtime_checkable
class Transport(Protocol):
    def send(self, filename: str, data: bytes) -> None:
        """Deliver ``data`` as ``filename`` into the inbox, atomically for the receiver; never overwrite."""
        ...

    def fetch(self) -> list[RemoteFile]:
        """The complete files in the outbox, sorted by name."""
        ...

    def archive(self, name: str) -> None:
        """Move a fetched outbox file into ``<outbox>/archive/`` so it is not fetched again; idempotent."""
        ...

    def check(self) -> None:
        """Connect and list the inbox; raise ``TransportError`` if that fails."""
        ...


def validate_filename(name: str) -> str:
    """Return ``name`` if it is a plain file name safe to use on both sides; raise ValueError otherwise."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid clearinghouse filename {name!r}: must be a non-empty string")
    if len(name) > MAX_FILENAME_LENGTH:
        raise ValueError(f"invalid clearinghouse filename {name[:40]!r}...: longer than {MAX_FILENAME_LENGTH} chars")
    # Backslash too: some clearinghouse servers run on Windows, where it is a path separator.
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise ValueError(f"invalid clearinghouse filename {name!r}: contains '/', '\\', '..' or NUL")
    if name.startswith("."):
        raise ValueError(f"invalid clearinghouse filename {name!r}: starts with '.'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError(f"invalid clearinghouse filename {name!r}: contains control characters")
    # The receiver ignores *.part (they are uploads in progress), so such a file would never be picked up.
    if name.endswith(PART_SUFFIX):
        raise ValueError(f"invalid clearinghouse filename {name!r}: ends with {PART_SUFFIX!r}")
    return name


def _is_deliverable(name: str) -> bool:
    """Whether an outbox entry name is a complete file meant for us (not in progress, not hidden, usable)."""
    if name.startswith(".") or name.endswith(PART_SUFFIX):
        return False
    try:
        validate_filename(name)
    except ValueError:
        # We could not archive it either, so returning it would make every later fetch return it again.
        log.warning("clearinghouse outbox: skipping file with an unusable name %r", name)
        return False
    return True


def host_key_fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH-style ``SHA256:<base64, no padding>`` fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _normalize_fingerprint(value: str) -> str:
    if not value.startswith("SHA256:"):
        raise ValueError(f"host_key_sha256 must look like 'SHA256:<base64>' (as ssh-keygen -l prints), got {value!r}")
    body = value[len("SHA256:") :].strip().rstrip("=")
    try:
        digest = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"host_key_sha256 {value!r} is not valid base64") from exc
    if len(digest) != 32:
        raise ValueError(f"host_key_sha256 {value!r} is not a SHA-256 digest")
    return "SHA256:" + body


def _load_private_key(pem: str) -> paramiko.PKey:
    errors = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(pem))
        except paramiko.PasswordRequiredException as exc:
            raise ValueError("private_key is encrypted; configure an unencrypted key") from exc
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{key_class.__name__}: {exc}")
    raise ValueError("private_key is not a readable Ed25519, ECDSA or RSA private key (" + "; ".join(errors) + ")")


# --------------------------------------------------------------------------------------------------- SFTP


class SftpTransport:
    """The clearinghouse over SFTP. Each call opens and closes its own connection: jobs are short and may run in
    forked workers, where a shared paramiko transport (with its own thread) would not survive."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        *,
        username: str,
        password: str | None = None,
        private_key: str | None = None,
        host_key_sha256: str | None = None,
        inbox: str = "inbox",
        outbox: str = "outbox",
        timeout: float = 15.0,
    ) -> None:
        if not host:
            raise ValueError("host is required")
        if not username:
            raise ValueError("username is required")
        if password is None and private_key is None:
            raise ValueError("password or private_key is required")
        if not inbox or not outbox:
            raise ValueError("inbox and outbox must be non-empty paths")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.host = host
        self.port = int(port)
        self.username = username
        self.inbox = inbox.rstrip("/") or "/"
        self.outbox = outbox.rstrip("/") or "/"
        self.timeout = float(timeout)
        self._password = password
        # Parsed now so a bad key is a settings error at construction, not a failure inside a job.
        self._pkey = _load_private_key(private_key) if private_key is not None else None
        if host_key_sha256 is None or host_key_sha256 == ACCEPT_ANY_HOST_KEY:
            self._host_key = host_key_sha256
        else:
            self._host_key = _normalize_fingerprint(host_key_sha256)

    def __repr__(self) -> str:
        # No credentials in reprs: they end up in logs and job results.
        return f"SftpTransport(host={self.host!r}, port={self.port}, username={self.username!r})"

    @property
    def _where(self) -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}"

    # -- connection

    def _fail(
        self, action: str, path: str | None, detail: str, *, transient: bool, public: str | None = None
    ) -> TransportError:
        at = f"{self._where}/{path.lstrip('/')}" if path else self._where
        # The tenant's own settings (user, host, port) and our words only: never the server's answer.
        said = f"{action} at {self._where} failed: {public or 'the connection failed'}"
        return TransportError(
            f"clearinghouse {action} failed at {at}: {detail}", transient=transient, host=self.host, path=path,
            public=said,
        )  # fmt: skip

    def _map(self, action: str, path: str | None, exc: BaseException) -> TransportError:
        if isinstance(exc, paramiko.AuthenticationException):
            return self._fail(
                action, path, f"authentication rejected for user {self.username!r}: {exc}", transient=False,
                public="the server rejected the credentials",
            )  # fmt: skip
        if isinstance(exc, socket.gaierror):
            # An unknown name is a settings problem; other resolver errors (EAI_AGAIN) are outages.
            return self._fail(
                action, path, f"cannot resolve host: {exc}", transient=exc.errno != socket.EAI_NONAME,
                public="the host name could not be resolved",
            )  # fmt: skip
        if isinstance(exc, TimeoutError):
            return self._fail(
                action, path, f"timed out after {self.timeout:g}s", transient=True, public="could not connect"
            )
        if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
            return self._fail(
                action, path, f"{exc.strerror or exc}", transient=False,
                public="the server refused the file operation (a missing directory or no permission)",
            )  # fmt: skip
        detail = str(exc) or type(exc).__name__
        # Refused, reset, a banner that is not SSH: one answer, so that the worker is no port scanner.
        return self._fail(action, path, f"{type(exc).__name__}: {detail}", transient=True, public="could not connect")

    def _verify_host_key(self, key: paramiko.PKey) -> None:
        presented = host_key_fingerprint(key)
        if self._host_key == ACCEPT_ANY_HOST_KEY:
            log.warning("clearinghouse %s: host key NOT verified (accept-any); presented %s", self._where, presented)
            return
        if self._host_key is None:
            raise self._fail(
                "connect",
                None,
                f"no host_key_sha256 configured; refusing to authenticate. The server presented {presented}: "
                "confirm it with the clearinghouse out of band and set host_key_sha256",
                transient=False,
                public="no host key is pinned (host_key_sha256)",
            )
        if presented != self._host_key:
            raise self._fail(
                "connect",
                None,
                f"host key mismatch: expected {self._host_key}, server presented {presented}",
                transient=False,
                public="the server's host key did not match the pinned key",
            )

    @contextlib.contextmanager
    def _connect(self, action: str) -> Iterator[paramiko.SFTPClient]:
        sock: socket.socket | None = None
        transport: paramiko.Transport | None = None
        sftp: paramiko.SFTPClient | None = None
        try:
            try:
                # Our own socket: paramiko.Transport((host, port)) connects without any timeout.
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                transport = paramiko.Transport(sock)
                transport.banner_timeout = self.timeout
                transport.handshake_timeout = self.timeout
                transport.auth_timeout = self.timeout
                transport.start_client(timeout=self.timeout)
                # Before any credential leaves this process: an impostor must not learn the password.
                self._verify_host_key(transport.get_remote_server_key())
                if self._pkey is not None:
                    transport.auth_publickey(self.username, self._pkey)
                else:
                    transport.auth_password(self.username, self._password or "")
                sftp = paramiko.SFTPClient.from_transport(transport)
                if sftp is None:
                    raise paramiko.SSHException("server refused the SFTP subsystem")
                sftp.get_channel().settimeout(self.timeout)
            except TransportError:
                raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise self._map(action, None, exc) from exc
            yield sftp
        finally:
            for closable in (sftp, transport, sock):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        closable.close()

    def _call(self, action: str, path: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except TransportError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._map(action, path, exc) from exc

    # -- remote file helpers (paths are POSIX on the server)

    def _exists(self, sftp: paramiko.SFTPClient, path: str) -> bool:
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._map("stat", path, exc) from exc
        return True

    def _read(self, sftp: paramiko.SFTPClient, path: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        buf = io.BytesIO()
        try:
            sftp.getfo(path, buf)
        except FileNotFoundError:
            return None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._map("download", path, exc) from exc
        return buf.getvalue()

    def _same_or_refuse(self, path: str, existing: bytes, data: bytes) -> None:
        if existing != data:
            raise self._fail(
                "send",
                path,
                f"a different file with this name is already there ({len(existing)} bytes, "
                f"ours {len(data)} bytes); refusing to overwrite",
                transient=False,
                public="a different file with this name is already on the server; it was not overwritten",
            )

    # -- Transport

    def send(self, filename: str, data: bytes) -> None:
        validate_filename(filename)
        target = posixpath.join(self.inbox, filename)
        part = target + PART_SUFFIX
        with self._connect("send") as sftp:
            existing = self._read(sftp, target)
            if existing is not None:
                # An earlier attempt got through (its acknowledgement was lost) or it is a conflict.
                self._same_or_refuse(target, existing, data)
                return
            # confirm=True stats the upload and checks its size before we publish it by renaming.
            self._call("upload", part, sftp.putfo, io.BytesIO(data), part, len(data), None, True)
            try:
                # Plain SFTP rename, not posix-rename: it refuses to replace an existing target.
                sftp.rename(part, target)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                # A concurrent retry may have published the same file first; that is success if bytes match.
                existing = self._read(sftp, target)
                if existing is None:
                    raise self._map("rename", part, exc) from exc
                with contextlib.suppress(OSError):
                    sftp.remove(part)
                self._same_or_refuse(target, existing, data)

    def fetch(self) -> list[RemoteFile]:
        with self._connect("fetch") as sftp:
            entries = self._call("list", self.outbox, sftp.listdir_attr, self.outbox)
            files = []
            for entry in sorted(entries, key=lambda e: e.filename):
                if not _is_deliverable(entry.filename):
                    continue
                path = posixpath.join(self.outbox, entry.filename)
                mode = entry.st_mode
                if mode is None:  # some servers omit attributes in listings
                    try:
                        mode = sftp.stat(path).st_mode or 0
                    except FileNotFoundError:
                        continue
                if not stat.S_ISREG(mode):
                    continue
                data = self._read(sftp, path)
                if data is not None:  # None: archived by a concurrent job between listing and reading
                    files.append(RemoteFile(entry.filename, data))
            return files

    def archive(self, name: str) -> None:
        validate_filename(name)
        src = posixpath.join(self.outbox, name)
        archive_dir = posixpath.join(self.outbox, ARCHIVE_DIR)
        with self._connect("archive") as sftp:
            if not self._exists(sftp, archive_dir):
                try:
                    sftp.mkdir(archive_dir)
                except OSError as exc:
                    # Another job may have created it meanwhile; only fail if it is still missing.
                    if not self._exists(sftp, archive_dir):
                        raise self._map("mkdir", archive_dir, exc) from exc
            dst = posixpath.join(archive_dir, name)
            if not self._exists(sftp, src):
                if self._exists(sftp, dst):
                    return  # already archived
                raise self._fail("archive", src, "no such file in the outbox", transient=False)
            dst = self._archive_target(sftp, src, dst)
            if dst is None:
                return
            try:
                sftp.rename(src, dst)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if self._exists(sftp, src):
                    raise self._map("rename", src, exc) from exc
                # Gone from the outbox: a concurrent job archived it, which is what we wanted.

    def _archive_target(self, sftp: paramiko.SFTPClient, src: str, dst: str) -> str | None:
        """Where to move ``src``; None if the archive already holds the same bytes (then ``src`` is removed)."""
        if not self._exists(sftp, dst):
            return dst
        # The clearinghouse reused a file name. Same bytes: a copy we already have. Different: keep both.
        if self._read(sftp, dst) == self._read(sftp, src):
            self._call("remove", src, sftp.remove, src)
            return None
        n = 1
        while self._exists(sftp, f"{dst}.{n}"):
            n += 1
        return f"{dst}.{n}"

    def check(self) -> None:
        with self._connect("check") as sftp:
            self._call("list", self.inbox, sftp.listdir, self.inbox)


# ---------------------------------------------------------------------------------------------- Directory


class DirectoryTransport:
    """The clearinghouse as a local directory (sandbox, tests, or a share mounted on the worker)."""

    def __init__(self, root: Path, *, inbox: str = "inbox", outbox: str = "outbox") -> None:
        self.root = Path(root)
        self.inbox = self.root / inbox
        self.outbox = self.root / outbox

    def __repr__(self) -> str:
        return f"DirectoryTransport(root={str(self.root)!r})"

    def _fail(self, action: str, path: Path, exc: OSError) -> TransportError:
        # Missing paths and permissions need a person; other I/O errors (a flaky mount) may pass.
        transient = exc.errno not in _PERMANENT_ERRNOS
        return TransportError(
            f"clearinghouse {action} failed at {path}: {exc.strerror or exc}",
            transient=transient,
            host=None,
            path=str(path),
            public=f"{action} in the drop directory failed: {exc.strerror or 'an I/O error'}",
        )

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail("mkdir", path, exc) from exc

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail("read", path, exc) from exc

    def _refuse_if_different(self, path: Path, existing: bytes, data: bytes) -> None:
        if existing != data:
            raise TransportError(
                f"clearinghouse send failed at {path}: a different file with this name is already there "
                f"({len(existing)} bytes, ours {len(data)} bytes); refusing to overwrite",
                transient=False,
                path=str(path),
                public="a different file with this name is already in the drop directory; it was not overwritten",
            )

    def send(self, filename: str, data: bytes) -> None:
        validate_filename(filename)
        self._mkdir(self.inbox)
        target = self.inbox / filename
        part = self.inbox / (filename + PART_SUFFIX)
        existing = self._read(target)
        if existing is not None:
            self._refuse_if_different(target, existing, data)
            return
        try:
            with open(part, "wb") as fh:
                fh.write(data)
                fh.flush()
                # Durable before it becomes visible: the receiver may pick it up the moment it is renamed.
                os.fsync(fh.fileno())
            # Re-checked just before the rename; os.replace would otherwise overwrite a file published meanwhile.
            existing = self._read(target)
            if existing is not None:
                part.unlink(missing_ok=True)
                self._refuse_if_different(target, existing, data)
                return
            os.replace(part, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            raise self._fail("send", target, exc) from exc

    def fetch(self) -> list[RemoteFile]:
        self._mkdir(self.outbox)
        try:
            entries = sorted(os.scandir(self.outbox), key=lambda e: e.name)
        except OSError as exc:
            raise self._fail("list", self.outbox, exc) from exc
        files = []
        for entry in entries:
            if not _is_deliverable(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            data = self._read(Path(entry.path))
            if data is not None:  # None: archived by a concurrent job between listing and reading
                files.append(RemoteFile(entry.name, data))
        return files

    def archive(self, name: str) -> None:
        validate_filename(name)
        archive_dir = self.outbox / ARCHIVE_DIR
        self._mkdir(archive_dir)
        src = self.outbox / name
        dst = archive_dir / name
        if not src.exists():
            if dst.exists():
                return  # already archived
            raise TransportError(
                f"clearinghouse archive failed at {src}: no such file in the outbox", transient=False, path=str(src)
            )
        if dst.exists():
            # The clearinghouse reused a file name. Same bytes: a copy we already have. Different: keep both.
            if self._read(dst) == self._read(src):
                src.unlink(missing_ok=True)
                return
            n = 1
            while (archive_dir / f"{name}.{n}").exists():
                n += 1
            dst = archive_dir / f"{name}.{n}"
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            pass  # a concurrent job archived it first
        except OSError as exc:
            raise self._fail("archive", src, exc) from exc

    def check(self) -> None:
        self._mkdir(self.inbox)
        try:
            os.listdir(self.inbox)
        except OSError as exc:
            raise self._fail("list", self.inbox, exc) from exc


# ------------------------------------------------------------------------------------------------ settings


def _required(settings: Mapping[str, Any], key: str) -> Any:
    value = settings.get(key)
    if value in (None, ""):
        raise ValueError(f"clearinghouse settings: {key!r} is required for transport {settings.get('transport')!r}")
    return value


def transport_from_settings(settings: Mapping[str, Any]) -> Transport:
    """Build the transport a practice's clearinghouse settings describe (``settings["transport"]`` picks it)."""
    kind = settings.get("transport")
    dirs = {key: settings[key] for key in ("inbox", "outbox") if settings.get(key)}
    if kind == "sftp":
        port = settings.get("port") or 22
        try:
            port = int(port)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"clearinghouse settings: 'port' must be an integer, got {port!r}") from exc
        extra = {"timeout": float(settings["timeout"])} if settings.get("timeout") else {}
        return SftpTransport(
            _required(settings, "host"),
            port,
            username=_required(settings, "username"),
            password=settings.get("password"),
            private_key=settings.get("private_key"),
            host_key_sha256=settings.get("host_key_sha256"),
            **dirs,
            **extra,
        )
    if kind == "directory":
        return DirectoryTransport(Path(_required(settings, "path")), **dirs)
    raise ValueError(f"clearinghouse settings: unknown 'transport' {kind!r} (expected 'sftp' or 'directory')")
