"""What the fault tests share: real worker processes (started, killed with SIGKILL together with the work-horse RQ
forks for each job), a Redis server of their own that they can stop and start, and S3 object listings."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import boto3
from redis import Redis

from tests.conftest import PROJECT_ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_worker(env: dict[str, str], *queues: str, burst: bool = False, log: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "medbill.cli", "worker", *[a for q in queues for a in ("--queue", q)]]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [*args, *(["--burst"] if burst else [])], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT
    )


def burst(env: dict[str, str], *queues: str, timeout: float = 120) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "medbill.cli", "worker", "--burst", *[a for q in queues for a in ("--queue", q)]]
    run = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def descendants(pid: int) -> list[int]:
    """Processes under `pid` (RQ's work-horse runs in a process group of its own, so killpg alone misses it)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL a worker and everything it forked: nothing of it gets to clean up."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def wait_for(predicate, *, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def s3_keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


class RedisServer:
    """A redis-server process of the test's own on a fixed port, so it can be stopped and started again at the same
    address (the shared Redis of the machine is never touched). `appendonly` keeps queued jobs across a restart."""

    def __init__(self, workdir: Path, *, appendonly: bool) -> None:
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", ""]
        args += persistence
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10, what="redis-server to start")

    def _answers(self) -> bool:
        try:
            return bool(Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a crash, not a clean shutdown: only what the append-only file holds survives
            self.proc.wait(timeout=10)
        self.proc = None


class TcpProxy:
    """A loopback TCP forwarder on a fixed port: stopping it makes the endpoint behind it unreachable (connection
    refused) while the server behind keeps its data; starting it again on the same port brings the endpoint back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import threading

        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._conns += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            try:  # wakes the accepting thread (a close alone leaves the socket listening until accept returns)
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._conns = []
