"""The sandbox's memory between passes and restarts: one small JSON file, ``<root>/.sandbox/state.json``.

Owns:
- outbound control numbers (ISA13/GS06), payer claim numbers, check/EFT trace numbers and clearinghouse trace ids,
  all increasing and persisted so a restart never reuses one;
- per-member deductible already consumed, per payer;
- adjudicated claims by payer claim number (so a void or replacement can be reversed) and the duplicate index;
- remittances waiting for their ``remit_delay_seconds`` to pass.

``locked_state`` serialises access across threads and processes (``flock`` on ``.sandbox/lock``) and writes the
file atomically (temp + rename), so a crash mid-pass leaves the previous state intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SandboxState", "locked_state", "private_dir"]

_THREAD_LOCK = threading.RLock()
_VERSION = 1


def private_dir(root: Path) -> Path:
    """``<root>/.sandbox``: state, host key and temp files; a dot-name so it can never be an account."""
    path = root / ".sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


class SandboxState:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        data.setdefault("version", _VERSION)
        for counter in ("control_number", "payer_claim", "trace", "clearinghouse_trace"):
            data.setdefault(f"next_{counter}", 1)
        for table in ("deductible_used", "claims", "latest_by_pcn", "seen"):
            data.setdefault(table, {})
        data.setdefault("pending", [])

    def next(self, counter: str) -> int:
        key = f"next_{counter}"
        value = int(self.data[key])
        self.data[key] = value + 1
        return value

    @property
    def deductible_used(self) -> dict[str, str]:
        return self.data["deductible_used"]

    @property
    def claims(self) -> dict[str, dict[str, Any]]:
        return self.data["claims"]

    @property
    def latest_by_pcn(self) -> dict[str, str]:
        return self.data["latest_by_pcn"]

    @property
    def seen(self) -> dict[str, str]:
        return self.data["seen"]

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.data["pending"]


@contextlib.contextmanager
def locked_state(root: Path) -> Iterator[SandboxState]:
    """The state, locked for the duration of the block and saved when the block exits without an exception."""
    directory = private_dir(root)
    path = directory / "state.json"
    with _THREAD_LOCK, open(directory / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
            state = SandboxState(data)
            yield state
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(state.data, fh, indent=1, sort_keys=True)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
