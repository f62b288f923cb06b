"""Account lifecycle: deactivation, password change and reset end every session and token of the user at once (a
portal session and an API token both stop working on the next request); reset links are one-use and expire; idle
portal sessions end; a portal session cookie is no API credential; API tokens are minted only for oneself or a
service account, and expire by default; failed sign-ins are audited."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from rq import Queue
from sqlalchemy import select, update

import jobs.accounts as accounts_job
from integrations.mail import OutboxMailer
from jobs.runtime import Runtime
from tenants.models import ApiToken, AuditEntry, BillingCompany, PasswordReset, User
from tenants.registry import get_practice
from tests.conftest import PASSWORD, login, run_cli
from tests.support.portal import csrf_token, sign_in

NEW_PASSWORD = "a-brand-new-passphrase"
COOKIE = "medbill_session"


def _user(services, email_: str) -> User:
    with services.db.shared_session() as s:
        return s.scalar(select(User).where(User.email == email_))


def _company_x(services, world) -> BillingCompany:
    with services.db.shared_session() as s:
        return s.get(BillingCompany, get_practice(s, world.practices["A"]).company_id)


def _signed_in_browser(app, email_: str, password: str = PASSWORD):
    browser = app.test_client()
    sign_in(browser, email_, password)
    assert browser.get("/home").status_code == 200
    return browser


def _assert_signed_out(browser) -> None:
    response = browser.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"], response.status_code


def _api_works(client, headers) -> int:
    return client.get("/api/v1/practices", headers=headers).status_code


def _live_credentials(services, user_id: int) -> list[tuple[str, int]]:
    with services.db.shared_session() as s:
        rows = s.execute(
            select(ApiToken.kind, ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        ).all()
    return [tuple(r) for r in rows]


def _audit(services, **where) -> list[AuditEntry]:
    with services.db.shared_session() as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        for column, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, column) == value)
        return list(s.scalars(stmt))


# --- deactivation ---------------------------------------------------------------------------------------------------


def test_deactivation_ends_every_session_and_token_at_once(app, client, services, world, fresh_user, address):
    browser = _signed_in_browser(app, fresh_user)
    token = login(client, fresh_user)
    assert _api_works(client, token) == 200
    target = _user(services, fresh_user)
    admin = login(client, world.users["admin_x"])

    response = client.post(f"/api/v1/company/users/{target.id}/deactivate", headers=admin)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["is_active"] is False and response.get_json()["credentials_revoked"] == 2

    _assert_signed_out(browser)
    assert _api_works(client, token) == 401
    assert _live_credentials(services, target.id) == []
    refused = client.post(
        "/api/v1/auth/token", json={"email": fresh_user, "password": PASSWORD}, environ_base={"REMOTE_ADDR": address}
    )
    assert refused.status_code == 401
    (entry,) = _audit(services, object_type="user", object_id=str(target.id), action="deactivate")
    assert entry.user_id == _user(services, world.users["admin_x"]).id and entry.detail["via"] == "api"

    # Reactivated: the user signs in again, but what deactivation revoked stays revoked.
    assert client.post(f"/api/v1/company/users/{target.id}/reactivate", headers=admin).status_code == 200
    assert _api_works(client, token) == 401
    _assert_signed_out(browser)
    assert _api_works(client, login(client, fresh_user)) == 200
    assert _audit(services, object_type="user", object_id=str(target.id), action="reactivate")


def test_an_admin_manages_only_own_company_users(client, services, factory, world, fresh_user):
    other_admin = login(client, factory.user("company_admin", company=factory.company()))
    target = _user(services, fresh_user)
    assert client.post(f"/api/v1/company/users/{target.id}/deactivate", headers=other_admin).status_code == 404
    assert fresh_user not in {u["email"] for u in client.get("/api/v1/company/users", headers=other_admin).get_json()}
    biller = login(client, world.users["biller_x"])
    assert client.post(f"/api/v1/company/users/{target.id}/deactivate", headers=biller).status_code == 403
    assert _user(services, fresh_user).is_active

    # The company's users: billers and admins, its practices' doctors, the agency users of its practices.
    admin = login(client, world.users["admin_x"])
    listed = {u["email"]: u for u in client.get("/api/v1/company/users", headers=admin).get_json()}
    for key in ("admin_x", "biller_x", "doctor_a", "doctor_b", "agency"):
        assert world.users[key] in listed, key
    assert world.users["biller_y"] not in listed
    me = _user(services, world.users["admin_x"]).id
    assert client.post(f"/api/v1/company/users/{me}/deactivate", headers=admin).status_code == 409


def test_portal_admin_page_deactivates_after_confirmation(app, client, services, world, fresh_user):
    victim_browser = _signed_in_browser(app, fresh_user)
    admin = _signed_in_browser(app, world.users["admin_x"])
    page = admin.get("/company/users")
    assert page.status_code == 200 and fresh_user in page.get_data(as_text=True)
    target = _user(services, fresh_user)
    url = f"/company/users/{target.id}/deactivate"
    token = csrf_token(admin, "/company/users")
    unconfirmed = admin.post(url, data={"csrf_token": token})
    assert unconfirmed.status_code == 302 and _user(services, fresh_user).is_active
    assert admin.post(url, data={"csrf_token": token, "confirmed": "1"}).status_code == 302
    assert not _user(services, fresh_user).is_active
    _assert_signed_out(victim_browser)
    assert "Deactivated" in admin.get("/company/users").get_data(as_text=True)
    (entry,) = _audit(services, object_type="user", object_id=str(target.id), action="deactivate")
    assert entry.detail["via"] == "portal"
    # A biller has no users page.
    assert _signed_in_browser(app, world.users["biller_x"]).get("/company/users").status_code == 403


def test_cli_deactivates_and_reactivates(env, client, services, fresh_user):
    token = login(client, fresh_user)
    done = run_cli(env, "users", "deactivate", fresh_user.upper())
    assert done.returncode == 0, done.stderr
    assert "deactivated" in done.stdout
    assert _api_works(client, token) == 401 and not _user(services, fresh_user).is_active
    done = run_cli(env, "users", "reactivate", fresh_user)
    assert done.returncode == 0, done.stderr
    assert _user(services, fresh_user).is_active
    assert run_cli(env, "users", "deactivate", "nobody@example.test").returncode != 0


# --- password change ------------------------------------------------------------------------------------------------


def test_password_change_in_the_portal_ends_every_other_session_and_token(app, client, services, fresh_user):
    elsewhere = _signed_in_browser(app, fresh_user)
    token = login(client, fresh_user)
    here = _signed_in_browser(app, fresh_user)
    form = csrf_token(here, "/account/password")

    wrong = here.post("/account/password", data={"csrf_token": form, "current_password": "not-my-password",
                      "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD})  # fmt: skip
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    short = here.post("/account/password", data={"csrf_token": form, "current_password": PASSWORD,
                      "new_password": "short", "new_password_again": "short"})  # fmt: skip
    assert short.status_code == 422 and "at least 12 characters" in short.get_data(as_text=True)
    assert _api_works(client, token) == 200

    changed = here.post("/account/password", data={"csrf_token": form, "current_password": PASSWORD,
                        "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD})  # fmt: skip
    assert changed.status_code == 302
    _assert_signed_out(elsewhere)
    assert _api_works(client, token) == 401
    assert here.get("/home").status_code == 200  # the session that made the change stays
    assert _api_works(client, login(client, fresh_user, NEW_PASSWORD)) == 200
    assert client.post("/api/v1/auth/token", json={"email": fresh_user, "password": PASSWORD}).status_code == 401


def test_password_change_through_the_api_keeps_only_the_calling_token(app, client, services, fresh_user):
    browser = _signed_in_browser(app, fresh_user)
    other = login(client, fresh_user)
    caller = login(client, fresh_user)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert (
        client.post("/api/v1/auth/password", headers=caller, json={**body, "current_password": "x"}).status_code == 422
    )
    response = client.post("/api/v1/auth/password", headers=caller, json=body)
    assert response.status_code == 200 and response.get_json()["credentials_revoked"] == 2
    assert _api_works(client, other) == 401
    _assert_signed_out(browser)
    assert _api_works(client, caller) == 200
    (entry,) = _audit(services, object_type="user", object_id=str(_user(services, fresh_user).id),
                      action="password_change")  # fmt: skip
    assert NEW_PASSWORD not in str(entry.detail) and PASSWORD not in str(entry.detail)


# --- password reset -------------------------------------------------------------------------------------------------


@pytest.fixture()
def mailed(monkeypatch, settings, services, tmp_path):
    """Runs the queued reset mail jobs for one address through the job function, into an outbox folder; returns
    the token of the link in the newest message (None when no job was queued for the address). A job's arguments
    are the reset request's id only: no link, no token, no address."""
    mailer = OutboxMailer(tmp_path / "outbox", "medbill <no-reply@example.test>")
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher,
                 mailer=mailer)  # fmt: skip
    monkeypatch.setattr(accounts_job, "runtime", lambda: rt)

    def run(address: str) -> str | None:
        queue = Queue("default", connection=services.redis)
        jobs = [j for j in queue.get_jobs() if j.func_name == "jobs.accounts.send_password_reset"]
        with services.db.shared_session() as s:
            ids = set(
                s.scalars(select(PasswordReset.id).join(User, User.id == PasswordReset.user_id).where(
                    User.email == address))
            )  # fmt: skip
        for job in jobs:
            assert len(job.args) == 1 and isinstance(job.args[0], int) and not job.kwargs, job.args
        mine = [j for j in jobs if j.args[0] in ids]
        for job in mine:
            accounts_job.send_password_reset(*job.args)
            job.delete()
        if not mine:
            return None
        newest = sorted((tmp_path / "outbox").glob("*.eml"))[-1]
        message = email.message_from_bytes(newest.read_bytes(), policy=policy.default)
        assert message["To"] == address and message["Subject"] == "Reset your medbill password"
        body = message.get_content()
        assert PASSWORD not in body
        link = re.search(r"(http\S+/password/reset\?token=(\S+))", body)
        assert link and link.group(1).startswith(settings.public_url)
        return link.group(2)

    return run


def test_reset_link_is_one_use_and_ends_every_session_and_token(app, client, services, fresh_user, address, mailed):
    browser = _signed_in_browser(app, fresh_user)
    token = login(client, fresh_user)
    env = {"REMOTE_ADDR": address}
    known = client.post("/api/v1/auth/password-reset", json={"email": fresh_user}, environ_base=env)
    unknown = client.post("/api/v1/auth/password-reset", json={"email": "nobody@example.test"}, environ_base=env)
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()
    assert mailed("nobody@example.test") is None
    raw = mailed(fresh_user)
    assert raw and raw.startswith("pr_")
    with services.db.shared_session() as s:
        stored = s.scalars(select(PasswordReset.token_hash)).all()
    assert raw not in stored  # only its hash is kept

    # The link's page in the portal, then the new password set through it.
    reset = app.test_client()
    page = reset.get(f"/password/reset?token={raw}")
    assert page.status_code == 200
    form = csrf_token(reset, f"/password/reset?token={raw}")
    done = reset.post("/password/reset", data={"csrf_token": form, "token": raw, "new_password": NEW_PASSWORD,
                                               "new_password_again": NEW_PASSWORD})  # fmt: skip
    assert done.status_code == 302 and "/login" in done.headers["Location"]
    _assert_signed_out(browser)
    assert _api_works(client, token) == 401
    assert _live_credentials(services, _user(services, fresh_user).id) == []

    # Used once: the link opens nothing any more, on the portal or the API.
    assert reset.get(f"/password/reset?token={raw}").status_code == 410
    again = client.post("/api/v1/auth/password-reset/confirm", json={"token": raw, "new_password": "another-one-123"})
    assert again.status_code == 422
    assert _api_works(client, login(client, fresh_user, NEW_PASSWORD)) == 200
    assert _audit(services, object_type="password_reset", action="use")


def _queued_resets(services) -> list:
    queue = Queue("default", connection=services.redis)
    return [j for j in queue.get_jobs() if j.func_name == "jobs.accounts.send_password_reset"]


def test_the_reset_job_carries_only_the_requests_id_and_mints_a_link_that_works(
    client, services, fresh_user, address, mailed
):
    user_id = _user(services, fresh_user).id
    before = {j.id for j in _queued_resets(services)}
    client.post("/api/v1/auth/password-reset", json={"email": fresh_user}, environ_base={"REMOTE_ADDR": address})
    (job,) = [j for j in _queued_resets(services) if j.id not in before]
    with services.db.shared_session() as s:
        reset = s.scalars(select(PasswordReset).where(PasswordReset.user_id == user_id)).one()
    # RQ keeps the arguments in Redis in clear: only the request's id is there, and no link exists yet.
    assert job.args == (reset.id,) and job.kwargs == {}
    assert reset.token_hash is None
    stored_job = b"".join(v for v in services.redis.hgetall(job.key).values())
    raw = mailed(fresh_user)
    assert raw and raw.encode() not in stored_job and b"/password/reset" not in stored_job
    assert fresh_user.encode() not in stored_job
    with services.db.shared_session() as s:
        assert s.get(PasswordReset, reset.id).token_hash is not None  # minted by the job, kept as a hash
    done = client.post("/api/v1/auth/password-reset/confirm", json={"token": raw, "new_password": NEW_PASSWORD})
    assert done.status_code == 204, done.get_data(as_text=True)
    assert _api_works(client, login(client, fresh_user, NEW_PASSWORD)) == 200


def test_a_voided_reset_request_mails_nothing_and_a_retried_job_voids_its_earlier_link(
    settings, services, fresh_user, tmp_path, monkeypatch
):
    from tenants.accounts import request_reset

    mailer = OutboxMailer(tmp_path / "outbox", "medbill <no-reply@example.test>")
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher,
                 mailer=mailer)  # fmt: skip
    monkeypatch.setattr(accounts_job, "runtime", lambda: rt)
    with services.db.shared_session() as s:
        first = request_reset(s, fresh_user, minutes=30)
        second = request_reset(s, fresh_user, minutes=30)  # voids the first
        s.commit()
    assert accounts_job.send_password_reset(first) == {"status": "void"}
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").glob("*.eml"))
    assert accounts_job.send_password_reset(second) == {"status": "sent"}
    assert accounts_job.send_password_reset(second) == {"status": "sent"}  # a retry mints a new link

    def token(message_path) -> str:
        body = email.message_from_bytes(message_path.read_bytes(), policy=policy.default).get_content()
        return re.search(r"/password/reset\?token=(\S+)", body).group(1)

    old, new = (token(p) for p in sorted((tmp_path / "outbox").glob("*.eml")))
    assert old != new
    from tenants.accounts import reset_is_live

    with services.db.shared_session() as s:
        assert not reset_is_live(s, old) and reset_is_live(s, new)


def test_reset_link_expires(client, services, fresh_user, address, mailed):
    client.post("/api/v1/auth/password-reset", json={"email": fresh_user}, environ_base={"REMOTE_ADDR": address})
    raw = mailed(fresh_user)
    user_id = _user(services, fresh_user).id
    with services.db.shared_session() as s:
        expires_at = s.scalar(select(PasswordReset.expires_at).where(PasswordReset.user_id == user_id))
        assert timedelta(minutes=29) < expires_at - datetime.now(UTC) <= timedelta(minutes=30)
        s.execute(
            update(PasswordReset)
            .where(PasswordReset.user_id == user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        s.commit()
    response = client.post("/api/v1/auth/password-reset/confirm", json={"token": raw, "new_password": NEW_PASSWORD})
    assert response.status_code == 422 and "expired" in response.get_json()["message"]
    assert _api_works(client, login(client, fresh_user)) == 200  # the password is unchanged


def test_reset_requests_are_limited_per_account(client, services, fresh_user, address, mailed):
    for _ in range(5):
        answer = client.post("/api/v1/auth/password-reset", json={"email": fresh_user},
                             environ_base={"REMOTE_ADDR": address})  # fmt: skip
        assert answer.status_code == 202
    mailed(fresh_user)
    with services.db.shared_session() as s:
        count = len(
            s.scalars(select(PasswordReset.id).where(PasswordReset.user_id == _user(services, fresh_user).id)).all()
        )
    assert count == 3  # RESET_REQUESTS_PER_ACCOUNT; the others were answered alike and mailed nothing
    assert len(_audit(services, object_type="password_reset", action="throttled")) >= 2


# --- portal sessions ------------------------------------------------------------------------------------------------


def _portal_session(services, email_: str) -> ApiToken:
    with services.db.shared_session() as s:
        user_id = s.scalar(select(User.id).where(User.email == email_))
        return s.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "portal").order_by(ApiToken.id.desc())
        ).first()


def _seen_ago(services, token_id: int, minutes: int) -> None:
    with services.db.shared_session() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id)
            .values(last_used_at=datetime.now(UTC) - timedelta(minutes=minutes))
        )
        s.commit()


def test_an_idle_portal_session_ends_and_each_request_slides_it(app, services, fresh_user):
    browser = _signed_in_browser(app, fresh_user)
    session_row = _portal_session(services, fresh_user)
    lifetime = session_row.expires_at - session_row.created_at  # the absolute lifetime
    assert abs(lifetime - timedelta(hours=12)) < timedelta(seconds=5)

    _seen_ago(services, session_row.id, 29)
    assert browser.get("/home").status_code == 200
    slid = _portal_session(services, fresh_user).last_used_at
    assert datetime.now(UTC) - slid < timedelta(minutes=1)

    _seen_ago(services, session_row.id, 31)
    response = browser.get("/home")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = browser.get(response.headers["Location"])
    assert "signed out after 30 minutes without activity" in page.get_data(as_text=True)
    assert _portal_session(services, fresh_user).revoked_at is not None
    _assert_signed_out(browser)
    assert _audit(services, object_type="session", object_id=str(session_row.id), action="idle_timeout")


def test_the_idle_timeout_is_configurable(settings, services, fresh_user):
    from medbill.app import create_app

    app = create_app(settings.with_(session_idle_minutes=2))
    try:
        browser = _signed_in_browser(app, fresh_user)
        _seen_ago(services, _portal_session(services, fresh_user).id, 3)
        _assert_signed_out(browser)
    finally:
        app.extensions["medbill"].db.engine.dispose()


def test_a_portal_session_cookie_is_no_api_credential(app, client, fresh_user):
    browser = _signed_in_browser(app, fresh_user)
    cookie = browser.get_cookie(COOKIE)
    stored = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    session_id = stored["portal_token"]
    assert session_id.startswith("ps_")
    assert _api_works(client, {"Authorization": f"Bearer {session_id}"}) == 401
    assert _api_works(client, {"Authorization": f"Bearer {cookie.value}"}) == 401
    assert browser.get("/home").status_code == 200


# --- API tokens -----------------------------------------------------------------------------------------------------


def test_tokens_are_minted_only_for_oneself_or_a_service_account(client, services, factory, world, fresh_user):
    admin = login(client, world.users["admin_x"])
    colleague = _user(services, fresh_user).id
    refused = client.post("/api/v1/tokens", headers=admin, json={"name": "as them", "user_id": colleague})
    assert refused.status_code == 403
    biller = login(client, fresh_user)
    assert client.post("/api/v1/tokens", headers=biller, json={"name": "x", "user_id": colleague}).status_code == 403

    account = client.post("/api/v1/company/service-accounts", headers=admin, json={"name": "Clearinghouse sync"})
    assert account.status_code == 201, account.get_json()
    service = account.get_json()
    assert service["is_service_account"] is True and service["roles"] == ["biller"]
    minted = client.post("/api/v1/tokens", headers=admin, json={"name": "sync", "user_id": service["id"]})
    assert minted.status_code == 201, minted.get_json()
    body = minted.get_json()
    assert body["user_id"] == service["id"] and body["created_by_id"] == _user(services, world.users["admin_x"]).id
    assert _api_works(client, {"Authorization": f"Bearer {body['token']}"}) == 200
    # A service account never signs in with a password, nor asks for a reset.
    with services.db.shared_session() as s:
        stored_hash = s.get(User, service["id"]).password_hash
    no_login = client.post("/api/v1/auth/token", json={"email": service["email"], "password": stored_hash})
    assert no_login.status_code == 401
    # Another company's admin cannot mint for this service account.
    other_admin = login(client, factory.user("company_admin", company=factory.company()))
    foreign = client.post("/api/v1/tokens", headers=other_admin, json={"name": "x", "user_id": service["id"]})
    assert foreign.status_code == 404


def test_api_tokens_expire_by_default(client, services, world):
    admin = login(client, world.users["admin_x"])
    created = client.post("/api/v1/tokens", headers=admin, json={"name": "default expiry"}).get_json()
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=89, hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=90)
    too_long = client.post("/api/v1/tokens", headers=admin, json={"name": "forever", "expires_in_days": 400})
    assert too_long.status_code == 422 and "expires_in_days" in too_long.get_json()["errors"]
    short = client.post("/api/v1/tokens", headers=admin, json={"name": "week", "expires_in_days": 7}).get_json()
    assert datetime.fromisoformat(short["expires_at"]) - datetime.now(UTC) <= timedelta(days=7)
    integration = {"Authorization": f"Bearer {created['token']}"}
    assert _api_works(client, integration) == 200
    with services.db.shared_session() as s:
        s.execute(update(ApiToken).where(ApiToken.id == created["id"]).values(expires_at=datetime.now(UTC)))
        s.commit()
    assert _api_works(client, integration) == 401


# --- failed sign-ins ------------------------------------------------------------------------------------------------


def test_failed_sign_ins_are_audited_without_the_password(app, client, services, fresh_user, address):
    wrong = "wrong-password-typed-here"
    env = {"REMOTE_ADDR": address}
    assert client.post("/api/v1/auth/token", json={"email": fresh_user, "password": wrong},
                       environ_base=env).status_code == 401  # fmt: skip
    browser = app.test_client()
    token = csrf_token(browser, "/login")
    ghost = f"ghost-{address}@example.test"
    browser.post("/login", data={"csrf_token": token, "email": ghost, "password": wrong}, environ_base=env)

    entries = [e for e in _audit(services, object_type="sign_in", action="failed", ip=address)]
    by_email = {e.detail["email"]: e for e in entries}
    api_entry, portal_entry = by_email[fresh_user], by_email[ghost]
    assert api_entry.detail == {"email": fresh_user, "reason": "wrong password", "channel": "api"}
    assert api_entry.user_id == _user(services, fresh_user).id
    assert portal_entry.detail == {"email": ghost, "reason": "unknown email", "channel": "portal"}
    assert portal_entry.user_id is None
    assert all(wrong not in str(e.detail) for e in entries)
