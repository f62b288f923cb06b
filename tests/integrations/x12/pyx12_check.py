"""Test helper: validate an X12 file with pyx12 (the independent validator) and capture why it fails."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pyx12.params
import pyx12.x12n_document


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def pyx12_valid(path: Path | str) -> tuple[bool, str]:
    """pyx12's verdict and its logged warnings/errors (the CLI's exit code is always 1, so it is not used)."""
    logger = logging.getLogger("pyx12")
    capture = _Capture()
    previous_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.WARNING)
    try:
        param = pyx12.params.params()
        fd_997 = io.StringIO()
        ok = pyx12.x12n_document.x12n_document(param=param, src_file=str(path), fd_997=fd_997, fd_html=None)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(previous_level)
    return bool(ok), "\n".join(capture.messages)
