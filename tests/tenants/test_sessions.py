"""Schema-scoped sessions: the translate map picks the practice, pooled connections carry nothing between
tenants, and unqualified SQL finds no tenant table."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import ProgrammingError

from billing.models import Patient
from tenants.db import Database, schema_for, set_local_search_path, validate_slug


def test_one_pooled_connection_serves_tenants_alternately(settings, world):
    db = Database(settings.database_url, pool_size=1)
    db.engine.pool._max_overflow = 0  # exactly one connection, reused by every session below
    try:
        for _ in range(3):
            for key in ("A", "C", "B"):
                with db.tenant_session(world.practices[key]) as s:
                    names = set(s.scalars(select(Patient.last_name)))
                    assert {p["last_name"] for p in world.patients[key]} <= names
                    others = {p["last_name"] for k, ps in world.patients.items() if k != key for p in ps}
                    assert not names & others
    finally:
        db.dispose()


def test_raw_sql_without_a_schema_fails_loudly(services, world):
    with services.db.shared_session() as s:
        with pytest.raises(ProgrammingError, match="does not exist"):
            s.execute(text("SELECT count(*) FROM patients"))


def test_set_local_search_path_is_scoped_to_the_transaction(services, world):
    slug = world.practices["A"]
    with services.db.tenant_session(slug) as s:
        set_local_search_path(s, slug)
        assert s.execute(text("SELECT count(*) FROM patients")).scalar() >= 3
        s.commit()
        with pytest.raises(ProgrammingError):
            s.execute(text("SELECT count(*) FROM patients"))


@pytest.mark.parametrize("slug", ["", "a", "A_b", "1abc", "ab-c", "ab;drop", "a" * 42, "ab c", "ab\x00"])
def test_bad_slugs_never_become_schema_names(slug):
    with pytest.raises(ValueError):
        validate_slug(slug)
    with pytest.raises(ValueError):
        schema_for(slug)


def test_health_names_what_is_down(settings):
    from medbill.app import create_app

    broken = create_app(settings.with_(redis_url="redis://127.0.0.1:1/0"))
    response = broken.test_client().get("/api/v1/health")
    body = response.get_json()
    assert response.status_code == 503
    assert body["database"] == "ok" and body["storage"] == "ok"
    assert body["redis"].startswith("down") and body["status"] != "ok"
