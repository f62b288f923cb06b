"""Bounds on what any request may send, checked once for the API and the portal before a view runs.

- Body size: every request may send at most `MAX_REQUEST_BYTES`; a view that takes a file says how much with
  `@upload_limit(n)`. Larger bodies answer 413 before they are read (Werkzeug checks Content-Length, and stops a
  chunked body at the limit).
- JSON bodies nested deeper than `MAX_JSON_DEPTH` answer 400 (the standard parser would raise RecursionError, a 500).
- NUL characters, which PostgreSQL refuses in text, in any JSON string, form field or query parameter answer 422
  naming the field (`lines[0].procedure_code`), never with the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

from medbill.errors import DomainError, Invalid

MAX_REQUEST_BYTES = 1024 * 1024
# Far deeper than any of our schemas (an agency format is 4 levels), far below the parser's recursion limit.
MAX_JSON_DEPTH = 32
# Room for a multipart envelope around a file of the view's own limit.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
NUL_MESSAGE = "contains a NUL character, which cannot be stored"

F = TypeVar("F", bound=Callable[..., Any])


class TooDeep(DomainError):
    status = 400
    code = "bad_request"


def upload_limit(max_file_bytes: int) -> Callable[[F], F]:
    """Mark a view that takes a file of up to `max_file_bytes`: its requests may be that large (plus the multipart
    envelope). Put it directly above the function, so the route decorators copy the mark."""

    def mark(view: F) -> F:
        view.max_request_bytes = max_file_bytes + MULTIPART_OVERHEAD_BYTES  # type: ignore[attr-defined]
        return view

    return mark


def _nul_paths(value: Any) -> tuple[list[str], int]:
    """Where a NUL occurs in a parsed JSON document (field paths, keys too) and how deep the document is. Iterative:
    the document's depth is what is being measured, so it must not cost recursion."""
    found: list[str] = []
    deepest = 0
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(node, dict):
            for key, child in node.items():
                child_path = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    found.append(child_path.replace("\x00", "\\0"))
                    continue
                stack.append((child, child_path, depth + 1))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                stack.append((child, f"{path}[{i}]" if path else f"[{i}]", depth + 1))
        elif isinstance(node, str) and "\x00" in node:
            found.append(path or "body")
    return sorted(found), deepest


def _check_json() -> None:
    data = request.get_data(cache=True)
    if not data:
        return
    try:
        document = json.loads(data)
    except RecursionError:
        raise TooDeep(
            f"request body is nested more than {MAX_JSON_DEPTH} levels deep",
            errors={"body": [f"at most {MAX_JSON_DEPTH} levels of nesting"]},
        ) from None
    except ValueError:
        return  # not JSON: the view's parser answers 400 with its own message
    found, depth = _nul_paths(document)
    if depth > MAX_JSON_DEPTH:
        raise TooDeep(
            f"request body is nested more than {MAX_JSON_DEPTH} levels deep",
            errors={"body": [f"at most {MAX_JSON_DEPTH} levels of nesting"]},
        )
    if found:
        raise Invalid("request has invalid fields", errors={path: [NUL_MESSAGE] for path in found})


def _check_fields() -> None:
    found = sorted(
        {name for name, value in request.args.items(multi=True) if "\x00" in name or "\x00" in value}
        | {name for name, value in request.form.items(multi=True) if "\x00" in name or "\x00" in value}
    )
    if found:
        errors = {name.replace("\x00", "\\0"): [NUL_MESSAGE] for name in found}
        raise Invalid("request has invalid fields", errors=errors)


def check_request() -> None:
    """The before-request hook: the size limit of the view, then NULs and nesting in what was sent."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_request_bytes", None)
    if limit is not None:
        request.max_content_length = limit
    if request.is_json:
        _check_json()
    _check_fields()


def register(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.before_request(check_request)
