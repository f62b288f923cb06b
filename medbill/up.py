"""`medbill up`: run the whole service on one machine.

Starts (or uses, when configured) PostgreSQL, a Redis-compatible server and object storage, migrates, seeds the
demo on first start, then runs the web app, the RQ workers and the scheduler as child processes and supervises
them until Ctrl-C / SIGTERM, when it stops everything it started.

Layout under the data directory (``MEDBILL_DATA_DIR``, default ``./var``), besides what medbill.embedded owns
(``postgres/``, ``valkey/``):

* ``storage/``: local object storage (unless S3 is configured);
* ``logs/<name>.log``: output of each child process (``web``, ``worker-1``..., ``scheduler``);
* ``run/up.lock``: held while a ``medbill up`` runs on this data directory (one at a time);
* ``run/children.json``: pids of the running children, so a start after a crash (``kill -9``) can stop the
  children the crashed run left behind;
* ``secret_key``: the generated secret (unless ``MEDBILL_SECRET_KEY`` is set).

Children run in their own sessions: a Ctrl-C in the terminal reaches only this process, which then stops them in
order (web, scheduler, workers, then Valkey, then PostgreSQL).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from medbill.config import Settings
from medbill.demo_billing import SANDBOX_ACCOUNT, SANDBOX_SECRET
from medbill.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedValkey

__all__ = ["run_up"]

HOST = "127.0.0.1"
HEALTH_PATH = "/api/v1/health"
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# A child that dies is started again after 1, 2, 4… s; one that dies this often within RESTART_WINDOW is a crash loop
# (a broken install, a bad setting) and stops the run instead.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# How often the supervisor checks that the embedded PostgreSQL and Valkey still answer.
SERVER_CHECK_SECONDS = 3.0
WEB_PROCESSES = 2
_LOG_TAIL_LINES = 25
# urllib without proxies: a developer's HTTP(S)_PROXY must not intercept requests to our own loopback server.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class UpError(Exception):
    """A start-up problem with a message for the operator (no traceback)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class _Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP arrived: unwind to the shutdown code. BaseException, like KeyboardInterrupt, so that
    no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str = "") -> None:
    print(message, flush=True)


@dataclass
class _Child:
    name: str
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    log_offset: int = 0
    restarts: list[float] = field(default_factory=list)


@dataclass
class _Stack:
    """Everything this run started, in start order; stopped in reverse."""

    postgres: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    children: list[_Child] = field(default_factory=list)
    # What the children are started with, kept so that the supervisor can start one again the same way.
    child_env: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None


# ------------------------------------------------------------------------------------------------ entry point


def run_up(settings: Settings, *, port: int, workers: int, demo: bool) -> int:
    """Start everything, supervise until a signal or a child's death, stop everything; return the exit code."""
    stack = _Stack()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        with _single_run(settings.data_dir):
            try:
                code = _start_and_supervise(settings, port=port, workers=workers, demo=demo, stack=stack)
            except _Interrupted as exc:
                say(f"\nReceived {signal.Signals(exc.signum).name}, stopping.")
                code = 0
            except (UpError, EmbeddedError) as exc:
                say(f"error: {exc}")
                code = exc.code if isinstance(exc, UpError) else 2
            finally:
                # A second Ctrl-C must not abort the shutdown half-way (children would be left running).
                for sig in previous:
                    signal.signal(sig, _while_stopping)
                if not _shutdown(stack):
                    code = code or 1
    except UpError as exc:  # from _single_run: nothing was started
        say(f"error: {exc}")
        code = exc.code
    except _Interrupted:  # arrived before anything was started
        code = 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("medbill stopped." if code == 0 else f"medbill stopped (exit code {code}).")
    return code


def _on_signal(signum, _frame) -> None:
    raise _Interrupted(signum)


def _while_stopping(signum, _frame) -> None:
    say(f"Received {signal.Signals(signum).name} while stopping; still stopping, please wait.")


def _start_and_supervise(settings: Settings, *, port: int, workers: int, demo: bool, stack: _Stack) -> int:
    if workers < 0:
        raise UpError("--workers must be 0 or more", code=2)
    data_dir = settings.data_dir
    _stop_stale_children(data_dir)
    reservation = _reserve_port(port)
    try:
        settings = (
            settings.ensure_secret_key()
            .ensure_secrets_key()  # before DATABASE_URL is set: the embedded default keeps its key in the data dir
            .with_(public_url=f"http://{HOST}:{port}", secure_cookies=False)
        )
        if settings.s3_bucket is None:
            # 0700 when we create it: stored files (imports, statements) hold patient data. Must exist before the
            # first health check, which checks the local storage root.
            (data_dir / "storage").mkdir(mode=0o700, parents=True, exist_ok=True)

        database_url = settings.database_url
        if database_url is None:
            stack.postgres = EmbeddedPostgres(data_dir, log=say)
            database_url = stack.postgres.start()
            stack.postgres.port = _url_port(database_url)  # a restart comes back where the children look
        redis_url = settings.redis_url
        if redis_url is None:
            stack.valkey = EmbeddedValkey(data_dir, log=say)
            # Valkey runs in our process group (medbill.embedded starts it), so a terminal Ctrl-C would reach it
            # too and stop it under the running workers. The blocked-signal mask survives exec: it ignores the
            # terminal's SIGINT and is stopped by us, in order, with SIGTERM.
            redis_url = _start_valkey(stack.valkey)
            stack.valkey.port = _url_port(redis_url)
        else:
            _check_redis(redis_url)
        settings = settings.with_(database_url=database_url, redis_url=redis_url)

        sandbox = _sandbox_setup(settings)
        logins = _prepare_database(settings, demo=demo, sandbox=sandbox)
    finally:
        reservation.close()

    _start_children(settings, port=port, workers=workers, stack=stack, sandbox=sandbox)
    _wait_healthy(port, stack)
    _banner(settings, port=port, stack=stack, logins=logins)
    _submit_sandbox_claims(settings, sandbox)
    return _supervise(stack)


# ------------------------------------------------------------------------------------------------- checks


@contextlib.contextmanager
def _single_run(data_dir: Path) -> Iterator[None]:
    """One `medbill up` per data directory, held with an flock the kernel releases however we exit."""
    run_dir = data_dir / "run"
    try:
        if not data_dir.exists():
            data_dir.mkdir(parents=True)
            # Explicit, whatever the umask: the PostgreSQL system user (when we are root) must traverse it.
            data_dir.chmod(0o755)
        run_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise UpError(f"cannot create the data directory {data_dir}: {exc}", code=2) from exc
    with open(run_dir / "up.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise UpError(
                f"another `medbill up` (pid {holder}) is already running on {data_dir}; stop it first", code=2
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            (run_dir / "children.json").unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reserve_port(port: int) -> socket.socket:
    """Fail early if the web port is taken, and hold it so the embedded servers' free-port picks cannot take it.
    SO_REUSEADDR like gunicorn's own bind, so connections of an earlier run in TIME_WAIT do not count as in use."""
    if not 0 < port < 65536:
        raise UpError(f"--port must be between 1 and 65535, not {port}", code=2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise UpError(
            f"port {port} on {HOST} is already in use ({exc.strerror}); choose another with --port", code=2
        ) from exc
    return sock


def _check_redis(url: str) -> None:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5).ping()
    except RedisError as exc:
        raise UpError(f"cannot reach Redis at {_redact(url)} (REDIS_URL): {exc}") from exc


def _redact(url: str) -> str:
    """A URL fit for the terminal: the password replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show only the scheme and host part after any credentials
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


# ----------------------------------------------------------------------------------------------- database


def _prepare_database(settings: Settings, *, demo: bool, sandbox: SandboxSetup):
    from sqlalchemy.exc import SQLAlchemyError

    from medbill.demo import demo_claim_summary, demo_logins, demo_present, seed_demo
    from medbill.services import make_storage
    from tenants.db import Database
    from tenants.migrate import migrate_all

    # Four: the demo seed generates its practices' histories side by side (see medbill.demo).
    db = Database(settings.database_url, pool_size=4)
    try:
        say("Migrating the database.")
        report = migrate_all(db.engine, progress=say)
        if report.shared_from != report.shared_to:
            say(f"Shared schema: {report.shared_from or 'empty'} -> {report.shared_to}.")
        if not demo:
            logins = demo_logins() if demo_present(db) else ()
        elif demo_present(db):
            say("demo data already present (not seeding again).")
            # Completes parts added to the demo since it was seeded.
            logins = seed_demo(db, make_storage(settings), progress=say).logins
        else:
            say("Seeding demo data (first start; a year of history takes about a minute).")
            started = time.monotonic()
            result = seed_demo(db, make_storage(settings), progress=say)
            say(f"Demo data seeded in {time.monotonic() - started:.0f} s.")
            if not result.created:
                say("demo data already present (not seeding again).")
            else:
                say(demo_claim_summary(db))
            logins = result.logins
        sandbox.practices = _connect_to_sandbox(db, sandbox, settings)
        return logins
    except SQLAlchemyError as exc:
        first_line = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
        raise UpError(f"database {_redact(settings.database_url)}: {first_line}") from exc
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------------------- sandbox


@dataclass
class SandboxSetup:
    """The sandbox clearinghouse `medbill up` runs for the demo: SFTP on loopback, one account."""

    root: Path
    port: int
    password: str
    fingerprint: str
    practices: list[str] = field(default_factory=list)


def _sandbox_setup(settings: Settings) -> SandboxSetup:
    from integrations.sandbox import SandboxConfig
    from integrations.sandbox.server import host_key_fingerprint

    root = settings.data_dir / "sandbox"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = settings.data_dir / "sandbox_password"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18))
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    fingerprint = host_key_fingerprint(SandboxConfig(root=root))  # creates the host key on first use
    return SandboxSetup(root=root, port=port, password=secret.read_text().strip(), fingerprint=fingerprint)


def _connect_to_sandbox(db, sandbox: SandboxSetup, settings: Settings) -> list[str]:
    """Point every practice set up for the sandbox at this run's port and host key, with the sandbox password
    stored as its company's secret (the workers are allowed this run's sandbox address, see _start_children)."""
    from billing.models import BillingIdentity
    from tenants import secrets as company_secrets
    from tenants.models import Practice

    with db.shared_session() as session:
        practices = list(session.execute(select(Practice.slug, Practice.company_id).where(Practice.status == "active")))
    connected, stored = [], set()
    for slug, company_id in practices:
        with db.tenant_session(slug) as session:
            identity = session.get(BillingIdentity, 1)
            if identity is None or not (identity.transport or {}).get("sandbox"):
                continue
            if company_id not in stored:
                try:
                    box = company_secrets.SecretBox.from_settings(settings)
                except company_secrets.SecretsUnavailable as exc:
                    raise UpError(f"the demo cannot store the sandbox password: {exc.message}") from exc
                company_secrets.put_secret(session, box, company_id, SANDBOX_SECRET, sandbox.password, user_id=None)
                stored.add(company_id)
            # password_env: demo data seeded before credentials became company secrets.
            kept = {k: v for k, v in identity.transport.items() if k != "password_env"}
            identity.transport = kept | {
                "port": sandbox.port, "host_key_sha256": sandbox.fingerprint, "password_secret": SANDBOX_SECRET,
            }  # fmt: skip
            session.commit()
            connected.append(slug)
    return connected


def _submit_sandbox_claims(settings: Settings, sandbox: SandboxSetup) -> None:
    """Send the demo practices' ready claims, so the demo shows them going out and coming back."""
    from jobs.queues import Dispatcher
    from medbill.services import make_redis

    dispatcher = Dispatcher(make_redis(settings))
    for slug in sandbox.practices:
        dispatcher.enqueue_now("submission", "jobs.submission.submit_claims", slug, None, None)
    if sandbox.practices:
        say(f"Submitting ready claims of {', '.join(sandbox.practices)} to the sandbox clearinghouse.")


# ------------------------------------------------------------------------------------------------ children


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        MEDBILL_SECRET_KEY=settings.secret_key,
        MEDBILL_DATA_DIR=str(settings.data_dir),
        MEDBILL_PUBLIC_URL=settings.public_url,
        # Plain http on loopback: a Secure cookie would never come back from the browser.
        MEDBILL_SECURE_COOKIES="false",
        PYTHONUNBUFFERED="1",
    )
    if settings.s3_bucket:
        env["S3_BUCKET"] = settings.s3_bucket
        for key, value in (("S3_ENDPOINT_URL", settings.s3_endpoint_url), ("S3_REGION", settings.s3_region)):
            if value:
                env[key] = value
    return env


def _url_port(url: str) -> int | None:
    from urllib.parse import urlsplit

    return urlsplit(url).port


def _start_valkey(valkey: EmbeddedValkey) -> str:
    # Valkey runs in our process group (medbill.embedded starts it), so a terminal Ctrl-C would reach it too and stop
    # it under the running workers. The blocked-signal mask survives exec: it ignores the terminal's SIGINT and is
    # stopped by us, in order, with SIGTERM.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return valkey.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _start_children(settings: Settings, *, port: int, workers: int, stack: _Stack, sandbox: SandboxSetup) -> None:
    logs = settings.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    logs.chmod(0o700)  # request logs and job errors can name patients
    # -P: the working directory is not put on sys.path, so a folder named `medbill` there (the parent of a clone)
    # cannot shadow the installed package in the children.
    cli = [sys.executable, "-P", "-m", "medbill.cli"]
    children = [
        _Child("web", [*cli, "web", "--host", HOST, "--port", str(port), "--processes", str(WEB_PROCESSES)],
               logs / "web.log"),
        *(_Child(f"worker-{i}", [*cli, "worker"], logs / f"worker-{i}.log") for i in range(1, workers + 1)),
        _Child("scheduler", [*cli, "scheduler"], logs / "scheduler.log"),
        _Child(
            "sandbox",
            # The account's password goes in the environment (MEDBILL_SANDBOX_ACCOUNTS): `ps` shows command lines.
            [*cli, "sandbox-clearinghouse", "--root", str(sandbox.root), "--sftp-port", str(sandbox.port)],
            logs / "sandbox.log",
        ),
    ]  # fmt: skip
    # This run's sandbox is an allowed clearinghouse host of the workers (billing.connections).
    allowed = ",".join([*settings.clearinghouse_hosts, f"{HOST}:{sandbox.port}"])
    env = _child_env(settings) | {
        "MEDBILL_CLEARINGHOUSE_HOSTS": allowed,
        "MEDBILL_SANDBOX_ACCOUNTS": f"{SANDBOX_ACCOUNT}:{sandbox.password}",
    }
    say(
        f"Starting web on {HOST}:{port}, {workers} worker(s), the scheduler and the sandbox clearinghouse "
        f"(SFTP {HOST}:{sandbox.port}; logs: {logs})."
    )
    stack.child_env = env
    stack.data_dir = settings.data_dir
    for child in children:
        stack.children.append(child)
        _spawn(child, stack)


def _spawn(child: _Child, stack: _Stack) -> None:
    child.log_offset = child.log_path.stat().st_size if child.log_path.exists() else 0
    with open(child.log_path, "ab") as log:
        log.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} medbill up starts {child.name}\n".encode())
        log.flush()
        child.proc = subprocess.Popen(
            child.cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=stack.child_env,
            start_new_session=True,  # own process group, no terminal: signals come from us only
        )
    _record_children(stack.data_dir, stack)


def _record_children(data_dir: Path, stack: _Stack) -> None:
    path = data_dir / "run" / "children.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"name": c.name, "pid": c.proc.pid} for c in stack.children if c.proc]))
    os.replace(tmp, path)


def _stop_stale_children(data_dir: Path) -> None:
    """Children of a run that died without stopping them (kill -9, power loss of the terminal): stop them now.
    Only processes whose command line is still a medbill process are touched (pids get recycled)."""
    path = data_dir / "run" / "children.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for entry in entries:
        pid = int(entry.get("pid", 0))
        if pid > 0 and _is_medbill_process(pid):
            say(f"Stopping {entry.get('name', 'process')} (pid {pid}) left running by an earlier medbill up.")
            _stop_group(pid, None)
    path.unlink(missing_ok=True)


def _is_medbill_process(pid: int) -> bool:
    try:
        return b"medbill.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _tail(child: _Child) -> str:
    try:
        with open(child.log_path, "rb") as fh:
            fh.seek(child.log_offset)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {child.log_path}: {exc})"
    lines = text.rstrip().splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join("    " + line for line in lines) if lines else "    (no output)"


def _died(stack: _Stack) -> _Child | None:
    return next((c for c in stack.children if c.proc is not None and c.proc.poll() is not None), None)


def _report_death(child: _Child, when: str) -> None:
    say(f"error: {child.name} exited {when} with code {child.proc.returncode}. Last lines of {child.log_path}:")
    say(_tail(child))


def _wait_healthy(port: int, stack: _Stack) -> None:
    url = f"http://{HOST}:{port}{HEALTH_PATH}"
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = "no answer"
    while True:
        dead = _died(stack)
        if dead is not None:
            _report_death(dead, "while starting")
            raise UpError(f"{dead.name} did not start; all logs are in {dead.log_path.parent}")
        status, body = _get(url)
        if status == 200:
            return
        if status is not None:
            last = f"HTTP {status}: {body.strip()[:300]}"
        if time.monotonic() > deadline:
            raise UpError(
                f"{url} did not answer 200 within {HEALTH_TIMEOUT:.0f}s (last: {last}); "
                f"logs are in {stack.children[0].log_path.parent}"
            )
        time.sleep(0.3)


def _get(url: str) -> tuple[int | None, str]:
    try:
        with _HTTP.open(url, timeout=3) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return None, ""


def _supervise(stack: _Stack) -> int:
    """Until Ctrl-C or SIGTERM: a child that dies is started again (with backoff; a crash loop stops the run), and
    an embedded server that stops answering is started again on its port, so that an outage of Redis or PostgreSQL
    is an outage of what needs it, not the end of the service."""
    next_check = time.monotonic() + SERVER_CHECK_SECONDS
    while True:
        dead = _died(stack)
        if dead is not None:
            _report_death(dead, "unexpectedly")
            if not _restart(dead, stack):
                say("Stopping everything.")
                return 1
        if time.monotonic() >= next_check:
            _revive_servers(stack)
            next_check = time.monotonic() + SERVER_CHECK_SECONDS
        time.sleep(0.5)


def _restart(child: _Child, stack: _Stack) -> bool:
    now = time.monotonic()
    child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW]
    if len(child.restarts) >= MAX_RESTARTS:
        say(f"error: {child.name} exited {len(child.restarts) + 1} times within {RESTART_WINDOW:.0f}s: not starting "
            "it again.")  # fmt: skip
        return False
    delay = 2 ** len(child.restarts)
    child.restarts.append(now)
    say(f"Starting {child.name} again in {delay}s (restart {len(child.restarts)} within {RESTART_WINDOW:.0f}s).")
    time.sleep(delay)
    _spawn(child, stack)
    return True


def _answers(port: int | None) -> bool:
    if port is None:
        return True
    try:
        with socket.create_connection((HOST, port), timeout=2):
            return True
    except OSError:
        return False


def _revive_servers(stack: _Stack) -> None:
    servers = (("Valkey (Redis)", stack.valkey, _start_valkey), ("PostgreSQL", stack.postgres, lambda pg: pg.start()))
    for name, server, start in servers:
        if server is None or _answers(server.port):
            continue
        say(f"{name} on port {server.port} does not answer: starting it again.")
        try:
            start(server)
        except (EmbeddedError, OSError) as exc:
            say(f"error: {name} did not start again ({exc}); trying again in {SERVER_CHECK_SECONDS:.0f}s.")
        else:
            say(f"{name} is back on port {server.port}.")


# ----------------------------------------------------------------------------------------------- shutdown


def _shutdown(stack: _Stack) -> bool:
    """Stop children (web first, so no new work arrives), then Valkey, then PostgreSQL. False if something failed."""
    ok = True
    running = [c for c in stack.children if c.proc is not None and c.proc.poll() is None]
    if running:
        say("Stopping " + ", ".join(c.name for c in running) + ".")
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            # SIGTERM to the leader only: gunicorn's master stops its workers gracefully and an RQ worker finishes
            # its current job (the job's own process would die at once if it got the signal directly).
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in running:
        _stop_group(child.proc.pid, child.proc, deadline=deadline)
    for child in stack.children:
        if child not in running and child.proc is not None:
            # Died on its own earlier; whatever it started in its group (RQ's scheduler process) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
    stack.children.clear()
    for server, name in ((stack.valkey, "Valkey"), (stack.postgres, "PostgreSQL")):
        if server is None:
            continue
        try:
            server.stop()
        except EmbeddedError as exc:
            say(f"error stopping {name}: {exc}")
            ok = False
    return ok


def _stop_group(pid: int, proc: subprocess.Popen | None, *, deadline: float | None = None) -> None:
    """Wait for a group leader to exit after SIGTERM (sent here if no deadline was set yet), SIGKILL the group if it
    overstays, and reap whatever the group still holds."""
    if deadline is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid, proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid, proc):
        say(f"pid {pid} did not stop within {STOP_TIMEOUT:.0f}s; killing its process group.")
    # The leader is gone or overstayed: anything left in its group (a stray grandchild) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()
    else:
        _wait_gone(pid, 5)


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _is_medbill_process(pid)  # a zombie or a recycled pid no longer runs medbill


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------- banner


def _banner(settings: Settings, *, port: int, stack: _Stack, logins) -> None:
    base = f"http://{HOST}:{port}"
    rule = "=" * 78
    database = "embedded PostgreSQL" if stack.postgres else "DATABASE_URL"
    redis = "embedded Valkey" if stack.valkey else "REDIS_URL"
    lines = [
        "",
        rule,
        "medbill is running",
        "",
        f"  Portal:    {base}/",
        f"  API docs:  {base}/api/docs",
        f"  Health:    {base}{HEALTH_PATH}",
        f"  Data dir:  {settings.data_dir}",
        f"  Logs:      {settings.data_dir / 'logs'}",
        f"  Database:  {database} ({_redact(settings.database_url)})",
        f"  Redis:     {redis} ({_redact(settings.redis_url)})",
        "  Storage:   "
        + (f"S3 bucket {settings.s3_bucket}" if settings.s3_bucket else f"local, {settings.data_dir / 'storage'}"),
    ]
    if logins:
        width = max(len(login.email) for login in logins)
        lines += ["", "  Demo logins (local evaluation only):"]
        lines += [
            f"    {login.role:<14} {login.email:<{width}}  password: {login.password}   ({login.scope})"
            for login in logins
        ]
    lines += ["", "Press Ctrl-C to stop.", rule, ""]
    say("\n".join(lines))
