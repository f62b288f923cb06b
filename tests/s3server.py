"""Run moto's S3-compatible server as a separate process for tests that need a real HTTP endpoint."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except OSError:
        return False


def start_moto_server(timeout: float = 30.0) -> tuple[str, subprocess.Popen]:
    """Start ``python -m moto.server`` on a free loopback port; return (endpoint_url, process)."""
    last_error = ""
    # The port is free when picked but another process may grab it before moto binds; retry then.
    for _ in range(3):
        port = free_port()
        # A file rather than a pipe: nobody drains a pipe, and a full pipe would block the server.
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers_http(url + "/moto-api/"):
                log.close()
                return url, proc
            time.sleep(0.1)
        stop_moto_server(proc)
        log.seek(0)
        last_error = log.read().decode(errors="replace")[-2000:]
        log.close()
    raise RuntimeError(f"moto server did not start; last output:\n{last_error}")


def stop_moto_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
