"""Browser tests: the app runs as it does in production — `medbill web` (gunicorn) and `medbill worker` processes
against the test run's PostgreSQL, Redis and S3 — and Playwright drives Debian's Chromium against it, headless.
Each test's last page is saved as a screenshot under test-artifacts/screenshots/ (kept by CI as an artifact)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from redis import Redis

from tests.conftest import PASSWORD, PROJECT_ROOT
from tests.support.servers import other_redis_db, redis_base, redis_db

CHROMIUM = os.environ.get("MEDBILL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web process exited with {process.returncode} before answering")
        try:
            with HTTP.open(f"{url}/api/v1/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer /api/v1/health within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _live_env(env: dict[str, str]) -> dict[str, str]:
    """The test run's servers, but a Redis DB of the live app's own: its worker must not take the jobs that other
    tests enqueue and run with workers of their own (and the other way round)."""
    url = f"{redis_base()}/{other_redis_db(redis_db())}"
    Redis.from_url(url).flushdb()
    return env | {"REDIS_URL": url}


@pytest.fixture(scope="package")
def live_url(env, services, tmp_path_factory) -> Iterator[str]:
    """The portal's base URL, served by real `medbill web` and `medbill worker` processes (for this package's
    tests only: stopped when they are done)."""
    env = _live_env(env)
    port = _free_port()
    logs = tmp_path_factory.mktemp("live-logs")
    web_log = open(logs / "web.log", "w")  # noqa: SIM115 (open for the processes' lifetime)
    worker_log = open(logs / "worker.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "medbill.cli", "web", "--port", str(port), "--processes", "2"],
        env=env, cwd=PROJECT_ROOT, stdout=web_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "medbill.cli", "worker"], env=env, cwd=PROJECT_ROOT, stdout=worker_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, web)
        yield url
    finally:
        _stop(web)
        _stop(worker)
        web_log.close()
        worker_log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium (.ci/run does) or set MEDBILL_CHROMIUM"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser, live_url: str, request) -> Iterator[Page]:
    context = browser.new_context(base_url=live_url, accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        finally:
            context.close()


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
