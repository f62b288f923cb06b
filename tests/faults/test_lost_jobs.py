"""The recovery path for work whose job is lost: a Redis without persistence restarted under a queued statement run
forgets the job; the run stays recorded (unfinished), and starting the cycle's run again (the biller's button, or the
daily round) resumes it with a new job instead of answering "already has a run" forever. With persistence
(tests/faults/test_outages.py) the job survives the restart and nothing needs doing."""

from __future__ import annotations

import dataclasses

from rq.job import Job
from sqlalchemy import select

from billing.models import Statement, StatementRun
from medbill.app import create_app
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit
from tests.conftest import login, settings_env
from tests.faults.support import RedisServer, burst


def test_a_run_whose_job_redis_forgot_is_resumed_by_starting_it_again(settings, services, factory, tmp_path):
    redis = RedisServer(tmp_path / "redis", appendonly=False)
    redis.start()
    try:
        mine = dataclasses.replace(settings, redis_url=redis.url)
        app = create_app(mine)
        client = app.test_client()
        bp = billing_practice(services, factory)
        patients = []
        for _ in range(3):
            patients.append(insured_patient(services, bp, factory))
            owed_visit(services, bp, patients[-1], days_ago=40)
        headers = login(client, bp.biller_email)
        url = f"/api/v1/practices/{bp.slug}/statement-runs"
        first = client.post(url, headers=headers, json={}).get_json()
        assert first["created"]
        run_id, lost_job = first["run"]["id"], first["run"]["job_id"]

        redis.stop()
        redis.start()  # no append-only file: the queue comes back empty
        assert not app.extensions["medbill"].dispatcher.is_pending(lost_job)
        headers = login(client, bp.biller_email)  # the restart forgot the login's rate-limit counters too

        again = client.post(url, headers=headers, json={})
        assert again.status_code == 202
        body = again.get_json()
        assert not body["created"] and "resumed" in body["message"] and body["run"]["id"] == run_id
        new_job = body["run"]["job_id"]
        assert new_job != lost_job
        # Asked once more while the new job waits: nothing more is queued.
        third = client.post(url, headers=headers, json={}).get_json()
        assert third["run"]["job_id"] == new_job and "resumed" not in third["message"]

        burst(settings_env(mine), "statements")
        assert Job.fetch(new_job, connection=app.extensions["medbill"].dispatcher.redis).get_status() == "finished"
        with services.db.tenant_session(bp.slug) as s:
            run = s.get(StatementRun, run_id)
            assert (run.status, run.statements_done) == ("done", 3)
            assert sorted(s.scalars(select(Statement.patient_id).where(Statement.run_id == run_id))) == patients
        done = client.post(url, headers=headers, json={}).get_json()
        assert not done["created"] and "resumed" not in done["message"]  # a done run is never run again
    finally:
        redis.stop()
