"""The agency export job in a real RQ worker process (`exports` queue): started through the API after commit, it
writes the agency's fixed-width file of new placements to S3 under the agency's prefix, records it, delivers it to
the configured drop; the same job delivered again writes and delivers nothing more."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import agency_formats, collections
from billing.models import AgencyExport, AgencyExportItem, Patient
from jobs import exports as exports_job
from jobs.runtime import Runtime
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import FIXED, owed_visit, statements
from tests.conftest import PROJECT_ROOT, login
from tests.sftpserver import start_sftp_server, stop_sftp_server
from tests.support.connections import admin_access, company_drop, policy, store_secret


def _run_worker_burst(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", "exports"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_export_job_in_a_worker_writes_once_and_delivers(client, services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    agency = factory.agency([bp.slug])
    patients = []
    for days in (150, 200):
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=days)
        statements(services, bp, pid, 3)
        patients.append(pid)
    drop = company_drop(services, bp.company_slug, "agency-drop")
    admin = admin_access(services, factory, bp.slug, bp.company_slug)
    with services.db.tenant_session(bp.slug) as s:
        collections.set_terms(
            s, admin, agency.id,
            {"file_format": FIXED, "fee_percent": "20", "sftp": {"transport": "directory", "subdir": "agency-drop"}},
            policy=policy(services),
        )  # fmt: skip
        for pid in patients:
            collections.approve(s, bp.access, pid, agency.id)
        s.commit()
        numbers = {s.get(Patient, pid).account_number for pid in patients}

    headers = login(client, bp.biller_email)
    accepted = client.post(f"/api/v1/practices/{bp.slug}/collections/exports", headers=headers, json={})
    assert accepted.status_code == 202, accepted.get_json()
    job_id = accepted.get_json()["job_id"]
    run = _run_worker_burst(env)
    assert run.returncode == 0, run.stderr[-3000:]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert job["status"] == "finished", job
    (entry,) = job["result"]["exports"]
    assert entry["agency_id"] == agency.id and entry["accounts"] == 2 and entry["delivered"] is True

    with services.db.tenant_session(bp.slug) as s:
        export = s.scalar(select(AgencyExport))
        assert export.delivered_sftp_at is not None and export.delivery_error == ""
        key, filename = export.storage_key, export.filename
    assert key.startswith("companies/") and f"/agencies/{agency.slug}/exports/{bp.slug}/" in key
    data = services.storage.get(key)
    assert (drop / "inbox" / filename).read_bytes() == data
    fmt = agency_formats.validate_format(FIXED)
    accounts = agency_formats.accounts_from_records(fmt, agency_formats.parse(fmt, data))
    assert {a["account_number"] for a in accounts} == numbers
    assert all(a["total_placed"] == Decimal("25.00") for a in accounts)
    assert sorted(a["services"][0]["service_date"] for a in accounts) == [
        date.today() - timedelta(days=200),
        date.today() - timedelta(days=150),
    ]

    # The job delivered again (a retry after a lost acknowledgement): no second file, nothing re-sent.
    services.dispatcher.enqueue_now("exports", "jobs.exports.export_placements", bp.slug, None, None)
    services.dispatcher.enqueue_now("exports", "jobs.exports.export_placements", bp.slug, agency.id, None)
    assert _run_worker_burst(env).returncode == 0
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(AgencyExport)) == 1
        assert s.scalar(select(func.count()).select_from(AgencyExportItem)) == 2
    assert [p.name for p in (drop / "inbox").iterdir()] == [filename]
    agency_user = login(client, factory.user("agency", agency=agency))
    listed = client.get(f"/api/v1/practices/{bp.slug}/collections/exports", headers=agency_user).get_json()["items"]
    assert [e["filename"] for e in listed] == [filename]


@pytest.fixture()
def job_runtime(monkeypatch, settings, services):
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    monkeypatch.setattr(exports_job, "runtime", lambda: rt)
    return rt


def test_failed_delivery_keeps_the_file_available_and_says_why(services, factory, job_runtime, tmp_path):
    bp = billing_practice(services, factory)
    agency = factory.agency([bp.slug])
    pid = insured_patient(services, bp, factory)
    owed_visit(services, bp, pid, days_ago=150)
    statements(services, bp, pid, 3)
    admin = admin_access(services, factory, bp.slug, bp.company_slug)
    # A drop where a regular file is can never be created: a settings problem, not worth retrying.
    blocked = company_drop(services, bp.company_slug, "drop")
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a directory")
    with services.db.tenant_session(bp.slug) as s:
        collections.set_terms(
            s, admin, agency.id, {"sftp": {"transport": "directory", "subdir": "drop"}}, policy=policy(services)
        )
        collections.approve(s, bp.access, pid, agency.id)
        s.commit()
    result = exports_job.export_placements(bp.slug)
    (entry,) = result["exports"]
    assert entry["delivered"] is False
    with services.db.tenant_session(bp.slug) as s:
        export = s.get(AgencyExport, entry["export_id"])
        assert export.delivered_sftp_at is None and "directory cannot be created" in export.delivery_error
        # What the practice sees names no server path (the detail is in the worker's log).
        assert str(services.settings.directory_transport_root) not in export.delivery_error
        assert services.storage.exists(export.storage_key)
    # Every later run tries the undelivered file again (from storage); once the drop works it arrives, once.
    again = exports_job.export_placements(bp.slug)
    assert again["exports"] == [] and again["redelivered"] == [{"export_id": entry["export_id"], "delivered": False}]
    blocked.unlink()  # the operator clears the way
    drop = blocked
    fixed = exports_job.export_placements(bp.slug)
    assert fixed["redelivered"] == [{"export_id": entry["export_id"], "delivered": True}]
    with services.db.tenant_session(bp.slug) as s:
        export = s.get(AgencyExport, entry["export_id"])
        assert export.delivered_sftp_at is not None and export.delivery_error == ""
        assert [f.read_bytes() for f in drop.rglob("*") if f.is_file()] == [services.storage.get(export.storage_key)]
    assert exports_job.export_placements(bp.slug) == {"practice": bp.slug, "exports": [], "redelivered": []}


def test_daily_run_fans_out_to_practices_with_agencies(services, factory, job_runtime):
    served = billing_practice(services, factory)
    factory.agency([served.slug])
    unserved = billing_practice(services, factory)
    queue = services.dispatcher.queue("exports")
    before = set(queue.job_ids)
    exports_job.export_all_practices()
    new_jobs = [queue.fetch_job(i) for i in set(queue.job_ids) - before]
    practices = {job.args[0] for job in new_jobs}
    assert served.slug in practices and unserved.slug not in practices
    for job in new_jobs:
        job.delete()


def test_sftp_delivery_with_a_pinned_host_key(services, factory, job_runtime, tmp_path, monkeypatch):
    root = tmp_path / "sftp-root"
    (root / "keystone" / "inbox").mkdir(parents=True)
    port, fingerprint, proc = start_sftp_server(root, "agency", "s3cret-pass")
    try:
        bp = billing_practice(services, factory)
        store_secret(services, bp.company_slug, "keystone-sftp", "s3cret-pass")
        agency = factory.agency([bp.slug])
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=150)
        statements(services, bp, pid, 3)
        sftp = {
            "transport": "sftp", "host": "127.0.0.1", "port": port, "username": "agency",
            "password_secret": "keystone-sftp", "host_key_sha256": fingerprint,
            "inbox": "keystone/inbox", "timeout": 5,
        }  # fmt: skip
        admin = admin_access(services, factory, bp.slug, bp.company_slug)
        with services.db.tenant_session(bp.slug) as s:
            collections.set_terms(s, admin, agency.id, {"sftp": sftp}, policy=policy(services))
            collections.approve(s, bp.access, pid, agency.id)
            s.commit()
        (entry,) = exports_job.export_placements(bp.slug, agency.id)["exports"]
        assert entry["delivered"] is True
        with services.db.tenant_session(bp.slug) as s:
            export = s.get(AgencyExport, entry["export_id"])
            assert export.delivered_sftp_at is not None
        assert (root / "keystone" / "inbox" / export.filename).read_bytes() == services.storage.get(export.storage_key)
    finally:
        stop_sftp_server(proc)
