"""Bad input gets the documented error shape, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tenants.models import ApiToken
from tests.conftest import PATIENT, login

SHAPE = {"status", "code", "message", "errors"}


def _assert_shape(response, status: int, code: str):
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == SHAPE
    assert body["status"] == status and body["code"] == code
    assert body["message"]
    return body


def test_malformed_json(client, world):
    headers = login(client, world.users["biller_x"]) | {"Content-Type": "application/json"}
    response = client.post(f"/api/v1/practices/{world.practices['A']}/patients", headers=headers, data="{not json")
    body = _assert_shape(response, 400, "bad_request")
    assert "JSON" in body["message"]


def test_wrong_types_name_each_field(client, world):
    headers = login(client, world.users["biller_x"])
    bad = PATIENT | {"account_number": "T-1", "first_name": 12, "date_of_birth": "03/02/1980", "sex": "X"}
    response = client.post(f"/api/v1/practices/{world.practices['A']}/patients", headers=headers, json=bad)
    body = _assert_shape(response, 422, "invalid")
    assert set(body["errors"]) == {"first_name", "date_of_birth", "sex"}


def test_domain_validation_names_the_field(client, world):
    headers = login(client, world.users["biller_x"])
    bad = PATIENT | {"account_number": "T-2", "state": "ZZ", "postal_code": "1234x", "date_of_birth": "2999-01-01"}
    response = client.post(f"/api/v1/practices/{world.practices['A']}/patients", headers=headers, json=bad)
    body = _assert_shape(response, 422, "invalid")
    assert set(body["errors"]) == {"state", "postal_code", "date_of_birth"}


def test_duplicate_account_number_is_a_conflict(client, world):
    headers = login(client, world.users["biller_x"])
    url = f"/api/v1/practices/{world.practices['B']}/patients"
    assert client.post(url, headers=headers, json=PATIENT | {"account_number": "DUP-1"}).status_code == 201
    body = _assert_shape(client.post(url, headers=headers, json=PATIENT | {"account_number": "DUP-1"}), 409, "conflict")
    assert "account_number" in body["errors"]


def test_unknown_practice_and_bad_slug(client, world):
    headers = login(client, world.users["biller_x"])
    _assert_shape(client.get("/api/v1/practices/nowhere/patients", headers=headers), 404, "not_found")
    _assert_shape(client.get("/api/v1/practices/Bad-Slug!/patients", headers=headers), 404, "not_found")
    _assert_shape(client.get("/api/v1/practices/x;drop/patients", headers=headers), 404, "not_found")


def test_missing_and_garbage_tokens(client, world):
    url = f"/api/v1/practices/{world.practices['A']}/patients"
    response = client.get(url)
    _assert_shape(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_shape(client.get(url, headers={"Authorization": "Bearer nonsense"}), 401, "unauthorized")
    _assert_shape(client.get(url, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401, "unauthorized")


def test_expired_token(client, world, services):
    headers = login(client, world.users["biller_x"])
    raw = headers["Authorization"].split()[1]
    from tenants.auth import token_hash

    with services.db.shared_session() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == token_hash(raw))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        s.commit()
    body = _assert_shape(client.get("/api/v1/practices", headers=headers), 401, "unauthorized")
    assert "expired" in body["message"]


def test_wrong_password(client, world):
    response = client.post("/api/v1/auth/token", json={"email": world.users["biller_x"], "password": "nope-nope-nope"})
    _assert_shape(response, 401, "unauthorized")
    response = client.post("/api/v1/auth/token", json={"email": "nobody@example.test", "password": "nope-nope-nope"})
    _assert_shape(response, 401, "unauthorized")
    _assert_shape(client.post("/api/v1/auth/token", json={"email": "x@y.z"}), 422, "invalid")


def test_page_out_of_range_and_bad_query(client, world):
    headers = login(client, world.users["biller_x"])
    url = f"/api/v1/practices/{world.practices['A']}/patients"
    _assert_shape(client.get(url + "?per_page=0", headers=headers), 422, "invalid")
    _assert_shape(client.get(url + "?page=abc", headers=headers), 422, "invalid")
    empty = client.get(url + "?page=999", headers=headers).get_json()
    assert empty["items"] == [] and empty["meta"]["total"] >= 3


def test_unknown_route_and_method(client, world):
    headers = login(client, world.users["biller_x"])
    _assert_shape(client.get("/api/v1/nothing-here", headers=headers), 404, "not_found")
    _assert_shape(client.delete("/api/v1/practices", headers=headers), 405, "method_not_allowed")


def test_bad_patient_id(client, world):
    headers = login(client, world.users["biller_x"])
    url = f"/api/v1/practices/{world.practices['A']}/patients/"
    _assert_shape(client.get(url + "abc", headers=headers), 404, "not_found")
    _assert_shape(client.get(url + "99999999999999999999999", headers=headers), 404, "not_found")
