"""Past one machine, rehearsed on one: 2 `medbill web` processes and 2 `medbill worker` processes (separate OS
processes, as on separate hosts) against one PostgreSQL and one Redis. Statement runs of several practices are
started through both web processes; the jobs spread over both workers (each job records the worker that ran it) and
nothing is done twice (each run done once, one statement per patient, each job run by one worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from rq.job import Job
from sqlalchemy import select

from billing.models import Statement, StatementRun
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit
from tests.conftest import PASSWORD, PROJECT_ROOT
from tests.faults.support import free_port, kill_all, start_worker, wait_for

PRACTICES = 6
PATIENTS = 3


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/v1/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_two_web_and_two_worker_processes_share_the_work_and_do_nothing_twice(services, factory, env, tmp_path):
    company = factory.company()
    practices = []
    for _ in range(PRACTICES):
        bp = billing_practice(services, factory, company=company)
        for _ in range(PATIENTS):
            owed_visit(services, bp, insured_patient(services, bp, factory), days_ago=40)
        practices.append(bp)
    ports = [free_port(), free_port()]
    webs = [
        subprocess.Popen(
            [sys.executable, "-m", "medbill.cli", "web", "--port", str(port), "--processes", "1"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=open(tmp_path / f"web{port}.log", "wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for port in ports
    ]
    workers = []
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            wait_for(lambda url=url: _answers(url), timeout=40, what=f"{url} to answer", every=0.2)
        workers = [start_worker(env, "statements", log=tmp_path / f"worker{i}.log") for i in range(2)]
        email = practices[0].biller_email
        started = []
        for i, bp in enumerate(practices):  # alternate web processes, as a load balancer would
            url = urls[i % 2]
            status, token = _http("POST", f"{url}/api/v1/auth/token", {"email": email, "password": PASSWORD})
            assert status == 200, token
            status, body = _http("POST", f"{url}/api/v1/practices/{bp.slug}/statement-runs", {},
                                 token["access_token"])  # fmt: skip
            assert status == 202 and body["created"], body
            # The same run asked for again through the other web process: nothing more starts.
            status, again = _http("POST", f"{urls[(i + 1) % 2]}/api/v1/practices/{bp.slug}/statement-runs", {},
                                  token["access_token"])  # fmt: skip
            assert status == 202 and not again["created"] and again["run"]["id"] == body["run"]["id"]
            started.append((bp, body["run"]["id"], body["run"]["job_id"]))

        def finished() -> bool:
            return all(Job.fetch(job_id, connection=services.dispatcher.redis).get_status() == "finished"
                       for _, _, job_id in started)  # fmt: skip

        wait_for(finished, timeout=120, what="every run's job to finish", every=0.5)
    finally:
        for proc in [*workers, *webs]:
            if proc.poll() is None:
                kill_all(proc)
    ran_by = {}
    for bp, run_id, job_id in started:
        job = Job.fetch(job_id, connection=services.dispatcher.redis)
        ran_by[job_id] = job.worker_name
        assert job.return_value()["statements"] == PATIENTS
        with services.db.tenant_session(bp.slug) as s:
            runs = s.scalars(select(StatementRun)).all()
            assert [(r.id, r.status, r.statements_done) for r in runs] == [(run_id, "done", PATIENTS)]
            patients = s.scalars(select(Statement.patient_id)).all()
            assert len(patients) == len(set(patients)) == PATIENTS  # nothing done twice
    assert len(set(ran_by.values())) == 2, ran_by  # both workers took jobs
