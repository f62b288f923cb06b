"""Issue 11, the tenant boundary in outbound connections, tried as an attacker would: a second billing company's
biller (and admin) cannot make the worker send a server environment variable or another company's secret, cannot
connect off the operator's allow-list (refused when saved, and an old row refused before connecting), cannot use
the directory transport outside its company's directory; secrets are write-only; a ciphertext moved to another
company does not decrypt; transport changes are audited masked; tenant-visible errors carry no host key."""

from __future__ import annotations

import json
import os
import socket

import pytest
from sqlalchemy import select, update

from billing import claims as claim_service
from billing import collections, connections
from billing.claim_status import transition
from billing.models import BillingIdentity, Submission
from integrations.clearinghouse import TransportError
from jobs import exports as exports_job
from jobs import submission as submission_job
from jobs.runtime import Runtime
from medbill.errors import Invalid
from tenants import secrets
from tenants.models import AuditEntry, BillingCompany, CompanySecret, Practice
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import login, run_cli
from tests.sftpserver import start_sftp_server, stop_sftp_server
from tests.support.connections import admin_access, company_drop, company_id, policy, store_secret

# A well-formed fingerprint no test server has.
OTHER_KEY = "SHA256:" + "A" * 43


@pytest.fixture()
def job_runtime(monkeypatch, settings, services):
    """The job functions run in this process, on the tests' settings (allow-list, directory root, master key)."""
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    monkeypatch.setattr(submission_job, "runtime", lambda: rt)
    monkeypatch.setattr(exports_job, "runtime", lambda: rt)
    return rt


def _admin_email(services, factory, company_slug: str) -> str:
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == company_slug))
    return factory.user("company_admin", company=company)


def _identity_body(client, headers, slug: str) -> dict:
    body = client.get(f"/api/v1/practices/{slug}/billing-identity", headers=headers).get_json()
    body.pop("updated_at")
    return body


def _put_transport(client, headers, slug: str, transport: dict):
    body = _identity_body(client, headers, slug) | {"transport": transport}
    return client.put(f"/api/v1/practices/{slug}/billing-identity", headers=headers, json=body)


def _sftp(port: int, **extra) -> dict:
    return {"transport": "sftp", "host": "127.0.0.1", "port": port, "username": "acme",
            "host_key_sha256": OTHER_KEY} | extra  # fmt: skip


def _write_transport(services, slug: str, transport: dict) -> None:
    """A row as an older version saved it (or as a database restore left it): no validation on the way in."""
    with services.db.tenant_session(slug) as s:
        s.get(BillingIdentity, 1).transport = transport
        s.commit()


class Listener:
    """A TCP port that records whether anyone connected to it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.host, self.port = host, self.sock.getsockname()[1]

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def listener():
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture()
def off_list_listener():
    lst = Listener("127.0.0.2")  # loopback, but not on the tests' allow-list (127.0.0.1)
    yield lst
    lst.close()


def _ready_claims(services, bp, factory) -> list[int]:
    ids = []
    with services.db.tenant_session(bp.slug) as s:
        patient = insured_patient(services, bp, factory)
        for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
            transition(s, claim, "ready", source="test")
            ids.append(claim.id)
        s.commit()
    return ids


# --- saving ---------------------------------------------------------------------------------------------------------


def test_environment_variables_and_raw_credentials_are_refused_naming_the_field(client, services, factory):
    bp = billing_practice(services, factory)
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    for key, value in (("password_env", "MEDBILL_SECRET_KEY"), ("private_key_env", "DATABASE_URL"),
                       ("password", "hunter2-raw")):  # fmt: skip
        refused = _put_transport(client, admin, bp.slug, _sftp(2222, **{key: value}))
        assert refused.status_code == 422, refused.get_json()
        assert f"transport.{key}" in refused.get_json()["errors"]
        assert "hunter2-raw" not in refused.get_data(as_text=True)
    agency = factory.agency([bp.slug])
    url = f"/api/v1/practices/{bp.slug}/collections/agencies/{agency.id}"
    refused = client.put(url, headers=admin, json={"sftp": _sftp(2222, password_env="MEDBILL_SECRET_KEY")})
    assert refused.status_code == 422 and "sftp.password_env" in refused.get_json()["errors"]
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(BillingIdentity, 1).transport == {}


def test_only_a_company_admin_changes_a_transport_or_delivery(client, services, factory):
    bp = billing_practice(services, factory)
    store_secret(services, bp.company_slug, "ch-pass", "pass-1")
    biller = login(client, bp.biller_email)
    changed = _put_transport(client, biller, bp.slug, _sftp(2222, password_secret="ch-pass"))
    assert changed.status_code == 403 and "transport" in changed.get_json()["errors"]
    agency = factory.agency([bp.slug])
    url = f"/api/v1/practices/{bp.slug}/collections/agencies/{agency.id}"
    assert client.put(url, headers=biller, json={"sftp": {"transport": "directory"}}).status_code == 403
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    saved = _put_transport(client, admin, bp.slug, _sftp(2222, password_secret="ch-pass"))
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["transport"]["password_secret"] == "ch-pass"
    assert "pass-1" not in saved.get_data(as_text=True)
    delivered = client.put(url, headers=admin, json={"sftp": {"transport": "directory", "subdir": "keystone"}})
    assert delivered.status_code == 200 and delivered.get_json()["sftp"] == {"transport": "directory",
                                                                              "subdir": "keystone"}  # fmt: skip


def test_another_companys_secret_cannot_be_named(client, services, factory, job_runtime, listener):
    victim = billing_practice(services, factory)
    store_secret(services, victim.company_slug, "clearinghouse", "victim-password-1")
    attacker = billing_practice(services, factory)
    admin = login(client, _admin_email(services, factory, attacker.company_slug))
    refused = _put_transport(client, admin, attacker.slug, _sftp(listener.port, password_secret="clearinghouse"))
    assert refused.status_code == 422
    assert "transport.password_secret" in refused.get_json()["errors"]
    # A row naming it anyway (written around the API) is refused before connecting: the name is looked up in the
    # attacker's own company only.
    _write_transport(services, attacker.slug, _sftp(listener.port, password_secret="clearinghouse"))
    with pytest.raises(TransportError) as info:
        submission_job.submit_claims(attacker.slug)
    assert "not available" in info.value.public and "victim-password-1" not in str(info.value)
    assert not listener.connected()


def test_old_rows_naming_environment_variables_are_refused_without_connecting(services, factory, job_runtime, listener):
    bp = billing_practice(services, factory)
    _write_transport(services, bp.slug, _sftp(listener.port, password_env="MEDBILL_SECRET_KEY"))
    with pytest.raises(TransportError) as info:
        submission_job.submit_claims(bp.slug)
    assert "password_env" in info.value.public and "company secret" in info.value.public
    assert not listener.connected()
    # The agency delivery of an old row: refused the same way.
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(TransportError):
            exports_job._deliver(s, bp.slug, _sftp(listener.port, password_env="DATABASE_URL"), "f.csv", b"x")
        with pytest.raises(TransportError):
            exports_job._deliver(s, bp.slug, {"transport": "directory", "path": "/tmp"}, "f.csv", b"x")
    assert not listener.connected()


def test_hosts_off_the_allow_list_are_refused_when_saved_and_before_connecting(
    client, services, factory, job_runtime, off_list_listener
):
    bp = billing_practice(services, factory)
    store_secret(services, bp.company_slug, "ch-pass", "pass-2")
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    for host in ("127.0.0.2", "attacker.example", "169.254.169.254"):
        refused = _put_transport(client, admin, bp.slug, _sftp(22, host=host, password_secret="ch-pass"))
        assert refused.status_code == 422, (host, refused.get_json())
        assert "transport.host" in refused.get_json()["errors"]
    agency = factory.agency([bp.slug])
    url = f"/api/v1/practices/{bp.slug}/collections/agencies/{agency.id}"
    refused = client.put(
        url, headers=admin, json={"sftp": _sftp(22, host="attacker.example", password_secret="ch-pass")}
    )
    assert refused.status_code == 422 and "sftp.host" in refused.get_json()["errors"]

    old = _sftp(off_list_listener.port, host="127.0.0.2", password_secret="ch-pass")
    _write_transport(services, bp.slug, old)
    with pytest.raises(TransportError) as info:
        submission_job.submit_claims(bp.slug)
    assert "not an allowed clearinghouse host" in info.value.public
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(TransportError):
            exports_job._deliver(s, bp.slug, old, "f.csv", b"x")
    assert not off_list_listener.connected()


def test_allow_list_entries_name_a_host_or_one_port():
    allowed = connections.OutboundPolicy(clearinghouse_hosts=("sftp.example.com", "ch.example:2222"))
    assert allowed.allows("clearinghouse", "SFTP.example.com", 22)
    assert allowed.allows("clearinghouse", "ch.example", 2222)
    assert not allowed.allows("clearinghouse", "ch.example", 22)
    assert not allowed.allows("agency", "sftp.example.com", 22)  # agencies have their own list
    assert not allowed.allows("clearinghouse", "evil.sftp.example.com", 22)


# --- the directory transport --------------------------------------------------------------------------------------


def test_directory_transport_only_inside_the_companys_own_directory(client, services, factory, job_runtime):
    bp = billing_practice(services, factory)
    other = billing_practice(services, factory)
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    for bad in ({"path": "/etc"}, {"subdir": "../" + other.company_slug}, {"subdir": "a/b"}, {"subdir": "/tmp"}):
        refused = _put_transport(client, admin, bp.slug, {"transport": "directory"} | bad)
        assert refused.status_code == 422, (bad, refused.get_json())
        assert f"transport.{next(iter(bad))}" in refused.get_json()["errors"]
    saved = _put_transport(client, admin, bp.slug, {"transport": "directory", "subdir": "mailbox"})
    assert saved.status_code == 200, saved.get_json()

    ours = company_drop(services, bp.company_slug, "mailbox")
    with services.db.tenant_session(bp.slug) as s:
        transport = submission_job.transport_for(s, bp.slug, s.get(BillingIdentity, 1))
    transport.send("claims.837", b"ISA*")
    assert (ours / "inbox" / "claims.837").read_bytes() == b"ISA*"

    # A symlink planted in the company's directory that leads to another company's is refused at connect time.
    theirs = company_drop(services, other.company_slug, "mailbox")
    (theirs / "outbox").mkdir(parents=True)
    (theirs / "outbox" / "their.835").write_bytes(b"ISA*their")
    (ours.parent / "sneaky").symlink_to(theirs)
    _write_transport(services, bp.slug, {"transport": "directory", "subdir": "sneaky"})
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(TransportError) as info:
            submission_job.transport_for(s, bp.slug, s.get(BillingIdentity, 1))
    assert "outside" in info.value.public and str(theirs) not in info.value.public
    # ...and so is an inbox inside it that is a symlink out.
    assert not (ours / "outbox").exists()  # the send above made only the inbox
    (ours / "outbox").symlink_to(theirs / "outbox")
    _write_transport(services, bp.slug, {"transport": "directory", "subdir": "mailbox"})
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(TransportError):
            submission_job.transport_for(s, bp.slug, s.get(BillingIdentity, 1))
    assert (theirs / "outbox" / "their.835").exists()


def test_directory_transport_is_off_without_an_operator_root(services, factory):
    bp = billing_practice(services, factory)
    access = admin_access(services, factory, bp.slug, bp.company_slug)
    off = connections.OutboundPolicy(clearinghouse_hosts=("127.0.0.1",))
    with services.db.tenant_session(bp.slug) as s:
        with pytest.raises(Invalid) as info:
            connections.validate(
                s, access.company_id, {"transport": "directory"}, purpose="clearinghouse", policy=off, field="transport"
            )
        assert "transport.transport" in info.value.errors
        with pytest.raises(TransportError):
            connections.build_transport(
                s, access.company_id, {"transport": "directory"}, purpose="clearinghouse", policy=off, box=None
            )


# --- secrets --------------------------------------------------------------------------------------------------------


def test_secrets_are_write_only_and_company_scoped_over_the_api(client, services, factory):
    bp = billing_practice(services, factory)
    other = billing_practice(services, factory)
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    other_admin = login(client, _admin_email(services, factory, other.company_slug))
    value = "s3cr3t-value-that-must-not-leak"
    put = client.put("/api/v1/company/secrets/clearinghouse-pass", headers=admin, json={"value": value})
    assert put.status_code == 200, put.get_json()
    assert put.get_json()["name"] == "clearinghouse-pass" and value not in put.get_data(as_text=True)
    listed = client.get("/api/v1/company/secrets", headers=admin)
    assert [i["name"] for i in listed.get_json()["items"]] == ["clearinghouse-pass"]
    assert value not in listed.get_data(as_text=True)
    assert client.put("/api/v1/company/secrets/BAD NAME", headers=admin, json={"value": "x"}).status_code == 422
    # A biller may not touch them; another company's admin neither sees nor deletes them.
    biller = login(client, bp.biller_email)
    assert client.get("/api/v1/company/secrets", headers=biller).status_code == 403
    assert client.put("/api/v1/company/secrets/x", headers=biller, json={"value": "v"}).status_code == 403
    assert client.get("/api/v1/company/secrets", headers=other_admin).get_json()["items"] == []
    assert client.get(f"/api/v1/company/secrets?company={bp.company_slug}", headers=other_admin).status_code == 404
    assert client.delete("/api/v1/company/secrets/clearinghouse-pass", headers=other_admin).status_code == 404
    with services.db.shared_session() as s:
        row = s.scalar(select(CompanySecret).where(CompanySecret.company_id == company_id(services, bp.company_slug)))
        assert value.encode() not in bytes(row.ciphertext)
        entries = s.scalars(select(AuditEntry).where(AuditEntry.object_type == "company_secret")).all()
        assert any(e.detail.get("name") == "clearinghouse-pass" for e in entries)
        assert all(value not in json.dumps(e.detail) for e in entries)
    assert client.delete("/api/v1/company/secrets/clearinghouse-pass", headers=admin).status_code == 204
    assert client.get("/api/v1/company/secrets", headers=admin).get_json()["items"] == []


def _secret_names(client, headers) -> list[str]:
    return [i["name"] for i in client.get("/api/v1/company/secrets", headers=headers).get_json()["items"]]


def test_a_secret_in_use_is_not_deleted_and_the_409_names_who_uses_it(client, services, factory):
    bp = billing_practice(services, factory)
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == bp.company_slug))
    second = billing_practice(services, factory, company=company)
    store_secret(services, bp.company_slug, "shared-pass", "pass-1")
    store_secret(services, bp.company_slug, "other-pass", "pass-2")
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    saved = _put_transport(client, admin, bp.slug, _sftp(2222, password_secret="shared-pass"))
    assert saved.status_code == 200, saved.get_json()
    agency = factory.agency([second.slug])
    url = f"/api/v1/practices/{second.slug}/collections/agencies/{agency.id}"
    delivery = {"transport": "sftp", "host": "127.0.0.1", "port": 2200, "username": "drop",
                "private_key_secret": "shared-pass", "host_key_sha256": OTHER_KEY}  # fmt: skip
    assert client.put(url, headers=admin, json={"sftp": delivery}).status_code == 200

    refused = client.delete("/api/v1/company/secrets/shared-pass", headers=admin)
    assert refused.status_code == 409, refused.get_json()
    body = refused.get_json()
    assert body["code"] == "secret_in_use"
    assert sorted(body["errors"]["used_by"]) == sorted([
        f"clearinghouse transport of practice Practice {bp.slug} ({bp.slug})",
        f"delivery to agency Agency of practice Practice {second.slug} ({second.slug})",
    ])  # fmt: skip
    assert bp.slug in body["message"] and second.slug in body["message"]
    # Nothing deleted: the secret is listed, still opens, and the connections still name it.
    assert _secret_names(client, admin) == ["other-pass", "shared-pass"]
    box = secrets.SecretBox.from_settings(services.settings)
    with services.db.shared_session() as s:
        assert secrets.reveal(s, box, company.id, "shared-pass") == "pass-1"
        deletes = s.scalars(
            select(AuditEntry).where(AuditEntry.object_id == f"{company.id}:shared-pass", AuditEntry.action == "delete")
        ).all()
        assert deletes == []
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(BillingIdentity, 1).transport["password_secret"] == "shared-pass"

    # Pointed elsewhere, one user left: still refused, naming only that one.
    assert _put_transport(client, admin, bp.slug, _sftp(2222, password_secret="other-pass")).status_code == 200
    still = client.delete("/api/v1/company/secrets/shared-pass", headers=admin)
    assert still.status_code == 409 and len(still.get_json()["errors"]["used_by"]) == 1
    assert "delivery to agency" in still.get_json()["errors"]["used_by"][0]
    # No user left: deleted.
    assert client.put(url, headers=admin, json={"sftp": None}).status_code == 200
    assert client.delete("/api/v1/company/secrets/shared-pass", headers=admin).status_code == 204
    assert _secret_names(client, admin) == ["other-pass"]
    # The one still in use by the transport is refused in turn.
    assert client.delete("/api/v1/company/secrets/other-pass", headers=admin).status_code == 409


def test_an_unused_secret_is_deleted_whatever_another_company_names(client, services, factory):
    ours = billing_practice(services, factory)
    theirs = billing_practice(services, factory)
    for bp in (ours, theirs):
        store_secret(services, bp.company_slug, "clearinghouse", f"{bp.slug}-pass")
    their_admin = login(client, _admin_email(services, factory, theirs.company_slug))
    used = _put_transport(client, their_admin, theirs.slug, _sftp(2222, password_secret="clearinghouse"))
    assert used.status_code == 200, used.get_json()
    admin = login(client, _admin_email(services, factory, ours.company_slug))
    assert client.delete("/api/v1/company/secrets/clearinghouse", headers=admin).status_code == 204
    assert _secret_names(client, admin) == []
    assert _secret_names(client, their_admin) == ["clearinghouse"]
    assert client.delete("/api/v1/company/secrets/clearinghouse", headers=admin).status_code == 404


def test_a_ciphertext_moved_to_another_company_does_not_decrypt(services, factory):
    x, y = factory.company(), factory.company()
    store_secret(services, x.slug, "sftp", "only-for-x")
    store_secret(services, y.slug, "sftp", "only-for-y")
    box = secrets.SecretBox.from_settings(services.settings)
    with services.db.shared_session() as s:
        stolen = s.scalar(select(CompanySecret.ciphertext).where(CompanySecret.company_id == x.id))
        s.execute(update(CompanySecret).where(CompanySecret.company_id == y.id).values(ciphertext=stolen))
        s.commit()
        assert secrets.reveal(s, box, x.id, "sftp") == "only-for-x"
        with pytest.raises(secrets.SecretUnreadable):
            secrets.reveal(s, box, y.id, "sftp")
    # Under another name of the same company it does not open either; nor with another master key.
    with pytest.raises(secrets.SecretUnreadable):
        box.open(x.id, "other-name", bytes(stolen))
    with pytest.raises(secrets.SecretUnreadable):
        secrets.SecretBox(os.urandom(32)).open(x.id, "sftp", bytes(stolen))


def test_cli_sets_a_secret_from_stdin_never_argv(env, services, factory):
    company = factory.company()
    done = run_cli(env, "secrets", "set", "--company", company.slug, "agency-key", input="from-stdin-1\n")
    assert done.returncode == 0, done.stderr
    listed = run_cli(env, "secrets", "list", "--company", company.slug)
    assert listed.stdout.startswith("agency-key\t") and "from-stdin-1" not in listed.stdout
    box = secrets.SecretBox.from_settings(services.settings)
    with services.db.shared_session() as s:
        assert secrets.reveal(s, box, company.id, "agency-key") == "from-stdin-1"


# --- audit and errors -----------------------------------------------------------------------------------------------


def test_transport_changes_are_audited_with_masked_before_and_after(client, services, factory):
    bp = billing_practice(services, factory)
    store_secret(services, bp.company_slug, "ch-pass", "pass-3")
    # An old row holding a raw password: the API shows it masked, the audit entry of the change too.
    _write_transport(services, bp.slug, _sftp(2222, password="legacy-raw-pass"))
    admin = login(client, _admin_email(services, factory, bp.company_slug))
    shown = client.get(f"/api/v1/practices/{bp.slug}/billing-identity", headers=admin)
    assert shown.get_json()["transport"]["password"] == "***" and "legacy-raw-pass" not in shown.get_data(as_text=True)
    new = _sftp(2222, password_secret="ch-pass")
    assert _put_transport(client, admin, bp.slug, new).status_code == 200
    agency = factory.agency([bp.slug])
    url = f"/api/v1/practices/{bp.slug}/collections/agencies/{agency.id}"
    assert client.put(url, headers=admin, json={"sftp": new}).status_code == 200
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == bp.slug))
        ours = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "change_transport", AuditEntry.practice_id == practice_id)
        ).all()
    assert len(ours) == 2 and all(e.detail["after"] == new for e in ours)
    identity_entry = next(e for e in ours if e.object_type == "billing_identity")
    assert identity_entry.detail["before"]["password"] == "***"
    assert identity_entry.detail["before"]["host"] == "127.0.0.1"
    assert "legacy-raw-pass" not in json.dumps(identity_entry.detail) and "pass-3" not in json.dumps(ours[0].detail)
    terms_entry = next(e for e in ours if e.object_type == "agency_terms")
    assert terms_entry.detail["before"] == {} and terms_entry.object_id == str(agency.id)


def test_tenant_visible_errors_carry_no_host_key(services, factory, job_runtime, tmp_path):
    bp = billing_practice(services, factory)
    store_secret(services, bp.company_slug, "ch-pass", "pass-4")
    root = tmp_path / "sftp"
    (root / "inbox").mkdir(parents=True)
    port, fingerprint, proc = start_sftp_server(root, "acme", "pass-4")
    try:
        # Pinned to a key the server does not have: the worker must not authenticate, and must not tell the
        # practice which key the server offered.
        _write_transport(services, bp.slug, _sftp(port, password_secret="ch-pass", timeout=5))
        _ready_claims(services, bp, factory)
        result = submission_job.submit_claims(bp.slug)
        assert result["submission"]["status"] == "failed"
        with services.db.tenant_session(bp.slug) as s:
            error = s.scalar(select(Submission.last_error))
        assert "host key did not match" in error and "127.0.0.1" in error
        assert fingerprint not in error and fingerprint not in result["submission"]["error"]
        assert fingerprint.removeprefix("SHA256:")[:20] not in error
        assert list((root / "inbox").iterdir()) == []

        agency = factory.agency([bp.slug])
        access = admin_access(services, factory, bp.slug, bp.company_slug)
        with services.db.tenant_session(bp.slug) as s:
            collections.set_terms(
                s, access, agency.id, {"sftp": _sftp(port, password_secret="ch-pass", timeout=5)},
                policy=policy(services),
            )  # fmt: skip
            s.commit()
        with services.db.tenant_session(bp.slug) as s:
            with pytest.raises(TransportError) as info:
                exports_job._deliver(s, bp.slug, _sftp(port, password_secret="ch-pass", timeout=5), "f.csv", b"x")
        assert "host key did not match" in info.value.public and fingerprint not in str(info.value)
        assert fingerprint not in json.dumps(result)
    finally:
        stop_sftp_server(proc)
