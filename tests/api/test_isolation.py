"""A caller never reaches another tenant's data: every patient endpoint, every role, practice B's slug and ids."""

from __future__ import annotations

import io

import pytest

from tests.conftest import PATIENT, login

ROLES_OUTSIDE_C = ["admin_x", "biller_x", "doctor_a", "doctor_b", "agency"]


def _endpoints(slug: str, patient_id: int):
    body = PATIENT | {"account_number": "X-1"}
    csv = b"account_number,first_name,last_name,date_of_birth,sex,address_line1,city,state,postal_code\n"
    return [
        ("GET", f"/api/v1/practices/{slug}", None),
        ("GET", f"/api/v1/practices/{slug}/patients", None),
        ("GET", f"/api/v1/practices/{slug}/patients?q=Secret", None),
        ("POST", f"/api/v1/practices/{slug}/patients", body),
        ("GET", f"/api/v1/practices/{slug}/patients/{patient_id}", None),
        ("PATCH", f"/api/v1/practices/{slug}/patients/{patient_id}", {"city": "Nowhere"}),
        ("POST", f"/api/v1/practices/{slug}/patients/imports", {"file": (io.BytesIO(csv), "p.csv")}),
        ("GET", f"/api/v1/practices/{slug}/patients/imports/1", None),
    ]


def _call(client, method, url, body, headers):
    if isinstance(body, dict) and "file" in body:
        return client.open(url, method=method, headers=headers, data=body, content_type="multipart/form-data")
    return client.open(url, method=method, headers=headers, json=body)


def _secret_names(world, key: str) -> list[str]:
    return [p["last_name"] for p in world.patients[key]] + [p["first_name"] for p in world.patients[key]]


@pytest.mark.parametrize("role", ROLES_OUTSIDE_C)
def test_other_company_practice_is_404_for_every_endpoint(client, world, role):
    headers = login(client, world.users[role])
    slug = world.practices["C"]
    for method, url, body in _endpoints(slug, world.patients["C"][0]["id"]):
        response = _call(client, method, url, body, headers)
        assert response.status_code == 404, (role, method, url, response.status_code)
        text = response.get_data(as_text=True)
        assert response.get_json()["code"] == "not_found"
        for secret in _secret_names(world, "C"):
            assert secret not in text


def test_unknown_practice_answers_exactly_like_a_foreign_one(client, world):
    headers = login(client, world.users["biller_x"])
    foreign = client.get(f"/api/v1/practices/{world.practices['C']}/patients", headers=headers)
    unknown = client.get("/api/v1/practices/no_such_practice/patients", headers=headers)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.get_json()["code"] == unknown.get_json()["code"]
    assert foreign.get_json()["message"].replace(world.practices["C"], "X") == unknown.get_json()["message"].replace(
        "no_such_practice", "X"
    )


@pytest.mark.parametrize("role", ["doctor_a", "agency"])
def test_practice_b_of_the_same_company_is_404_for_single_practice_roles(client, world, role):
    headers = login(client, world.users[role])
    slug = world.practices["B"]
    for method, url, body in _endpoints(slug, world.patients["B"][0]["id"]):
        response = _call(client, method, url, body, headers)
        assert response.status_code == 404, (role, method, url)
        for secret in _secret_names(world, "B"):
            assert secret not in response.get_data(as_text=True)


def test_ids_of_another_practice_do_not_cross_over(client, world, factory):
    """Patient ids are per schema: an id that exists only in C is not found through A."""
    extra = [factory.patient(world.practices["C"], last_name="OnlyInCz") for _ in range(6)]
    headers = login(client, world.users["biller_x"])
    listed_a = client.get(f"/api/v1/practices/{world.practices['A']}/patients?per_page=200", headers=headers)
    max_a = max(p["id"] for p in listed_a.get_json()["items"])
    for patient in extra:
        if patient["id"] > max_a:
            response = client.get(f"/api/v1/practices/{world.practices['A']}/patients/{patient['id']}", headers=headers)
            assert response.status_code == 404
            assert "OnlyInCz" not in response.get_data(as_text=True)


def test_doctor_is_forbidden_patient_data_of_own_practice(client, world):
    headers = login(client, world.users["doctor_a"])
    slug = world.practices["A"]
    assert client.get(f"/api/v1/practices/{slug}", headers=headers).status_code == 200
    for method, url, body in _endpoints(slug, world.patients["A"][0]["id"])[1:]:
        response = _call(client, method, url, body, headers)
        assert response.status_code == 403, (method, url)
        for secret in _secret_names(world, "A"):
            assert secret not in response.get_data(as_text=True)


def test_agency_sees_only_its_placements(client, world):
    headers = login(client, world.users["agency"])
    slug = world.practices["A"]
    listed = client.get(f"/api/v1/practices/{slug}/patients", headers=headers).get_json()
    assert [p["id"] for p in listed["items"]] == [world.placed_patient_id]
    assert listed["meta"]["total"] == 1
    for patient in world.patients["A"]:
        response = client.get(f"/api/v1/practices/{slug}/patients/{patient['id']}", headers=headers)
        assert response.status_code == (200 if patient["id"] == world.placed_patient_id else 404)
    assert client.post(f"/api/v1/practices/{slug}/patients", headers=headers, json=PATIENT).status_code == 403


def test_practice_list_shows_only_visible_practices(client, world):
    expected = {
        "biller_x": {"A", "B"},
        "admin_x": {"A", "B"},
        "biller_y": {"C"},
        "doctor_a": {"A"},
        "doctor_b": {"B"},
        "agency": {"A"},
    }
    for role, keys in expected.items():
        listed = client.get("/api/v1/practices", headers=login(client, world.users[role])).get_json()
        slugs = {p["slug"] for p in listed}
        assert slugs == {world.practices[k] for k in keys}, role


def test_company_biller_reads_and_writes_all_company_practices(client, world):
    headers = login(client, world.users["biller_x"])
    for key in ("A", "B"):
        listed = client.get(f"/api/v1/practices/{world.practices[key]}/patients?q=Secret{key}", headers=headers)
        assert listed.status_code == 200
        assert {p["last_name"] for p in listed.get_json()["items"]} == {p["last_name"] for p in world.patients[key]}
