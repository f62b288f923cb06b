"""Sessions and forms: hardened cookies and headers, CSRF on every state-changing portal route, argon2 password
hashes (upgraded on sign-in), and tokens that stop working the moment they are revoked."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from sqlalchemy import select

from medbill.config import Settings
from tenants.auth import revoke_token
from tenants.models import ApiToken, User
from tests.conftest import PASSWORD, login
from tests.portal.test_portal import COOKIE, csrf_from

CSRF_MESSAGE = "This form has expired or was not sent from medbill"


def portal_sign_in(client, email: str):
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_from(page), "email": email, "password": PASSWORD})


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")]
    assert cookies, response.headers
    return cookies[-1]


# --- cookies and headers --------------------------------------------------------------------------------------------


def test_secure_cookies_are_the_production_default():
    assert Settings.from_env({}).secure_cookies is True
    assert Settings.from_env({"MEDBILL_SECURE_COOKIES": "false"}).secure_cookies is False


def test_session_cookie_is_secure_httponly_samesite_in_production(settings, fresh_user):
    from medbill.app import create_app

    app = create_app(settings.with_(secure_cookies=True))
    client = app.test_client()
    response = portal_sign_in(client, fresh_user)
    assert response.status_code == 302
    attributes = {a.strip().split("=")[0].lower(): a for a in session_cookie(response).split(";")}
    assert "secure" in attributes and "httponly" in attributes
    assert attributes["samesite"].split("=")[1].strip() in ("Lax", "Strict")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    app.extensions["medbill"].db.engine.dispose()


def test_session_cookie_without_secure_only_when_configured(client, fresh_user):
    cookie = session_cookie(portal_sign_in(client, fresh_user))  # the tests' settings: secure_cookies=False
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_portal_pages_send_security_headers(client, fresh_user):
    portal_sign_in(client, fresh_user)
    for path in ("/login", "/home"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "same-origin"


def test_api_answers_are_not_cached_or_sniffed(client, world):
    headers = login(client, world.users["biller_x"])
    response = client.get("/api/v1/practices", headers=headers)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- CSRF on every portal form --------------------------------------------------------------------------------------

ARG = re.compile(r"<(?:(?P<conv>[^:<>]+):)?(?P<name>[^<>]+)>")


def cookie_routes(app) -> list[str]:
    """Every state-changing route outside the bearer-token API: the ones a cross-site form could ride a cookie to."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or not (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            continue
        found.append((rule.endpoint, rule))
    return found


def fill(rule, slug: str) -> str:
    def value(match):
        name, conv = match["name"], match["conv"] or "default"
        if name == "slug":
            return slug
        return "1" if conv in ("int", "id") else "x"

    return ARG.sub(value, rule.rule)


def test_every_portal_post_route_refuses_a_request_without_csrf_token(app, world):
    routes = cookie_routes(app)
    endpoints = {endpoint for endpoint, _ in routes}
    # The walk sees the forms we know of (and therefore every other one the url map holds).
    assert {"portal.login", "portal.logout"} <= endpoints and len(routes) >= 10, endpoints
    assert all(endpoint.startswith("portal.") for endpoint in endpoints), endpoints
    client = app.test_client()
    assert portal_sign_in(client, world.users["admin_x"]).status_code == 302
    refused = {}
    for endpoint, rule in routes:
        url = fill(rule, world.practices["A"])
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            response = client.open(url, method=method, data={"x": "1"})
            refused[(endpoint, method)] = response.status_code
            assert response.status_code in (400, 403), (endpoint, method, url, response.status_code)
            assert CSRF_MESSAGE in response.get_data(as_text=True), (endpoint, method, url)
    # Still signed in: the refusals changed nothing (the logout route, for one, did not sign us out).
    assert client.get("/home").status_code == 200
    assert len(refused) == sum(len((r.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}) for _, r in routes)


def test_a_token_from_another_session_is_refused(app, world, fresh_user):
    attacker = app.test_client()
    foreign_token = csrf_from(attacker.get("/login"))
    victim = app.test_client()
    assert portal_sign_in(victim, fresh_user).status_code == 302
    response = victim.post("/logout", data={"csrf_token": foreign_token})
    assert response.status_code == 400 and CSRF_MESSAGE in response.get_data(as_text=True)
    assert victim.get("/home").status_code == 200


# --- passwords ------------------------------------------------------------------------------------------------------


def _stored_hash(services, email: str) -> str:
    with services.db.shared_session() as s:
        return s.scalar(select(User.password_hash).where(User.email == email))


def test_passwords_are_stored_as_argon2id(services, fresh_user):
    stored = _stored_hash(services, fresh_user)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)


def test_a_weaker_hash_is_upgraded_on_sign_in(client, services, fresh_user):
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with services.db.shared_session() as s:
        s.scalar(select(User).where(User.email == fresh_user)).password_hash = weak
        s.commit()
    login(client, fresh_user)
    upgraded = _stored_hash(services, fresh_user)
    assert upgraded != weak and not PasswordHasher().check_needs_rehash(upgraded)
    login(client, fresh_user)  # the new hash verifies the same password


# --- revocation -----------------------------------------------------------------------------------------------------


def test_revoked_login_token_stops_working_at_once(client, services, fresh_user):
    headers = login(client, fresh_user)
    assert client.get("/api/v1/practices", headers=headers).status_code == 200
    raw = headers["Authorization"].split()[1]
    from tenants.auth import token_hash

    with services.db.shared_session() as s:
        token_id = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash(raw)))
        assert revoke_token(s, token_id)
        s.commit()
    response = client.get("/api/v1/practices", headers=headers)
    assert response.status_code == 401 and "revoked" in response.get_json()["message"]


def test_revoked_api_token_stops_working_at_once(client, world):
    admin = login(client, world.users["admin_x"])
    created = client.post("/api/v1/tokens", headers=admin, json={"name": "sync"}).get_json()
    integration = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/practices", headers=integration).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/practices", headers=integration).status_code == 401


def test_revoked_portal_session_ends_at_once(app, services, fresh_user):
    browser = app.test_client()
    assert portal_sign_in(browser, fresh_user).status_code == 302
    assert browser.get("/home").status_code == 200
    with services.db.shared_session() as s:
        user_id = s.scalar(select(User.id).where(User.email == fresh_user))
        live = select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        (token_id,) = s.scalars(live.where(ApiToken.kind == "portal"))
        assert revoke_token(s, token_id)
        s.commit()
    response = browser.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
