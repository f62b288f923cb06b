"""File links of the web app (local storage): bound to the user and the credential (API token or portal session) that
asked, short-lived, one key and one name, and every use audited, honoured or refused. A link forged with the server's
secret key (how links were made before) opens nothing. The app here uses local storage, as `medbill up` does."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select, text, update

from billing.reports import monthly_summary_key
from medbill.config import Settings, SettingsError
from tenants.models import AuditEntry, FileGrant, Practice, User
from tests.conftest import login
from tests.support.portal import sign_in

MONTH = date(2026, 1, 1)
PDF = b"%PDF-1.4 the month's figures"


@pytest.fixture(scope="module")
def local_app(settings, tmp_path_factory, world):
    from medbill.app import create_app

    application = create_app(dataclasses.replace(settings, s3_bucket=None, data_dir=tmp_path_factory.mktemp("local")))
    application.config["TESTING"] = True
    services = application.extensions["medbill"]
    assert type(services.storage).__name__ == "LocalStorage"
    services.storage.put(monthly_summary_key(world.practices["A"], MONTH), PDF, content_type="application/pdf")
    yield application
    services.db.dispose()


@pytest.fixture()
def local(local_app):
    return local_app.extensions["medbill"]


def _link(client, world, headers) -> str:
    """A file link made for the caller by the API (the monthly summary PDF of practice A), as a local path."""
    response = client.get(
        f"/api/v1/practices/{world.practices['A']}/reports/monthly-summary/pdf?month=2026-01&redirect=false",
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    url = response.get_json()["url"]
    assert url.startswith("http://127.0.0.1:8000/files/"), url
    return url.removeprefix("http://127.0.0.1:8000")


def _uses(local, since_id: int) -> list[AuditEntry]:
    with local.db.shared_session() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.id > since_id, AuditEntry.object_type == "file_link")
                .order_by(AuditEntry.id)
            )
        )


def _last_id(local) -> int:
    with local.db.shared_session() as s:
        return s.scalar(text("SELECT coalesce(max(id), 0) FROM shared.audit_log"))


def _user_id(local, email: str) -> int:
    with local.db.shared_session() as s:
        return s.scalar(select(User.id).where(User.email == email))


def test_a_link_opens_for_the_user_who_asked_and_every_use_is_audited(local_app, local, world):
    client = local_app.test_client()
    headers = login(client, world.users["biller_x"])
    path = _link(client, world, headers)
    before = _last_id(local)
    for _ in range(2):
        response = client.get(path, headers=headers, environ_base={"REMOTE_ADDR": "198.51.100.7"})
        assert response.status_code == 200 and response.data == PDF
        assert "attachment" in response.headers["Content-Disposition"]
        assert "monthly-summary-2026-01.pdf" in response.headers["Content-Disposition"]
    uses = _uses(local, before)
    assert [u.action for u in uses] == ["download", "download"]
    with local.db.shared_session() as s:
        practice_a = s.scalar(select(Practice.id).where(Practice.slug == world.practices["A"]))
    for use in uses:
        assert use.user_id == _user_id(local, world.users["biller_x"])
        assert use.practice_id == practice_a and use.ip == "198.51.100.7"
        assert use.detail["storage_key"] == monthly_summary_key(world.practices["A"], MONTH)
    with local.db.shared_session() as s:
        grant = s.scalars(select(FileGrant).order_by(FileGrant.created_at.desc()).limit(1)).one()
        assert grant.used_at is not None
        # Short-lived: MEDBILL_FILE_LINK_SECONDS, the one life of every download link.
        assert (grant.expires_at - grant.created_at).total_seconds() <= local.settings.file_link_seconds + 1


def test_a_link_forged_with_the_secret_key_is_refused_and_audited(local_app, local, world):
    client = local_app.test_client()
    headers = login(client, world.users["biller_x"])
    key = monthly_summary_key(world.practices["A"], MONTH)
    # How links were made before: signed with MEDBILL_SECRET_KEY, nothing on the server side.
    forged = URLSafeSerializer(local.settings.secret_key, salt="medbill-file").dumps(
        {"k": key, "e": 4_000_000_000, "n": "x.pdf"}
    )
    made_up = "A" * 43  # the shape of a real link id, but no grant
    before = _last_id(local)
    for token in (forged, made_up):
        assert client.get(f"/files/{token}").status_code == 404
        response = client.get(f"/files/{token}", headers=headers)
        assert response.status_code == 404 and PDF not in response.data
    uses = _uses(local, before)
    assert [(u.action, u.detail["reason"]) for u in uses] == [("download_refused", "no such link")] * 4
    assert [u.user_id for u in uses] == [None, _user_id(local, world.users["biller_x"])] * 2
    assert all(u.ip for u in uses)


def test_a_link_is_refused_without_a_session_to_another_user_and_to_another_token(local_app, local, world):
    client = local_app.test_client()
    headers = login(client, world.users["biller_x"])
    path = _link(client, world, headers)
    before = _last_id(local)
    assert client.get(path).status_code == 404  # no session at all
    other_company = login(client, world.users["biller_y"])
    assert client.get(path, headers=other_company).status_code == 404
    same_company_admin = login(client, world.users["admin_x"])
    assert client.get(path, headers=same_company_admin).status_code == 404
    second_token_of_the_same_user = login(client, world.users["biller_x"])
    assert client.get(path, headers=second_token_of_the_same_user).status_code == 404
    reasons = [(u.action, u.detail["reason"], u.user_id) for u in _uses(local, before)]
    assert reasons == [
        ("download_refused", "not signed in", None),
        ("download_refused", "another user", _user_id(local, world.users["biller_y"])),
        ("download_refused", "another user", _user_id(local, world.users["admin_x"])),
        ("download_refused", "another session or token of the user", _user_id(local, world.users["biller_x"])),
    ]
    # The one it was made for still opens it.
    assert client.get(path, headers=headers).status_code == 200


def test_an_expired_link_is_refused_and_audited(local_app, local, world):
    client = local_app.test_client()
    headers = login(client, world.users["biller_x"])
    path = _link(client, world, headers)
    with local.db.shared_session() as s:
        grant = hashlib.sha256(path.removeprefix("/files/").encode()).hexdigest()
        s.execute(update(FileGrant).where(FileGrant.id_hash == grant).values(expires_at=text("now() - interval '1 s'")))
        s.commit()
    before = _last_id(local)
    assert client.get(path, headers=headers).status_code == 404
    assert [(u.action, u.detail["reason"]) for u in _uses(local, before)] == [("download_refused", "expired")]


def test_a_portal_link_opens_with_the_same_portal_session_only(local_app, local, world):
    browser = local_app.test_client()
    sign_in(browser, world.users["biller_x"])
    response = browser.get(f"/practices/{world.practices['A']}/reports/monthly-summary.pdf?month=2026-01")
    assert response.status_code == 302
    path = response.headers["Location"].removeprefix("http://127.0.0.1:8000")
    assert path.startswith("/files/")
    assert browser.get(path).data == PDF
    other = local_app.test_client()
    sign_in(other, world.users["biller_x"])  # the same user in another browser: another session
    assert other.get(path).status_code == 404
    stranger = local_app.test_client()
    sign_in(stranger, world.users["doctor_a"])
    assert stranger.get(path).status_code == 404
    # An API token of the user is not the portal session that asked either.
    api_headers = login(local_app.test_client(), world.users["biller_x"])
    assert local_app.test_client().get(path, headers=api_headers).status_code == 404


def test_grants_expired_for_a_day_are_purged_and_live_ones_kept(local_app, local, world):
    from datetime import timedelta

    from tenants.file_links import purge_expired

    client = local_app.test_client()
    headers = login(client, world.users["biller_x"])
    old, live = _link(client, world, headers), _link(client, world, headers)
    old_hash = hashlib.sha256(old.removeprefix("/files/").encode()).hexdigest()
    with local.db.shared_session() as s:
        s.execute(
            update(FileGrant).where(FileGrant.id_hash == old_hash).values(expires_at=text("now() - interval '2 days'"))
        )
        assert purge_expired(s, older_than=timedelta(days=1)) >= 1
        s.commit()
        assert s.get(FileGrant, old_hash) is None
    assert client.get(old, headers=headers).status_code == 404
    assert client.get(live, headers=headers).status_code == 200


# ------------------------------------------------------------------ one life for every link (MEDBILL_FILE_LINK_SECONDS)

LINK_SECONDS = 97  # not the default (300), so a link that ignores the setting shows


@pytest.fixture(scope="module")
def s3_app(settings, tmp_path_factory, world):
    """The app on the tests' S3 (moto) with MEDBILL_FILE_LINK_SECONDS set, the PDF of practice A's month stored."""
    from medbill.app import create_app

    configured = Settings.from_env({"MEDBILL_FILE_LINK_SECONDS": str(LINK_SECONDS)})
    application = create_app(
        dataclasses.replace(
            settings, file_link_seconds=configured.file_link_seconds, data_dir=tmp_path_factory.mktemp("s3links")
        )
    )
    application.config["TESTING"] = True
    services = application.extensions["medbill"]
    assert type(services.storage).__name__ == "S3Storage"
    services.storage.put(monthly_summary_key(world.practices["A"], MONTH), PDF, content_type="application/pdf")
    yield application
    services.db.dispose()


def _amz_expires(url: str) -> int:
    (value,) = parse_qs(urlsplit(url).query)["X-Amz-Expires"]
    return int(value)


def test_the_apis_expires_in_and_the_presigned_url_follow_the_setting(s3_app, world):
    client = s3_app.test_client()
    headers = login(client, world.users["biller_x"])
    path = f"/api/v1/practices/{world.practices['A']}/reports/monthly-summary/pdf"
    body = client.get(path, headers=headers, query_string={"month": "2026-01", "redirect": "false"}).get_json()
    assert body["expires_in"] == LINK_SECONDS
    assert _amz_expires(body["url"]) == LINK_SECONDS
    redirected = client.get(path, headers=headers, query_string={"month": "2026-01"})
    assert redirected.status_code == 302 and _amz_expires(redirected.headers["Location"]) == LINK_SECONDS


def test_the_portals_link_and_every_presign_follow_the_setting(s3_app, world):
    browser = s3_app.test_client()
    sign_in(browser, world.users["biller_x"])
    response = browser.get(f"/practices/{world.practices['A']}/reports/monthly-summary.pdf?month=2026-01")
    assert response.status_code == 302 and _amz_expires(response.headers["Location"]) == LINK_SECONDS
    storage = s3_app.extensions["medbill"].storage
    key = monthly_summary_key(world.practices["A"], MONTH)
    # Callers that name no life get the setting's; one asking for longer still gets no more than it.
    assert _amz_expires(storage.presigned_url(key)) == LINK_SECONDS
    assert _amz_expires(storage.presigned_url(key, expires_in=86400)) == LINK_SECONDS
    assert _amz_expires(storage.presigned_url(key, expires_in=45)) == 45


def test_the_setting_defaults_to_300_and_is_bounded():
    assert Settings.from_env({}).file_link_seconds == 300
    assert Settings.from_env({"MEDBILL_FILE_LINK_SECONDS": "30"}).file_link_seconds == 30
    assert Settings.from_env({"MEDBILL_FILE_LINK_SECONDS": "3600"}).file_link_seconds == 3600
    for bad in ("29", "3601", "0", "-5"):
        with pytest.raises(SettingsError, match=r"MEDBILL_FILE_LINK_SECONDS=.* between 30 and 3600"):
            Settings.from_env({"MEDBILL_FILE_LINK_SECONDS": bad})
    with pytest.raises(SettingsError, match="MEDBILL_FILE_LINK_SECONDS='5m' is not a whole number"):
        Settings.from_env({"MEDBILL_FILE_LINK_SECONDS": "5m"})
