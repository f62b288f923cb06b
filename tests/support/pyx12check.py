"""Validate an X12 file with pyx12 (the independent validator) and say why when it fails."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pyx12.params
import pyx12.x12n_document


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or "error" in record.getMessage().lower():
            self.messages.append(record.getMessage())


def pyx12_errors(path: Path) -> list[str]:
    """[] when pyx12 accepts the file; otherwise its messages (or a generic one)."""
    handler = _Collect()
    logger = logging.getLogger("pyx12")
    logger.addHandler(handler)
    try:
        ok = pyx12.x12n_document.x12n_document(
            param=pyx12.params.params(), src_file=str(path), fd_997=io.StringIO(), fd_html=None
        )
    finally:
        logger.removeHandler(handler)
    if ok:
        return []
    return handler.messages or ["pyx12 rejected the file"]
