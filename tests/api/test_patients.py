"""Patients API: register, read, update, list with pagination and search; every read and write is audited."""

from __future__ import annotations

from sqlalchemy import select

from tenants.models import AuditEntry, Practice
from tests.conftest import PATIENT, login, unique


def _audit(services, practice_slug: str, object_type: str = "patient"):
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == practice_slug))
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.practice_id == practice_id, AuditEntry.object_type == object_type)
                .order_by(AuditEntry.id)
            )
        )


def test_create_read_update_and_audit(client, world, factory, services):
    company = factory.company()
    practice = factory.practice(company.slug)
    email = factory.user("biller", company=company)
    headers = login(client, email)
    base = f"/api/v1/practices/{practice.slug}/patients"

    created = client.post(base, headers=headers, json=PATIENT | {"account_number": "P-1", "postal_code": "78701-1234"})
    assert created.status_code == 201, created.get_json()
    patient = created.get_json()
    assert patient["postal_code"] == "787011234" and patient["middle_name"] == ""

    read = client.get(f"{base}/{patient['id']}", headers=headers)
    assert read.status_code == 200 and read.get_json()["account_number"] == "P-1"

    patched = client.patch(f"{base}/{patient['id']}", headers=headers, json={"city": "Dallas", "phone": "512-555-0100"})
    assert patched.status_code == 200
    assert patched.get_json()["city"] == "Dallas" and patched.get_json()["last_name"] == "Lee"
    assert patched.get_json()["updated_at"] > patient["updated_at"]

    entries = _audit(services, practice.slug)
    assert [(e.action, e.object_id) for e in entries] == [
        ("create", str(patient["id"])),
        ("read", str(patient["id"])),
        ("update", str(patient["id"])),
    ]
    assert entries[2].detail == {"fields": ["city", "phone"]}
    assert all(e.user_id is not None and e.at is not None for e in entries)


def test_list_paginates_searches_and_audits(client, factory, services):
    company = factory.company()
    practice = factory.practice(company.slug)
    for i in range(7):
        factory.patient(practice.slug, last_name=f"Zed{i:02d}", first_name="Pat")
    factory.patient(practice.slug, last_name="Alpha", first_name="Only")
    headers = login(client, factory.user("biller", company=company))
    base = f"/api/v1/practices/{practice.slug}/patients"

    page1 = client.get(base + "?per_page=3", headers=headers).get_json()
    page3 = client.get(base + "?per_page=3&page=3", headers=headers).get_json()
    assert page1["meta"] == {"page": 1, "per_page": 3, "total": 8}
    assert [p["last_name"] for p in page1["items"]] == ["Alpha", "Zed00", "Zed01"]
    assert [p["last_name"] for p in page3["items"]] == ["Zed05", "Zed06"]

    found = client.get(base + "?q=alp", headers=headers).get_json()
    assert [p["last_name"] for p in found["items"]] == ["Alpha"]

    lists = [e for e in _audit(services, practice.slug) if e.action == "list"]
    assert len(lists) == 3
    assert lists[0].detail["ids"] == [p["id"] for p in page1["items"]]


def test_failed_write_leaves_nothing_behind(client, factory, services):
    company = factory.company()
    practice = factory.practice(company.slug)
    headers = login(client, factory.user("biller", company=company))
    base = f"/api/v1/practices/{practice.slug}/patients"
    bad = PATIENT | {"account_number": unique("B")[:20].replace("_", "-"), "state": "QQ"}
    assert client.post(base, headers=headers, json=bad).status_code == 422
    assert client.get(base, headers=headers).get_json()["meta"]["total"] == 0
    assert [e.action for e in _audit(services, practice.slug)] == ["list"]
