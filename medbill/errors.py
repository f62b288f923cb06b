"""Domain errors shared by every layer (services raise them, the API and portal turn them into responses), and what an
outage of an outside service looks like (answered 503 with Retry-After by both front ends)."""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses. `code` is stable and machine-readable; `message` is for people."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: dict | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        if code:
            self.code = code


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    """Input that is well-formed but wrong; `errors` maps field (or row/segment) to messages."""

    status = 422
    code = "invalid"


# What an outage of each outside service looks like from here, and what the caller is told. Answered 503 with
# Retry-After: the request did nothing that needs undoing (storage is written before the database records it, jobs are
# enqueued after the commit), so trying again later is right.
UNAVAILABLE = (
    ("redis.exceptions", ("ConnectionError", "TimeoutError", "BusyLoadingError"),
     "Redis (the job queue and login limits) is unavailable; nothing was queued, try again in a moment"),
    ("sqlalchemy.exc", ("OperationalError", "DisconnectionError", "TimeoutError", "InterfaceError"),
     "the database is unavailable; the request was not applied, try again in a moment"),
    ("psycopg", ("OperationalError", "InterfaceError"),
     "the database is unavailable; the request was not applied, try again in a moment"),
)  # fmt: skip
RETRY_AFTER_SECONDS = 5


def unavailable_message(exc: BaseException) -> str | None:
    """The 503 message for an exception that means an outside service is down, else None."""
    from integrations.storage import StorageError, StorageKeyNotFound

    if isinstance(exc, StorageError) and not isinstance(exc, StorageKeyNotFound):
        return "document storage (S3) is unavailable; nothing was stored or recorded, try again in a moment"
    for module, names, message in UNAVAILABLE:
        for cls in type(exc).__mro__:
            if cls.__module__.startswith(module) and cls.__name__ in names:
                return message
    return None
