"""Signing in to the portal as a browser does (CSRF on): the login form's token, then the form post."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the form on the page at `path`."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, f"no csrf_token input on {path}"
    return match.group(1)


def sign_in(client, email: str, password: str = PASSWORD) -> None:
    """Sign `client` in to the portal (its session cookie is kept by the test client)."""
    response = client.post("/login", data={"csrf_token": csrf_token(client), "email": email, "password": password})
    assert response.status_code == 302 and response.headers["Location"].endswith("/home"), response.status_code
