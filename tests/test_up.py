"""`medbill up` end to end, as a user runs it: a subprocess on a free port and a fresh data directory, with nothing
configured, so it starts the embedded PostgreSQL and Valkey, migrates, seeds the demo, and serves HTTP. Then a
restart on the same data directory reuses everything."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from medbill.demo import DEMO_PASSWORD, demo_logins

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# No proxies: a developer's HTTP_PROXY must not intercept requests to the loopback server under test.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NEW_PATIENT = {
    "account_number": "UPTEST-1",
    "first_name": "Persis",
    "last_name": "Tent",
    "date_of_birth": "1970-05-06",
    "sex": "F",
    "address_line1": "12 Durable Way",
    "city": "Columbus",
    "state": "OH",
    "postal_code": "43215",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "MEDBILL_SECRET_KEY", "MEDBILL_PUBLIC_URL")
        and not k.startswith("S3_")
    }
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.update(MEDBILL_DATA_DIR=str(data_dir), PYTHONPATH=pythonpath)
    return env


def _request(port: int, method: str, path: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with HTTP.open(req, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _health(port: int) -> int | None:
    try:
        with HTTP.open(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _login(port: int, email: str) -> str:
    status, body = _request(port, "POST", "/api/v1/auth/token", {"email": email, "password": DEMO_PASSWORD})
    assert status == 200, body
    return body["access_token"]


class Up:
    """One `medbill up` subprocess with its output in a file."""

    def __init__(self, data_dir: Path, port: int, run: int, *args: str) -> None:
        self.port = port
        self.out_path = data_dir.parent / f"{data_dir.name}-up-{run}.out"
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "medbill.cli", "up", "--port", str(port), "--workers", "1", *args],
                env=_env(data_dir),
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while _health(self.port) != 200:
            assert self.proc.poll() is None, f"medbill up exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no healthy answer within {timeout}s:\n{self.output()}"
            time.sleep(0.5)
        # Healthy comes a moment before the banner is printed.
        while "Press Ctrl-C to stop." not in self.output():
            assert time.monotonic() < deadline, f"no banner within {timeout}s:\n{self.output()}"
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"medbill up did not stop within {timeout}s after {sig!r}:\n{self.output()}")


def _leftovers(data_dir: Path) -> list[str]:
    """Processes that still belong to this data directory: servers name it on their command line (postgres -D,
    valkey --dir), medbill's own children carry it in MEDBILL_DATA_DIR."""
    marker = str(data_dir)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.environ() if "medbill" in cmdline else {}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if marker in cmdline or environ.get("MEDBILL_DATA_DIR") == marker:
            found.append(f"{proc.info['pid']}: {cmdline}")
    return found


def _assert_all_stopped(up: Up, data_dir: Path) -> None:
    assert _health(up.port) is None, "the web port still answers"
    leftovers = []
    for _ in range(20):  # postgres backends may take a moment to vanish after the postmaster reported stopped
        leftovers = _leftovers(data_dir)
        if not leftovers:
            break
        time.sleep(0.25)
    assert not leftovers, "processes left running:\n" + "\n".join(leftovers)


def _kill_leftovers(data_dir: Path) -> None:
    """Last resort after a failed test: only processes that belong to this test's temporary data directory."""
    for line in _leftovers(data_dir):
        pid = int(line.split(":", 1)[0])
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


def _cmdline(proc: psutil.Process) -> str:
    # Any process on the machine: one may be a zombie, gone by now or another user's (other test runs share it).
    try:
        return " ".join(proc.cmdline() or [])
    except psutil.Error:
        return ""


def _assert_no_secret_on_a_command_line(up: Up, data_dir: Path) -> None:
    """The embedded servers require their generated passwords, and no process `medbill up` started (servers,
    children, their own children) shows one of its secrets on its command line, which `ps` shows to every user."""
    import psycopg

    secrets = {
        name: (data_dir / name).read_text().strip()
        for name in ("postgres/password", "valkey/password", "sandbox_password", "secret_key")
    }
    port = int((data_dir / "postgres" / "cluster" / "postmaster.pid").read_text().split()[3])
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="medbill", connect_timeout=3)
    processes = psutil.Process(up.proc.pid).children(recursive=True) + [
        p for p in psutil.process_iter() if str(data_dir) in _cmdline(p)
    ]
    assert len(processes) >= 5
    for proc in processes:
        try:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        leaked = [name for name, secret in secrets.items() if secret in cmdline]
        assert not leaked, f"{leaked} on the command line of pid {proc.pid}: {cmdline!r}"


@pytest.mark.timeout(300)
def test_up_starts_everything_seeds_demo_and_restarts_on_same_data() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="medbill-up-"))
    # mkdtemp makes a 0700 directory; when the suite runs as root, PostgreSQL runs as system user medbill-pg, which
    # must be able to traverse it to reach its cluster (/tmp itself is 1777). medbill never loosens this itself.
    os.chmod(data_dir, 0o755)
    port = _free_port()
    logins = {login.role: login for login in demo_logins()}
    running: list[Up] = []
    try:
        # -- first start: fresh data directory
        first = Up(data_dir, port, 1)
        running.append(first)
        first.wait_healthy()
        out = first.output()
        assert f"http://127.0.0.1:{port}/" in out and "/api/docs" in out, out
        assert logins["biller"].email in out and DEMO_PASSWORD in out, out
        # One line of how the seeded claims came out; its parts add up, and a year of history paid and denied some.
        (summary,) = re.findall(r"^demo: (\d+) claims — (\d+) paid, (\d+) denied, (\d+) rejected, (\d+) pending"
                                r"(?:, (\d+) not sent yet)?(?:, (\d+) closed)?$", out, re.M)  # fmt: skip
        total, paid, denied, *rest = (int(n or 0) for n in summary)
        assert total == paid + denied + sum(rest) and paid > 0 and denied > 0, summary
        _assert_no_secret_on_a_command_line(first, data_dir)

        token = _login(port, logins["biller"].email)
        status, practices = _request(port, "GET", "/api/v1/practices", token=token)
        assert status == 200, practices
        assert len(practices) == 3, practices
        assert {p["company"] for p in practices} == {"demo"}
        slug = "riverside_family"
        status, page = _request(port, "GET", f"/api/v1/practices/{slug}/patients?per_page=1", token=token)
        assert status == 200, page
        assert page["meta"]["total"] >= 40, page
        status, created = _request(port, "POST", f"/api/v1/practices/{slug}/patients", NEW_PATIENT, token=token)
        assert status == 201, created

        # The other roles work as seeded: a doctor sees their practice only, the agency only its placements.
        doctor = next(login for login in demo_logins() if login.role == "doctor" and login.practice == slug)
        status, practices = _request(port, "GET", "/api/v1/practices", token=_login(port, doctor.email))
        assert status == 200 and [p["slug"] for p in practices] == [slug], practices
        status, page = _request(
            port, "GET", f"/api/v1/practices/{slug}/patients", token=_login(port, logins["agency"].email)
        )
        # Three accounts placed by the seed, one more placed from the collection candidates by the demo's history.
        assert status == 200 and page["meta"]["total"] == 4, page

        assert first.stop(signal.SIGINT) == 0, first.output()
        running.remove(first)
        _assert_all_stopped(first, data_dir)
        assert "Initialising" in first.output() or "initdb" in first.output().lower(), first.output()

        # -- second start: same data directory, nothing seeded again, data still there
        second = Up(data_dir, port, 2)
        running.append(second)
        second.wait_healthy()
        assert "demo data already present" in second.output(), second.output()
        assert "claims — " not in second.output()  # the summary is the first start's
        token = _login(port, logins["company_admin"].email)
        status, page = _request(port, "GET", f"/api/v1/practices/{slug}/patients?q=UPTEST-1", token=token)
        assert status == 200, page
        assert [p["id"] for p in page["items"]] == [created["id"]], page
        status, page = _request(port, "GET", f"/api/v1/practices/{slug}/patients?per_page=1", token=token)
        assert page["meta"]["total"] == 41, page  # seeded once, plus ours

        assert second.stop(signal.SIGTERM) == 0, second.output()
        running.remove(second)
        _assert_all_stopped(second, data_dir)
    finally:
        for up in running:
            if up.proc.poll() is None:
                up.proc.send_signal(signal.SIGINT)
                try:
                    up.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    up.proc.kill()
                    up.proc.wait()
        _kill_leftovers(data_dir)
        for path in data_dir.parent.glob(f"{data_dir.name}-up-*.out"):
            path.unlink()
        # As root this removes the files owned by the PostgreSQL system user too.
        shutil.rmtree(data_dir, ignore_errors=True)


def _child_pid(data_dir: Path, name: str) -> int:
    return next(c["pid"] for c in json.loads((data_dir / "run" / "children.json").read_text()) if c["name"] == name)


def _wait(what: str, up: Up, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert up.proc.poll() is None, f"medbill up exited with {up.proc.returncode}:\n{up.output()}"
        assert time.monotonic() < deadline, f"{what} within {timeout}s:\n{up.output()}"
        time.sleep(0.5)


def test_up_survives_a_redis_outage_and_restarts_a_failed_child() -> None:
    """Valkey killed under `medbill up`: the service keeps answering (503 naming what is away), the supervisor
    starts Valkey again on its port and everything recovers without a restart: a job queued afterwards runs. A worker
    killed outright is started again."""
    from redis import Redis
    from rq import Queue

    data_dir = Path(tempfile.mkdtemp(prefix="medbill-up-faults-"))
    os.chmod(data_dir, 0o755)  # see the first test: PostgreSQL may run as medbill-pg
    port = _free_port()
    up = Up(data_dir, port, 1, "--no-demo")
    try:
        up.wait_healthy()
        valkey = json.loads((data_dir / "valkey" / "server.json").read_text())
        os.kill(int(valkey["pid"]), signal.SIGKILL)
        # While it is away the web answers (health names what is away) instead of hanging or exiting.
        seen: list[int | None] = []
        _wait("no answer from the web while Redis was away", up, lambda: seen.append(_health(port)) or seen[-1] == 503,
              timeout=20)  # fmt: skip
        _wait("Valkey was not started again", up, lambda: "Valkey (Redis) is back on port" in up.output())
        _wait("no healthy answer after Redis came back", up, lambda: _health(port) == 200)
        assert int(json.loads((data_dir / "valkey" / "server.json").read_text())["port"]) == int(valkey["port"])

        password = (data_dir / "valkey" / "password").read_text().strip()
        redis = Redis(host="127.0.0.1", port=int(valkey["port"]), password=password)
        job = Queue("default", connection=redis).enqueue("os.getpid")
        _wait("a job queued after the outage did not run", up, lambda: job.get_status(refresh=True) == "finished")

        worker = _child_pid(data_dir, "worker-1")
        os.kill(worker, signal.SIGKILL)
        _wait("the killed worker was not started again", up, lambda: _child_pid(data_dir, "worker-1") != worker)
        assert "worker-1 exited unexpectedly" in up.output() and "Starting worker-1 again" in up.output()
        job = Queue("default", connection=redis).enqueue("os.getpid")
        _wait("the restarted worker did not run a job", up, lambda: job.get_status(refresh=True) == "finished")
        assert up.proc.poll() is None
        assert up.stop() == 0
        _assert_all_stopped(up, data_dir)
    finally:
        if up.proc.poll() is None:
            up.stop(signal.SIGTERM)
        _kill_leftovers(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
