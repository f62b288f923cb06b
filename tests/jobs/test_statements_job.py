"""The statement run in a real RQ worker process (`statements` queue): started through the API, carried out by the
worker with its progress on the job and the run row, PDFs and the batch file in S3; the daily round over practices
checks plans and starts each practice's cycle run once."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import date

from pypdf import PdfReader
from sqlalchemy import func, select

from billing import statements
from billing.models import Statement, StatementRun
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_patient_payments import owed_visit
from tests.conftest import PROJECT_ROOT, login


def _burst(env) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", "statements"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]


def test_a_statement_run_through_a_worker(client, services, factory, env):
    bp = billing_practice(services, factory)
    due = [insured_patient(services, bp, factory) for _ in range(2)]
    owed_visit(services, bp, due[0], days_ago=95, owes=("30.00", "0.00"))
    owed_visit(services, bp, due[1], days_ago=20)
    pending = insured_patient(services, bp, factory)
    owed_visit(services, bp, pending, days_ago=10, pending=True)
    headers = login(client, bp.biller_email)
    started = client.post(f"/api/v1/practices/{bp.slug}/statement-runs", headers=headers, json={}).get_json()
    assert started["created"]
    run_id, job_id = started["run"]["id"], started["run"]["job_id"]
    _burst(env)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert job["status"] == "finished", job
    assert job["kind"] == "statement_run"
    assert job["result"]["statements"] == 2 and job["result"]["total_due"] == "55.00"
    detail = client.get(f"/api/v1/practices/{bp.slug}/statement-runs/{run_id}", headers=headers).get_json()
    assert (detail["status"], detail["patients_selected"], detail["statements_done"]) == ("done", 2, 2)
    assert {s["patient_id"] for s in detail["statements"]} == set(due)
    first = detail["statements"][0]
    pdf = client.get(f"/api/v1/practices/{bp.slug}/patients/{first['patient_id']}/statements/{first['id']}/pdf",
                     headers=headers)  # fmt: skip
    assert pdf.status_code == 302 and pdf.headers["Location"]
    account = client.get(f"/api/v1/practices/{bp.slug}/patients/{first['patient_id']}/account", headers=headers)
    assert [st["id"] for st in account.get_json()["statements"]] == [first["id"]]
    assert account.get_json()["statements"][0]["download_url"] == pdf.request.path
    # The print vendor's batch: through the audited route, which hands out a short-lived link to the same file.
    batch = client.get(detail["batch_download_url"], headers=headers)
    assert batch.status_code == 302 and "statements-" in batch.headers["Location"]
    rows = list(csv.DictReader(io.StringIO(services.storage.get(detail["batch_storage_key"]).decode())))
    assert sorted(r["amount_due"] for r in rows) == ["25.00", "30.00"]
    with services.db.tenant_session(bp.slug) as s:
        st = s.scalar(select(Statement).where(Statement.patient_id == due[0]))
    text = PdfReader(io.BytesIO(services.storage.get(st.storage_key))).pages[0].extract_text()
    assert "$30.00" in text and "FINAL NOTICE" in text  # 95 days old
    # The daily round: this practice's cycle already has its run; another practice gets one, queued and carried out.
    other = billing_practice(services, factory)
    owed_visit(services, other, insured_patient(services, other, factory), days_ago=40)
    daily = services.dispatcher.enqueue_now("statements", "jobs.statements.daily", date.today().isoformat(),
                                            [bp.slug, other.slug])  # fmt: skip
    _burst(env)  # the daily job, then the run it queued
    daily.refresh()
    report = daily.return_value()
    assert report[bp.slug]["run"] == {"run_id": run_id, "created": False}
    assert report[other.slug]["run"]["created"]
    with services.db.tenant_session(other.slug) as s:
        run = s.scalar(select(StatementRun))
        assert (run.trigger, run.status, run.statements_done) == ("schedule", "done", 1)
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(Statement)) == 2
        assert statements.get_run(s, run_id).status == "done"
