"""Outside services going away and coming back, with real servers: a Redis of the test's own restarted while jobs
are queued and running (append-only file: the jobs survive and finish); the API answering 503 with a clear JSON
message while Redis, PostgreSQL or S3 is away, and working again once it is back; the app's database connections
terminated (the pool reconnects); S3 away while a statement run renders its PDFs (the job retries with backoff and
finishes once S3 is back, nothing recorded without its file)."""

from __future__ import annotations

import dataclasses
import io

import boto3
import pytest
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select, text

from billing import statements
from billing.models import InboundFile, Statement, StatementRun
from medbill.app import create_app
from tenants.models import UnmatchedEdiSet
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit
from tests.conftest import X12_FIXTURES, login, settings_env
from tests.faults.support import RedisServer, TcpProxy, free_port, kill_all, start_worker, wait_for


def _app(settings, **changes):
    application = create_app(dataclasses.replace(settings, **changes))
    application.config["TESTING"] = True
    return application


def _start_run(services_like, slug: str) -> tuple[int, str]:
    with services_like.db.tenant_session(slug) as s:
        run, created = statements.start_run(s, None, trigger="user")
        assert created
        run.job_id = services_like.dispatcher.enqueue_after_commit(
            s, "statements", "jobs.statements.run_statements", slug, run.id, timeout=3600
        )
        s.commit()
        return run.id, run.job_id


def _status(redis, job_id: str) -> str | None:
    try:  # a job hash read mid-update can be partial: read again on the next poll
        status = Job.fetch(job_id, connection=redis).get_status()
        return getattr(status, "value", status)
    except NoSuchJobError:
        return None


def _run(services, slug: str, run_id: int) -> StatementRun:
    with services.db.tenant_session(slug) as s:
        return s.get(StatementRun, run_id)


def _patients(services, factory, bp, n: int) -> list[int]:
    out = []
    for _ in range(n):
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=40)
        out.append(pid)
    return out


def test_redis_restarted_with_jobs_queued_and_running(settings, services, factory, tmp_path):
    redis = RedisServer(tmp_path / "redis", appendonly=True)
    redis.start()
    app = _app(settings, redis_url=redis.url)
    mine = app.extensions["medbill"]
    env = settings_env(dataclasses.replace(settings, redis_url=redis.url))
    worker = None
    try:
        running = billing_practice(services, factory)
        _patients(services, factory, running, 25)
        queued = [billing_practice(services, factory) for _ in range(2)]
        for bp in queued:
            _patients(services, factory, bp, 2)
        run_id, job_id = _start_run(mine, running.slug)
        worker = start_worker(env, "statements", log=tmp_path / "worker.log")
        wait_for(lambda: _run(services, running.slug, run_id).statements_done >= 2, timeout=40, what="the run")
        later = [_start_run(mine, bp.slug) for bp in queued]  # queued behind the running one

        client = app.test_client()
        headers = login(client, running.biller_email)  # logins are rate-limited in Redis: signed in before it goes
        redis.stop()  # killed: what the append-only file holds is what comes back
        down = client.post(f"/api/v1/practices/{running.slug}/collections/exports", headers=headers, json={})
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert down.get_json()["code"] == "unavailable" and "Redis" in down.get_json()["message"]
        redis.start()

        def all_done() -> bool:
            return all(_run(services, bp.slug, rid).status == "done"
                       for bp, (rid, _) in [(running, (run_id, job_id)), *zip(queued, later, strict=True)])  # fmt: skip

        wait_for(all_done, timeout=60, what="every run to finish after the restart", every=0.5)
        for bp, rid in [(running, run_id), *[(bp, rid) for bp, (rid, _) in zip(queued, later, strict=True)]]:
            with services.db.tenant_session(bp.slug) as s:
                patients = s.scalars(select(Statement.patient_id).where(Statement.run_id == rid)).all()
                assert len(patients) == len(set(patients)) == _run(services, bp.slug, rid).patients_selected
        up = client.post(f"/api/v1/practices/{running.slug}/collections/exports", headers=headers, json={})
        assert up.status_code == 202
        assert Queue("exports", connection=mine.dispatcher.redis).fetch_job(up.get_json()["job_id"]) is not None
    finally:
        if worker is not None and worker.poll() is None:
            kill_all(worker)
        redis.stop()


def test_database_connections_dropped_and_database_away(app, client, settings, services, world):
    headers = login(client, world.users["biller_x"])
    url = f"/api/v1/practices/{world.practices['A']}/patients"
    assert client.get(url, headers=headers).status_code == 200  # the pool now holds connections
    with services.db.engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )  # fmt: skip
        ).scalar()
    assert killed >= 1
    for _ in range(3):  # pool_pre_ping finds each dead connection on checkout and opens a new one
        assert client.get(url, headers=headers).status_code == 200

    closed = free_port()
    away = _app(settings, database_url=settings.database_url.replace(":5432/", f":{closed}/"))
    response = away.test_client().post("/api/v1/auth/token", json={"email": world.users["biller_x"], "password": "x"})
    assert response.status_code == 503, response.data[:500]
    body = response.get_json()
    assert body["code"] == "unavailable" and "database" in body["message"] and "Traceback" not in response.text


@pytest.fixture()
def s3_behind_proxy(s3_endpoint, s3_bucket):
    proxy = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1]))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_s3_away_then_back(settings, services, factory, s3_behind_proxy, tmp_path, request, s3_endpoint):
    proxy = s3_behind_proxy
    # A Redis of the test's own: the job's whole life (fail, wait for its retry, run again) is watched here.
    redis_server = RedisServer(tmp_path / "redis", appendonly=False)
    redis_server.start()
    request.addfinalizer(redis_server.stop)
    settings = dataclasses.replace(settings, s3_endpoint_url=proxy.url, redis_url=redis_server.url)
    app = _app(settings)
    client = app.test_client()
    bp = billing_practice(services, factory)
    patients = _patients(services, factory, bp, 3)
    headers = login(client, bp.biller_email)
    env = settings_env(settings)
    with services.db.shared_session() as s:
        unmatched_before = s.scalar(select(func.count()).select_from(UnmatchedEdiSet))
    proxy.stop()

    # The API: an upload whose file cannot be stored is refused with 503, and nothing of it is recorded.
    era = (X12_FIXTURES / "835" / "badX12__X221-multiple-claims-single-check.edi").read_bytes()
    edi = client.post("/api/v1/edi", headers=headers, data={"file": (io.BytesIO(era), "a.835")},
                      content_type="multipart/form-data")  # fmt: skip
    assert edi.status_code == 503 and "storage" in edi.get_json()["message"], edi.get_json()
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(InboundFile)) == 0
    with services.db.shared_session() as s:
        assert s.scalar(select(func.count()).select_from(UnmatchedEdiSet)) == unmatched_before

    # A job: the run's PDFs cannot be stored; the job fails, RQ retries it after its backoff, and once S3 is back the
    # run finishes with one statement per patient, each with its file.
    run_id, job_id = _start_run(app.extensions["medbill"], bp.slug)
    worker = start_worker(env, "statements", log=tmp_path / "worker.log")
    try:
        redis = app.extensions["medbill"].dispatcher.redis
        wait_for(lambda: _status(redis, job_id) == "scheduled", timeout=60,
                 what="the job to fail and be scheduled for a retry")  # fmt: skip
        assert _run(services, bp.slug, run_id).statements_done == 0  # nothing recorded without its file
        proxy.start()
        wait_for(lambda: _status(redis, job_id) == "finished", timeout=60,
                 what="the retried job to finish", every=0.5)  # fmt: skip
    finally:
        kill_all(worker)
    run = _run(services, bp.slug, run_id)
    assert (run.status, run.statements_done) == ("done", 3)
    with services.db.tenant_session(bp.slug) as s:
        keys = dict(
            s.execute(select(Statement.patient_id, Statement.storage_key).where(Statement.run_id == run_id)).all()
        )
    assert sorted(keys) == sorted(patients)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for key in keys.values():
        assert s3.head_object(Bucket=settings.s3_bucket, Key=key)["ContentLength"] > 0
    assert client.get(f"/api/v1/practices/{bp.slug}/statement-runs/{run_id}", headers=headers).status_code == 200


def test_database_connections_dropped_under_a_running_job(settings, services, factory, tmp_path):
    """The server terminates the worker's connections mid-run (a failover, an admin's pg_terminate_backend): the job
    fails, RQ retries it after its backoff, and the retry resumes the run; each patient gets one statement."""
    redis = RedisServer(tmp_path / "redis", appendonly=False)
    redis.start()
    mine = dataclasses.replace(settings, redis_url=redis.url)
    app = _app(mine)
    worker = None
    try:
        bp = billing_practice(services, factory)
        patients = _patients(services, factory, bp, 25)
        run_id, job_id = _start_run(app.extensions["medbill"], bp.slug)
        worker = start_worker(settings_env(mine), "statements", log=tmp_path / "worker.log")
        wait_for(lambda: _run(services, bp.slug, run_id).statements_done >= 2, timeout=40, what="the run to start")
        with services.db.engine.connect() as conn:
            # Only this test database's backends, and not this connection: other databases on the server are not ours.
            killed = conn.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                     "AND backend_type = 'client backend'")
            ).scalar()  # fmt: skip
        assert killed >= 1
        redis_client = app.extensions["medbill"].dispatcher.redis
        wait_for(lambda: _status(redis_client, job_id) == "finished", timeout=60, what="the job to finish", every=0.5)
        job = Job.fetch(job_id, connection=redis_client)
        assert job.retries_left is not None  # it ran under RQ's retry policy
    finally:
        if worker is not None and worker.poll() is None:
            kill_all(worker)
        redis.stop()
    run = _run(services, bp.slug, run_id)
    assert (run.status, run.statements_done) == ("done", len(patients))
    with services.db.tenant_session(bp.slug) as s:
        made = s.scalars(select(Statement.patient_id).where(Statement.run_id == run_id)).all()
    assert sorted(made) == sorted(patients)
    log = (tmp_path / "worker.log").read_text()
    assert "OperationalError" in log and "scheduled for retry" in log  # the drop was felt, and retried with backoff
