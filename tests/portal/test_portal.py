"""The portal shell through a real browser-like client: CSRF stays on, sessions are real portal tokens in PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tenants.models import ApiToken, AuditEntry, Practice, User
from tests.conftest import PASSWORD, login

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COOKIE = "medbill_session"


def csrf_from(response) -> str:
    match = CSRF_RE.search(response.get_data(as_text=True))
    assert match, "no csrf_token input on the page"
    return match.group(1)


def csrf(client, path: str = "/login") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return csrf_from(response)


def portal_login(client, email: str, password: str = PASSWORD):
    response = client.post("/login", data={"csrf_token": csrf(client), "email": email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/home")
    return response


def text(response) -> str:
    return response.get_data(as_text=True)


def practice_name(slug: str) -> str:
    return "Practice " + slug


def user_id(services, email: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(User.id).where(User.email == email))


def practice_id(services, slug: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(Practice.id).where(Practice.slug == slug))


@pytest.fixture()
def as_user(app, world):
    def make(key: str):
        client = app.test_client()
        portal_login(client, world.users[key])
        return client

    return make


# --- sign in ------------------------------------------------------------------------------------------------------


def test_anonymous_root_and_home_redirect_to_login(client):
    for path in ("/", "/home", "/practices/whatever/patients"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_login_page_has_labelled_fields_and_csrf_token(client):
    response = client.get("/login")
    body = text(response)
    assert response.status_code == 200
    assert '<label class="field__label" for="email">Email</label>' in body
    assert '<label class="field__label" for="password">Password</label>' in body
    assert re.search(r'<input[^>]*id="email"[^>]*type="email"', body)
    assert re.search(r'<input[^>]*id="password"[^>]*type="password"', body)
    assert 'autocomplete="current-password"' in body
    assert csrf_from(response)
    assert 'href="#main"' in body and '<main id="main"' in body


def test_post_without_csrf_token_is_refused(client, world):
    response = client.post("/login", data={"email": world.users["biller_x"], "password": PASSWORD})
    assert response.status_code == 400
    assert "Request not accepted" in text(response)  # the portal's page, not the API's JSON
    assert client.get("/home").status_code == 302


def test_wrong_password_gives_generic_error_and_no_session(client, world):
    token = csrf(client)
    response = client.post("/login", data={"csrf_token": token, "email": world.users["biller_x"], "password": "nope"})
    assert response.status_code == 200
    assert "Wrong email or password" in text(response)
    unknown = client.post("/login", data={"csrf_token": token, "email": "nobody@example.test", "password": "nope"})
    assert unknown.status_code == 200
    assert "Wrong email or password" in text(unknown)
    assert client.get("/home").status_code == 302


def test_empty_fields_show_errors_beside_them(client):
    response = client.post("/login", data={"csrf_token": csrf(client), "email": "", "password": ""})
    body = text(response)
    assert response.status_code == 200
    assert 'aria-describedby="email-error"' in body and 'id="email-error"' in body
    assert "Enter your email address." in body and "Enter your password." in body
    assert "Wrong email or password" not in body


def test_right_password_sets_a_hardened_cookie_and_audits(client, world, services):
    response = portal_login(client, world.users["biller_x"])
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE + "=")]
    assert cookies
    assert "HttpOnly" in cookies[-1]
    assert "SameSite=Lax" in cookies[-1]
    assert "Expires=" in cookies[-1]  # permanent: bounded by PERMANENT_SESSION_LIFETIME
    assert client.get("/home").status_code == 200
    assert client.get("/").headers["Location"].endswith("/home")
    assert client.get("/login").status_code == 302  # already signed in
    with services.db.shared_session() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.user_id == user_id(services, world.users["biller_x"]), AuditEntry.action == "login")
            .order_by(AuditEntry.id.desc())
        ).first()
        token = s.get(ApiToken, int(entry.object_id))
    assert entry.object_type == "session"
    assert token.kind == "portal" and token.revoked_at is None


def test_login_returns_to_a_local_page_only(client, world):
    slug = world.practices["A"]
    first = client.get(f"/practices/{slug}/patients?page=1")
    assert first.status_code == 302
    login_url = first.headers["Location"]
    page = client.get(login_url)
    response = client.post(
        login_url, data={"csrf_token": csrf_from(page), "email": world.users["biller_x"], "password": PASSWORD}
    )
    assert response.headers["Location"].endswith(f"/practices/{slug}/patients?page=1")

    other = client.application.test_client()
    token = csrf(other)
    for evil in ("https://evil.example/", "//evil.example/x", "/api/v1/practices"):
        response = other.post(
            "/login",
            query_string={"next": evil},
            data={"csrf_token": token, "email": world.users["biller_x"], "password": PASSWORD},
        )
        assert response.headers["Location"].endswith("/home"), evil
        other.post("/logout", data={"csrf_token": csrf(other, "/home")})
        token = csrf(other)


# --- home pages -------------------------------------------------------------------------------------------------------


def heading_practice(body: str) -> str:
    match = re.search(r'Work queues <span class="page-head__sub">([^<]+)</span>', body)
    assert match, "no work-queue heading"
    return match.group(1)


def test_biller_home_shows_work_queues_switcher_and_real_patient_count(as_user, world, services):
    from sqlalchemy import func

    from billing.models import Patient

    client = as_user("biller_x")
    body = text(client.get("/home"))
    assert "Work queues" in body
    assert heading_practice(body).startswith("Practice ")  # one is selected by default
    assert 'name="practice"' in body and world.practices["A"] in body and world.practices["B"] in body
    assert world.practices["C"] not in body  # another company's practice is not offered

    slug = world.practices["A"]
    client.post("/practice", data={"csrf_token": csrf_from(client.get("/home")), "practice": slug})
    body = text(client.get("/home"))
    assert heading_practice(body) == practice_name(slug)
    for queue in ("Scrub errors", "Rejections", "Denials", "Underpayments", "Posting exceptions", "Follow-up"):
        assert queue in body
    assert "Statement candidates" in body and "Collection candidates" in body
    assert "Available when claims are in medbill" not in body  # every queue is built: each card has its count
    with services.db.tenant_session(slug) as s:
        count = s.scalar(select(func.count()).select_from(Patient))
    assert count >= 3
    assert f'class="stat__value">{count:,}<' in body  # the real count, not a placeholder
    assert f'href="/practices/{slug}/patients"' in body
    assert "/api/docs" not in body  # admins only
    assert "Secret" not in body  # no patient names on the home page


def test_admin_sees_api_docs_link(as_user):
    body = text(as_user("admin_x").get("/home"))
    assert "Work queues" in body and 'href="/api/docs"' in body


def test_doctor_home_is_the_practice_summary_without_patients(as_user, world):
    response = as_user("doctor_a").get("/home")
    body = text(response)
    assert response.status_code == 200
    assert practice_name(world.practices["A"]) in body and "monthly summary" in body
    assert "/patients" not in body
    assert 'name="practice"' not in body  # one practice: nothing to switch


def test_agency_home_lists_served_practices_and_export_empty_state(as_user, world):
    body = text(as_user("agency").get("/home"))
    assert "Placed accounts" in body
    assert practice_name(world.practices["A"]) in body
    assert practice_name(world.practices["B"]) not in body
    assert "No export files yet" in body


def test_agency_sees_only_placed_accounts(as_user, world):
    body = text(as_user("agency").get(f"/practices/{world.practices['A']}/patients"))
    placed = next(p for p in world.patients["A"] if p["id"] == world.placed_patient_id)
    assert placed["last_name"] in body
    assert sum(p["last_name"] in body for p in world.patients["A"]) == 1


# --- practice switcher --------------------------------------------------------------------------------------------


def test_biller_switches_practice_and_cannot_switch_to_another_company(as_user, world):
    client = as_user("biller_x")
    token = csrf(client, "/home")
    response = client.post("/practice", data={"csrf_token": token, "practice": world.practices["B"]})
    assert response.status_code == 302 and response.headers["Location"].endswith("/home")
    body = text(client.get("/home"))
    assert heading_practice(body) == practice_name(world.practices["B"])
    assert f'href="/practices/{world.practices["B"]}/patients"' in body

    refused = client.post("/practice", data={"csrf_token": token, "practice": world.practices["C"]})
    assert refused.status_code == 404
    assert "Page not found" in text(refused)
    for bad in ("no_such_practice", "'; drop table x", ""):
        assert client.post("/practice", data={"csrf_token": token, "practice": bad}).status_code == 404
    assert heading_practice(text(client.get("/home"))) == practice_name(world.practices["B"])


def test_switch_needs_csrf(as_user, world):
    client = as_user("biller_x")
    before = heading_practice(text(client.get("/home")))
    target = world.practices["B"] if before != practice_name(world.practices["B"]) else world.practices["A"]
    response = client.post("/practice", data={"practice": target})
    assert response.status_code == 400
    assert heading_practice(text(client.get("/home"))) == before


# --- patients ---------------------------------------------------------------------------------------------------------


def test_biller_patient_list_is_scoped_and_audited(as_user, world, services):
    client = as_user("biller_x")
    slug = world.practices["A"]
    response = client.get(f"/practices/{slug}/patients")
    body = text(response)
    assert response.status_code == 200
    assert "<table" in body and '<th scope="col">Date of birth</th>' in body
    for patient in world.patients["A"]:
        assert patient["last_name"] in body
        assert patient["account_number"] in body
    for other in ("B", "C"):
        for patient in world.patients[other]:
            assert patient["last_name"] not in body
    assert response.headers["Cache-Control"] == "no-store"

    with services.db.shared_session() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.user_id == user_id(services, world.users["biller_x"]),
                AuditEntry.practice_id == practice_id(services, slug),
                AuditEntry.object_type == "patient",
                AuditEntry.action == "list",
            )
            .order_by(AuditEntry.id.desc())
        ).first()
    assert entry is not None
    assert sorted(entry.detail["ids"]) == sorted(p["id"] for p in world.patients["A"])


def test_patient_list_paginates(app, factory):
    company = factory.company()  # a company of this test's own: the shared world stays as other tests expect
    slug = factory.practice(company.slug).slug
    for i in range(28):
        factory.patient(slug, first_name=f"Page{i}", last_name=f"Pager{i:02d}")
    client = app.test_client()
    portal_login(client, factory.user("company_admin", company=company))
    first = text(client.get(f"/practices/{slug}/patients"))
    assert "Page 1 of 2" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert first.count('<th scope="row">') == 25
    second = text(client.get(f"/practices/{slug}/patients?page=2"))
    assert "Page 2 of 2" in second and 'rel="prev"' in second and 'rel="next"' not in second
    assert second.count('<th scope="row">') == 3
    beyond = client.get(f"/practices/{slug}/patients?page=9")
    assert beyond.status_code == 200 and "No patients on this page" in text(beyond)
    assert client.get(f"/practices/{slug}/patients?page=abc").status_code == 200


def test_other_company_gets_404_and_doctor_403(as_user, world):
    slug = world.practices["A"]
    response = as_user("biller_y").get(f"/practices/{slug}/patients")
    assert response.status_code == 404
    assert "Page not found" in text(response)
    assert as_user("biller_y").get("/practices/no_such_practice/patients").status_code == 404
    response = as_user("doctor_a").get(f"/practices/{slug}/patients")
    assert response.status_code == 403
    assert "Not allowed" in text(response)
    assert world.patients["A"][0]["last_name"] not in text(response)


# --- sign out -----------------------------------------------------------------------------------------------------


def test_logout_needs_a_post_with_csrf_and_revokes_the_token(app, as_user, world, services):
    client = as_user("biller_y")
    cookie = client.get_cookie(COOKIE).value

    page = client.get("/logout")  # shows a confirmation; does not sign out
    assert page.status_code == 200
    assert client.get("/home").status_code == 200

    assert client.post("/logout").status_code == 400  # no csrf token
    assert client.get("/home").status_code == 200

    response = client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert client.get("/home").status_code == 302

    replay = app.test_client()
    replay.set_cookie(COOKIE, cookie)
    response = replay.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]

    with services.db.shared_session() as s:
        uid = user_id(services, world.users["biller_y"])
        actions = list(
            s.scalars(select(AuditEntry.action).where(AuditEntry.user_id == uid).order_by(AuditEntry.id.desc()))
        )
        newest = s.scalars(
            select(ApiToken).where(ApiToken.user_id == uid, ApiToken.kind == "portal").order_by(ApiToken.id.desc())
        ).first()
    assert actions[0] == "logout"
    assert newest.revoked_at is not None


def session_cookie_with_token(app, raw: str) -> str:
    """A validly signed session cookie carrying `raw` as the portal token."""
    return app.session_interface.get_signing_serializer(app).dumps({"portal_token": raw})


def test_only_portal_tokens_open_a_browser_session(app, client, world, services):
    """A bearer token from the API is not accepted as a browser session, even inside a validly signed cookie."""
    from tenants.auth import issue_token

    with services.db.shared_session() as s:
        user = s.scalar(select(User).where(User.email == world.users["biller_x"]))
        portal_raw, _ = issue_token(s, user, kind="portal", ttl_seconds=60)
        s.commit()
    control = app.test_client()
    control.set_cookie(COOKIE, session_cookie_with_token(app, portal_raw))
    assert control.get("/home").status_code == 200

    api_raw = login(client, world.users["biller_x"])["Authorization"].split(" ", 1)[1]
    other = app.test_client()
    other.set_cookie(COOKIE, session_cookie_with_token(app, api_raw))
    response = other.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --- headers and the API's own errors -------------------------------------------------------------------------------


def test_security_headers_on_portal_pages(client, as_user, world):
    pages = [client.get("/login"), as_user("biller_x").get("/home")]
    for response in pages:
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
        )
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
    css = client.get("/portal/static/portal.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "style=" not in text(pages[1]) and "<script" not in text(pages[1])  # the CSP allows neither


def test_api_errors_stay_json(client):
    response = client.get("/api/v1/practices")
    assert response.status_code == 401
    assert response.is_json and response.get_json()["code"] == "unauthorized"
    assert "X-Frame-Options" not in response.headers
