"""One error shape for the whole API: {"status", "code", "message", "errors"}; never a 500 for bad input."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from medbill.errors import RETRY_AFTER_SECONDS, DomainError, unavailable_message

log = logging.getLogger("medbill.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status: int, message: str, *, errors: dict | None = None, code: str | None = None):
    body = {"status": status, "code": code or CODES.get(status, "error"), "message": message, "errors": errors or {}}
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="medbill"'
    return response


def _flatten_webargs(messages: dict) -> dict:
    """webargs nests field errors under the location ("json", "query"); the location is noise to a client
    unless the same field name appears in two places."""
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            for name, msgs in fields.items():
                flat[name if name not in flat else f"{location}.{name}"] = msgs
        else:
            flat[location] = fields
    return flat


def http_exception_response(exc: HTTPException):
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    status = exc.code or 500
    if status == 400 and messages and "json" in messages and messages["json"] == ["Invalid JSON body."]:
        return error_response(400, "request body is not valid JSON", errors={"body": ["not valid JSON"]})
    message = data.get("message") if isinstance(data, dict) and data.get("message") else exc.description
    if status == 422 and messages:
        message = "request has invalid fields"
    return error_response(status, message or exc.name, errors=_flatten_webargs(messages) if messages else None)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def register(app) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        if is_api_request():
            return error_response(exc.status, exc.message, errors=exc.errors, code=exc.code)
        return exc.message, exc.status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_exception_response(exc) if is_api_request() else exc
        message = unavailable_message(exc)
        if message is not None:
            # An outage, not a bug: one line (the exception's class, never its text, which can hold SQL parameters).
            log.warning("%s %s: 503, %s", request.method, request.path, type(exc).__name__)
            if is_api_request():
                response = error_response(503, message)
            else:
                response = current_app.response_class(message[:1].upper() + message[1:] + ".", 503)
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        if is_api_request():
            return error_response(500, "internal error; it has been logged")
        return "Internal error; it has been logged.", 500
