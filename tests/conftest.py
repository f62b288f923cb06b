"""Test fixtures on real servers: a fresh PostgreSQL database built by running the migrations, Redis (a DB index of
its own), a moto S3 server in its own process, the app with the boto3 storage, and a small world of two billing
companies, three practices and users of every role."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import psycopg
import pytest
from redis import Redis

from medbill.config import Settings
from tests.s3server import start_moto_server, stop_moto_server
from tests.support.servers import pg_admin, redis_base, redis_db

PASSWORD = "correct-horse-battery"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Public sample X12 files, copied unchanged with their origin and licence (tests/fixtures/x12/MANIFEST.md), so a
# clone of the project alone collects and passes.
X12_FIXTURES = Path(os.environ.get("MEDBILL_X12_FIXTURES") or PROJECT_ROOT / "tests" / "fixtures" / "x12")


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # Keep a developer's real profile/config out of the tests.
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        yield


@pytest.fixture(scope="session")
def s3_endpoint(aws_env: None) -> Iterator[str]:
    url, proc = start_moto_server()
    try:
        yield url
    finally:
        stop_moto_server(proc)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this test run's own, migrated from empty by `migrate_all`, dropped at the end."""
    from sqlalchemy import create_engine

    from tenants.migrate import migrate_all

    name = f"medbill_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(pg_admin(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin().rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    engine = create_engine(url)
    migrate_all(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    # A Redis DB of the run's own (tests.support.servers.redis_db), so two runs on one machine never take each
    # other's jobs.
    url = f"{redis_base()}/{redis_db()}"
    Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    bucket = f"medbill-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def settings(database_url, redis_url, s3_endpoint, s3_bucket, tmp_path_factory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        s3_bucket=s3_bucket,
        s3_endpoint_url=s3_endpoint,
        s3_region="us-east-1",
        secret_key="test-secret-" + secrets.token_hex(8),
        secure_cookies=False,
        secrets_key=base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
        # The tests' SFTP servers listen on loopback; other loopback addresses (127.0.0.2) are off the list.
        clearinghouse_hosts=("127.0.0.1",),
        agency_hosts=("127.0.0.1",),
        directory_transport_root=data_dir / "drops",
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess (worker, CLI) needs to reach the same servers as the tests."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        S3_BUCKET=settings.s3_bucket or "",
        S3_ENDPOINT_URL=settings.s3_endpoint_url or "",
        S3_REGION=settings.s3_region or "",
        MEDBILL_SECRET_KEY=settings.secret_key,
        MEDBILL_DATA_DIR=str(settings.data_dir),
        MEDBILL_SECRETS_KEY=settings.secrets_key,
        MEDBILL_CLEARINGHOUSE_HOSTS=",".join(settings.clearinghouse_hosts),
        MEDBILL_AGENCY_HOSTS=",".join(settings.agency_hosts),
        MEDBILL_DIRECTORY_TRANSPORT_ROOT=str(settings.directory_transport_root or ""),
        PYTHONPATH=str(PROJECT_ROOT),
    )
    return env


@pytest.fixture(scope="session")
def env(settings) -> dict[str, str]:
    return settings_env(settings)


def run_cli(env: dict[str, str], *args: str, timeout: float = 120, input: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "medbill.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        cwd=PROJECT_ROOT,
    )


@pytest.fixture(scope="session")
def app(settings):
    from medbill.app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture(scope="session")
def services(app):
    return app.extensions["medbill"]


@pytest.fixture()
def client(app):
    return app.test_client()


_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}_{secrets.token_hex(2)}"


def login(client, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


PATIENT = {
    "first_name": "Ann",
    "last_name": "Lee",
    "date_of_birth": "1980-02-03",
    "sex": "F",
    "address_line1": "1 Main St",
    "city": "Austin",
    "state": "TX",
    "postal_code": "78701",
}


@dataclass
class World:
    """Company X runs practices A and B; company Y runs C. An agency serves A and has one placement there."""

    practices: dict[str, str] = field(default_factory=dict)  # "A" -> slug
    users: dict[str, str] = field(default_factory=dict)  # role key -> email
    patients: dict[str, list[dict]] = field(default_factory=dict)  # "A" -> [{"id", "last_name", ...}]
    placed_patient_id: int = 0
    agency_id: int = 0


class Factory:
    """Creates registry objects and patients through the services, committing each."""

    def __init__(self, services) -> None:
        self.db = services.db

    def company(self, slug: str | None = None):
        from tenants.registry import create_company

        with self.db.shared_session() as s:
            company = create_company(s, slug or unique("co"), "Company " + (slug or ""))
            s.commit()
            return company

    def practice(self, company_slug: str, slug: str | None = None):
        from tenants.registry import create_practice

        slug = slug or unique("pr")
        return create_practice(self.db.engine, company_slug, slug, "Practice " + slug)

    def agency(self, practice_slugs: list[str]):
        from tenants.registry import create_agency, get_practice, link_agency

        with self.db.shared_session() as s:
            agency = create_agency(s, unique("ag"), "Agency")
            for slug in practice_slugs:
                link_agency(s, agency, get_practice(s, slug))
            s.commit()
            return agency

    def user(self, role: str, *, company=None, practice=None, agency=None) -> str:
        from tenants.models import BillingCompany, CollectionAgency, Practice
        from tenants.registry import create_user, grant

        email = f"{unique(role)}@example.test"
        with self.db.shared_session() as s:
            user = create_user(s, email, role.title(), PASSWORD)
            grant(
                s,
                user,
                role,
                company=s.get(BillingCompany, company.id) if company else None,
                practice=s.get(Practice, practice.id) if practice else None,
                agency=s.get(CollectionAgency, agency.id) if agency else None,
            )
            s.commit()
        return email

    def patient(self, practice_slug: str, **overrides) -> dict:
        from billing.models import Patient

        values = PATIENT | {"account_number": unique("ACC").replace("_", "-")[:30]} | overrides
        values["date_of_birth"] = __import__("datetime").date.fromisoformat(values["date_of_birth"])
        with self.db.tenant_session(practice_slug) as s:
            patient = Patient(**values)
            s.add(patient)
            s.commit()
            return {"id": patient.id, **{k: str(v) for k, v in values.items()}}

    def place(self, practice_slug: str, patient_id: int, agency_id: int) -> None:
        from billing.models import AgencyPlacement

        with self.db.tenant_session(practice_slug) as s:
            s.add(AgencyPlacement(patient_id=patient_id, agency_id=agency_id))
            s.commit()


@pytest.fixture(scope="session")
def factory(services) -> Factory:
    return Factory(services)


@pytest.fixture(scope="session")
def world(factory) -> World:
    w = World()
    x, y = factory.company(), factory.company()
    pa, pb = factory.practice(x.slug), factory.practice(x.slug)
    pc = factory.practice(y.slug)
    w.practices = {"A": pa.slug, "B": pb.slug, "C": pc.slug}
    agency = factory.agency([pa.slug])
    w.agency_id = agency.id
    w.users = {
        "admin_x": factory.user("company_admin", company=x),
        "biller_x": factory.user("biller", company=x),
        "biller_y": factory.user("biller", company=y),
        "doctor_a": factory.user("doctor", practice=pa),
        "doctor_b": factory.user("doctor", practice=pb),
        "agency": factory.user("agency", agency=agency),
    }
    for key, slug in w.practices.items():
        w.patients[key] = [
            factory.patient(slug, first_name=f"First{key}{i}", last_name=f"Secret{key}{i}z") for i in range(3)
        ]
    w.placed_patient_id = w.patients["A"][0]["id"]
    factory.place(pa.slug, w.placed_patient_id, agency.id)
    return w
