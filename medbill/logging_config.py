"""Logging for every medbill process (web, worker, scheduler, CLI): one format, and no PHI or secrets in the output.

medbill's own code logs ids, never names, birth dates, member ids, passwords or tokens. Two safeguards cover what we
do not write ourselves: libraries that log request bodies or SQL parameters at INFO/DEBUG (SQLAlchemy, botocore,
urllib3, paramiko, ...) are held at WARNING whatever the configured level, and the formatter masks bearer tokens,
medbill token secrets, password/secret fields, query strings and SQLAlchemy's "[parameters: ...]" in exceptions."""

from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries whose DEBUG/INFO output can carry SQL parameters, request/response bodies (837s, PDFs) or headers.
QUIET_LIBRARIES = (
    "sqlalchemy",
    "alembic",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "paramiko",
    "asyncssh",
    "pyx12",
    "fpdf",
    "fontTools",
    "matplotlib",
    "PIL",
)

_PATTERNS = (
    # Authorization headers and any medbill secret (mb_ tokens, ps_ portal session ids, pr_ password reset links:
    # a prefix and 43 url-safe characters).
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\b(mb|ps|pr)_[A-Za-z0-9_-]{8,}"), r"\1_[redacted]"),
    # key=value / "key": "value" forms of secrets.
    (
        re.compile(
            r"(?i)(password|passwd|secret|secret_key|aws_secret_access_key|token|access_token|csrf_token)"
            r"""(["']?\s*[:=]\s*["']?)[^"'&\s,}]+"""
        ),
        r"\1\2[redacted]",
    ),
    # SQLAlchemy appends the statement's bound values to exception messages; psycopg adds the offending key values.
    (re.compile(r"\[parameters: .*?\]\n?", re.S), "[parameters: redacted]\n"),
    (re.compile(r"(DETAIL:\s+Key \(.*?\)=)\(.*?\)"), r"\1(redacted)"),
    # Query strings (search terms can be names) in request lines such as werkzeug's.
    (re.compile(r'("(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) [^"?\s]*)\?[^"\s]*'), r"\1"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks secrets in the whole line, exception text included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def configure_logging(level: str | int = "INFO") -> None:
    """Idempotent: the root logger gets one redacting stream handler (or its existing handlers the redacting
    formatter), the level asked for, and the libraries above held at WARNING."""
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        # pytest's capture handlers keep their own formatters; everything else writes redacted lines.
        if type(handler).__module__.startswith("_pytest"):
            continue
        handler.setFormatter(RedactingFormatter(FORMAT))
    quiet_libraries()
    # RQ's worker logs each job's call (ids and slugs only in medbill) at INFO and its return value at DEBUG.
    logging.getLogger("rq").setLevel(max(logging.getLevelName(level) if isinstance(level, str) else level, 20))
