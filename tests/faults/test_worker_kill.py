"""Workers killed with SIGKILL mid-job (the posting case is tests/jobs/test_posting_fault.py): a statement run and an
agency export. A new worker finds the dead worker's job (jobs.queues.recover_abandoned: a worker of this host whose
process is gone), runs it again, and the result equals one clean run: one statement per selected patient, their
PDFs and one batch file; one export file, each placement in it once."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from rq.job import Job
from sqlalchemy import func, select, text

from billing import collections, statements
from billing.models import AgencyExport, AgencyExportItem, Statement, StatementRun
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import FIXED, owed_visit
from tests.billing.test_collections import statements as past_statements
from tests.faults.support import burst, kill_all, s3_keys, start_worker, wait_for

PATIENTS = 40


def _run_state(services, slug: str, run_id: int) -> tuple[str, int, int]:
    with services.db.tenant_session(slug) as s:
        run = s.get(StatementRun, run_id)
        return run.status, run.patients_selected, run.statements_done


def test_a_worker_killed_mid_statement_run_then_a_new_worker_finishes_it_once(
    services, factory, env, s3_endpoint, s3_bucket
):
    bp = billing_practice(services, factory)
    patients = []
    for _ in range(PATIENTS):
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=45)
        patients.append(pid)
    with services.db.tenant_session(bp.slug) as s:
        run, created = statements.start_run(s, None, trigger="user")
        assert created
        run_id = run.id
        run.job_id = services.dispatcher.enqueue_after_commit(
            s, "statements", "jobs.statements.run_statements", bp.slug, run.id, timeout=3600
        )
        job_id = run.job_id
        s.commit()

    worker = start_worker(env, "statements")
    try:
        # Killed once a few statements are committed and before the last: mid-run.
        wait_for(lambda: _run_state(services, bp.slug, run_id)[2] >= 3, timeout=60, what="statements to start")
        kill_all(worker)
    finally:
        if worker.poll() is None:
            kill_all(worker)
    status, selected, done_at_kill = _run_state(services, bp.slug, run_id)
    assert status == "running" and selected == PATIENTS and 3 <= done_at_kill < PATIENTS
    assert Job.fetch(job_id, connection=services.dispatcher.redis).get_status() == "started"  # the dead worker's

    # A new worker: it puts the dead worker's job back and resumes the run where it stopped.
    burst(env, "statements")
    job = Job.fetch(job_id, connection=services.dispatcher.redis)
    assert job.get_status() == "finished" and job.meta.get("medbill_worker_crashes") == 1
    assert job.return_value()["statements"] == PATIENTS
    with services.db.tenant_session(bp.slug) as s:
        run = s.get(StatementRun, run_id)
        assert (run.status, run.patients_selected, run.statements_done) == ("done", PATIENTS, PATIENTS)
        rows = s.execute(select(Statement.patient_id, Statement.storage_key).where(Statement.run_id == run_id)).all()
        batch_key = run.batch_storage_key
    assert sorted(pid for pid, _ in rows) == sorted(patients)  # one statement each, nobody twice
    prefix = batch_key.rsplit("/", 1)[0] + "/"
    stored = s3_keys(s3_endpoint, s3_bucket, prefix)
    assert stored == sorted([key for _, key in rows] + [batch_key])  # the PDFs and one batch file, nothing else
    batch = list(csv.DictReader(io.StringIO(services.storage.get(batch_key).decode())))
    assert sorted(int(r["statement_id"]) for r in batch) == sorted(
        sid for (sid,) in _statement_ids(services, bp.slug, run_id)
    )
    assert len({r["account_number"] for r in batch}) == PATIENTS


def _statement_ids(services, slug, run_id):
    with services.db.tenant_session(slug) as s:
        return s.execute(select(Statement.id).where(Statement.run_id == run_id)).all()


def test_a_worker_killed_mid_export_then_a_new_worker_writes_one_file(services, factory, env, s3_endpoint, s3_bucket):
    bp = billing_practice(services, factory)
    agency = factory.agency([bp.slug])
    patients = []
    for days in (150, 170, 200):
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=days)
        past_statements(services, bp, pid, 3)
        patients.append(pid)
    with services.db.tenant_session(bp.slug) as s:
        collections.set_terms(s, bp.access, agency.id, {"file_format": FIXED, "fee_percent": "20"})
        for pid in patients:
            collections.approve(s, bp.access, pid, agency.id)
        s.commit()
        schema = s.get_bind().get_execution_options()["schema_translate_map"][None]
    job = services.dispatcher.enqueue_now("exports", "jobs.exports.export_placements", bp.slug, agency.id, None)

    # The test holds the export items table, so the job stops right after storing its file, inside its transaction,
    # before it records which placements the file holds: the worst moment to die.
    worker = start_worker(env, "exports")
    with services.db.engine.connect() as blocker:
        blocker.execute(text(f'LOCK TABLE "{schema}".agency_export_items IN EXCLUSIVE MODE'))

        def waiting() -> bool:  # a fresh transaction each time: pg_stat_activity is a snapshot per transaction
            with services.db.engine.connect() as watch:
                return bool(
                    watch.execute(
                        text(
                            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = "
                            "'Lock' AND query ILIKE 'INSERT INTO%agency_export_items%'"
                        )  # fmt: skip
                    ).first()
                )

        try:
            wait_for(waiting, timeout=60, what="the export job to reach its insert")
            kill_all(worker)
        finally:
            if worker.poll() is None:
                kill_all(worker)
            blocker.rollback()
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(AgencyExport)) == 0  # the dead job's transaction is gone

    def files() -> list[str]:
        return [k for k in s3_keys(s3_endpoint, s3_bucket, "companies/") if f"/{agency.slug}/exports/{bp.slug}/" in k]

    assert len(files()) == 1  # its file was stored before it died

    burst(env, "exports")
    job = Job.fetch(job.id, connection=services.dispatcher.redis)
    assert job.get_status() == "finished", job.exc_info
    (entry,) = job.return_value()["exports"]
    assert entry["accounts"] == len(patients)
    with services.db.tenant_session(bp.slug) as s:
        (export,) = s.scalars(select(AgencyExport)).all()
        items = s.scalars(select(AgencyExportItem.placement_id)).all()
    assert len(items) == len(set(items)) == len(patients)  # each placement once
    # One file: the retry wrote the same content under the same name over the dead job's file.
    assert files() == [export.storage_key]
    assert datetime.now(UTC).strftime("%Y%m%d") in export.filename
