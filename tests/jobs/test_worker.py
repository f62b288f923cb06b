"""Jobs in a real RQ worker process: a tenant job runs to completion, is enqueued only after commit, is retried
with backoff after a transient failure, and running it again does not double its effect."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from billing.models import Patient
from jobs.queues import Dispatcher
from jobs.schedule import SCHEDULE, enqueue_due, job_id_for, slot_of
from tests.conftest import PROJECT_ROOT, login

HEADER = "account_number,first_name,last_name,date_of_birth,sex,address_line1,city,state,postal_code\n"


def _csv(rows: list[str]) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def _upload(client, headers, slug: str, data: bytes, name: str = "patients.csv"):
    return client.post(
        f"/api/v1/practices/{slug}/patients/imports",
        headers=headers,
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _run_worker_burst(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", "default"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _patient_count(services, slug: str) -> int:
    with services.db.tenant_session(slug) as s:
        return s.scalar(select(func.count()).select_from(Patient))


def _wait_job(client, headers, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        if body["status"] in ("finished", "failed"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s")


@pytest.fixture(autouse=True)
def empty_default_queue(services):
    """Earlier tests leave jobs of their own on `default` (EOB renderings queued by their postings): a burst worker
    here should run this test's jobs, not render every other test's EOBs first."""
    services.dispatcher.queue("default").empty()


@pytest.fixture()
def practice(factory):
    company = factory.company()
    practice = factory.practice(company.slug)
    return company, practice


def test_worker_process_runs_import_once(client, factory, services, env, practice):
    company, pr = practice
    headers = login(client, factory.user("biller", company=company))
    data = _csv(
        ["R-1,Rosa,Diaz,1975-05-06,F,9 Oak Ave,Tulsa,OK,74103", "R-2,Sam,Diaz,2001-07-08,M,9 Oak Ave,Tulsa,OK,74103"]
    )
    accepted = _upload(client, headers, pr.slug, data)
    assert accepted.status_code == 202, accepted.get_json()
    job_id, import_id = accepted.get_json()["job_id"], accepted.get_json()["import_id"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["status"] == "queued"
    assert _patient_count(services, pr.slug) == 0

    run = _run_worker_burst(env)
    assert run.returncode == 0, run.stderr[-3000:]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert job["status"] == "finished", job
    assert job["result"]["rows_created"] == 2 and job["result"]["status"] == "done"
    assert _patient_count(services, pr.slug) == 2

    # The same job delivered again (a retry after a lost acknowledgement) finds its work done.
    services.dispatcher.enqueue_now("default", "jobs.patient_imports.import_patients", pr.slug, import_id)
    assert _run_worker_burst(env).returncode == 0
    assert _patient_count(services, pr.slug) == 2
    summary = client.get(f"/api/v1/practices/{pr.slug}/patients/imports/{import_id}", headers=headers).get_json()
    assert summary["rows_created"] == 2 and summary["status"] == "done"

    # The same file uploaded again is recognised: no second import, no second job.
    again = _upload(client, headers, pr.slug, data, name="renamed.csv").get_json()
    assert again["duplicate"] is True and again["import_id"] == import_id and again["job_id"] == job_id


def test_transient_failure_is_retried_with_backoff(client, factory, services, env, practice, s3_endpoint):
    """The stored file is missing when the job first runs (storage not yet consistent): the job fails, RQ schedules
    a retry after the backoff, the file appears, the retry completes, and patients are created exactly once."""
    import boto3

    company, pr = practice
    headers = login(client, factory.user("biller", company=company))
    data = _csv(["T-1,Tia,Moss,1990-01-02,F,5 Pine Rd,Boise,ID,83702"])
    accepted = _upload(client, headers, pr.slug, data).get_json()
    raw = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with services.db.tenant_session(pr.slug) as s:
        from billing.patient_imports import get_import

        key = get_import(s, accepted["import_id"]).storage_key
    raw.delete_object(Bucket=services.settings.s3_bucket, Key=key)

    worker = subprocess.Popen(
        [sys.executable, "-m", "medbill.cli", "worker", "--queue", "default"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/jobs/{accepted['job_id']}", headers=headers).get_json()["status"] != "scheduled":
            assert time.monotonic() < deadline, "job was not scheduled for a retry"
            time.sleep(0.2)
        assert _patient_count(services, pr.slug) == 0
        services.storage.put(key, data, content_type="text/csv")
        job = _wait_job(client, headers, accepted["job_id"], timeout=60)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert job["status"] == "finished", job
    assert job["result"]["rows_created"] == 1
    assert _patient_count(services, pr.slug) == 1


def test_domain_error_ends_the_job_without_retries(client, factory, services, env, practice):
    _, pr = practice
    job = services.dispatcher.enqueue_now("default", "jobs.patient_imports.import_patients", pr.slug, 987654)
    assert _run_worker_burst(env).returncode == 0
    job.refresh()
    assert job.get_status() == "finished"
    assert job.return_value() == {
        "status": "error",
        "code": "not_found",
        "message": "patient import 987654 not found",
        "errors": {},
    }


def test_invalid_file_fails_by_row_and_writes_nothing(client, factory, services, env, practice):
    company, pr = practice
    headers = login(client, factory.user("biller", company=company))
    data = _csv(
        [
            "V-1,Val,Ng,1980-01-01,F,1 A St,Reno,NV,89501",
            "V-2,Bad,Date,1980-13-01,F,1 A St,Reno,NV,89501",
            "V-3,Bad,State,1980-01-01,F,1 A St,Reno,XX,89501",
            "V-1,Dup,Acct,1980-01-01,F,1 A St,Reno,NV,89501",
        ]
    )
    accepted = _upload(client, headers, pr.slug, data).get_json()
    assert _run_worker_burst(env).returncode == 0
    summary = client.get(f"/api/v1/practices/{pr.slug}/patients/imports/{accepted['import_id']}", headers=headers)
    body = summary.get_json()
    assert body["status"] == "failed"
    assert set(body["errors"]) == {"message", "row 3", "row 4", "row 5"}
    assert "date_of_birth" in body["errors"]["row 3"][0]
    assert "state" in body["errors"]["row 4"][0]
    assert "repeats row 2" in body["errors"]["row 5"][0]
    assert _patient_count(services, pr.slug) == 0


def test_bad_header_is_reported(client, factory, env, practice):
    company, pr = practice
    headers = login(client, factory.user("biller", company=company))
    accepted = _upload(client, headers, pr.slug, b"account,first\nA,B\n").get_json()
    assert _run_worker_burst(env).returncode == 0
    body = client.get(f"/api/v1/practices/{pr.slug}/patients/imports/{accepted['import_id']}", headers=headers)
    errors = body.get_json()["errors"]["header"]
    assert any("missing column(s): account_number" in e for e in errors)
    assert any("unknown column(s): account, first" in e for e in errors)


def test_job_status_is_only_for_its_owner(client, factory, world, practice):
    company, pr = practice
    owner = login(client, factory.user("biller", company=company))
    accepted = _upload(client, owner, pr.slug, _csv(["O-1,Ola,Ek,1980-01-01,F,1 A St,Reno,NV,89501"])).get_json()
    assert client.get(f"/api/v1/jobs/{accepted['job_id']}", headers=owner).status_code == 200
    other = login(client, world.users["biller_x"])
    assert client.get(f"/api/v1/jobs/{accepted['job_id']}", headers=other).status_code == 404
    assert client.get("/api/v1/jobs/does-not-exist", headers=other).status_code == 404


def test_enqueue_waits_for_commit(services, practice):
    _, pr = practice
    redis = Redis.from_url(services.settings.redis_url)
    queue = Queue("exports", connection=redis)
    dispatcher = Dispatcher(redis)
    before = queue.count
    with services.db.tenant_session(pr.slug) as s:
        job_id = dispatcher.enqueue_after_commit(s, "exports", "jobs.maintenance.purge_expired_tokens")
        assert queue.count == before, "enqueued before the commit"
        s.rollback()
    assert queue.count == before, "a rolled-back transaction's job was enqueued"
    with services.db.tenant_session(pr.slug) as s:
        job_id = dispatcher.enqueue_after_commit(s, "exports", "jobs.maintenance.purge_expired_tokens")
        s.commit()
    assert queue.count == before + 1 and job_id in queue.job_ids
    queue.remove(job_id)


def test_periodic_jobs_are_enqueued_once_per_slot(services):
    redis = Redis.from_url(services.settings.redis_url)
    dispatcher = Dispatcher(redis)
    now = datetime(2031, 3, 4, 5, 17, tzinfo=UTC)
    entry = SCHEDULE[0]
    first = enqueue_due(dispatcher, now, schedule=(entry,))
    second = enqueue_due(dispatcher, now.replace(minute=40), schedule=(entry,))  # same slot, another scheduler
    assert slot_of(entry, now) == now and slot_of(entry, now.replace(minute=40)) == now
    assert first == [job_id_for(entry, now)]
    assert second == []
    nxt = enqueue_due(dispatcher, now.replace(hour=6, minute=17), schedule=(entry,))
    assert nxt == [job_id_for(entry, now.replace(hour=6))]
    for job_id in first + nxt:
        Queue(entry.queue, connection=redis).remove(job_id)
