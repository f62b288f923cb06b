"""Login tokens, long-lived API tokens (hashed, shown once, revocable) and the health endpoint."""

from __future__ import annotations

from sqlalchemy import select

from tenants.models import ApiToken
from tests.conftest import PASSWORD, login


def test_login_returns_bearer_token(client, world):
    response = client.post(
        "/api/v1/auth/token",
        json={
            "email": world.users["biller_x"].upper(),
            "password": PASSWORD,
        },
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("mb_")


def test_api_token_lifecycle(client, world, services):
    admin = login(client, world.users["admin_x"])
    created = client.post("/api/v1/tokens", headers=admin, json={"name": "clearinghouse sync"})
    assert created.status_code == 201, created.get_json()
    token = created.get_json()
    secret = token["token"]
    with services.db.shared_session() as s:
        stored = s.get(ApiToken, token["id"])
        assert stored.token_hash != secret and secret not in stored.token_hash and stored.kind == "api"
    listed = client.get("/api/v1/tokens", headers=admin).get_json()
    assert token["id"] in [t["id"] for t in listed]
    assert all("token" not in t for t in listed)

    integration = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/practices", headers=integration).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/practices", headers=integration).status_code == 401
    assert client.delete(f"/api/v1/tokens/{token['id']}", headers=admin).status_code == 404


def test_only_admins_manage_tokens_and_only_their_company(client, world, services):
    biller = login(client, world.users["biller_x"])
    assert client.get("/api/v1/tokens", headers=biller).status_code == 403
    assert client.post("/api/v1/tokens", headers=biller, json={"name": "x"}).status_code == 403
    admin = login(client, world.users["admin_x"])
    # A user of another company is not the admin's to issue tokens for.
    with services.db.shared_session() as s:
        from tenants.models import User

        other = s.scalar(select(User.id).where(User.email == world.users["biller_y"]))
    assert client.post("/api/v1/tokens", headers=admin, json={"name": "x", "user_id": other}).status_code == 404


def test_health_reports_every_dependency(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok", "storage": "ok"}


def test_openapi_document_lists_the_api(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/auth/token", "/api/v1/health", "/api/v1/practices/{slug}/patients", "/api/v1/jobs/{job_id}"):
        assert path in spec["paths"]
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert client.get("/api/docs").status_code == 200


def test_every_api_route_declares_a_policy(app):
    from api.security import unguarded_routes

    assert unguarded_routes(app) == []
