"""Domain errors shared by every layer: services raise them, the API and portal turn them into responses."""

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
