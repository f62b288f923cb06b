"""Sandbox clearinghouse: a stand-in for the outside world (a clearinghouse and its payers) for demos and
end-to-end tests.

It picks up 837P files that a client drops into ``root/<account>/inbox/`` (directly, or over SFTP where each
account is chrooted to ``root/<account>``), validates them (pyx12 plus its own checks), answers with a 999 and a
277CA (rejecting claims with realistic faults) in ``root/<account>/outbox/``, and later with an 835 adjudicated from
configurable payer behaviour. See ``integrations/sandbox/README.md`` for the file conventions and payer settings.

It shares no code with medbill's own X12 writer and parsers, on purpose: it is there to catch their mistakes.

Public entry points: ``SandboxConfig``, ``run_sandbox``, ``process_inbox_once``, ``host_key_fingerprint``,
``load_payers``, ``DEFAULT_PAYERS``, ``start_in_background``.
"""

from __future__ import annotations

import threading

from .config import DEFAULT_PAYERS, SandboxConfig, load_payers
from .processor import process_inbox_once
from .server import host_key_fingerprint, run_sandbox

__all__ = [
    "DEFAULT_PAYERS",
    "SandboxConfig",
    "host_key_fingerprint",
    "load_payers",
    "process_inbox_once",
    "run_sandbox",
    "start_in_background",
]


def start_in_background(config: SandboxConfig, *, timeout: float = 30.0) -> tuple[threading.Thread, threading.Event]:
    """Run the sandbox in a daemon thread (for ``medbill up``); returns (thread, stop). Set ``stop`` and join."""
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_sandbox(config, stop, ready=ready)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=target, name="sandbox-clearinghouse", daemon=True)
    thread.start()
    if not ready.wait(timeout):
        stop.set()
        raise RuntimeError("sandbox clearinghouse did not start in time")
    if errors:
        raise errors[0]
    return thread, stop
