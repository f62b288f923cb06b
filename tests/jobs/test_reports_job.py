"""The monthly summary job: one practice's PDF rendered from the ledger and stored at reports/monthly/YYYY-MM.pdf
(again replaces it, a bad month ends the job with a readable error), and the fan-out scheduled on the 1st of each
month that enqueues one job per active practice for the month that just ended."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

import jobs.reports as reports_job
from billing import reports
from jobs.runtime import Runtime
from jobs.schedule import SCHEDULE, job_id_for, slot_of


@pytest.fixture()
def job_runtime(monkeypatch, settings, services):
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    monkeypatch.setattr(reports_job, "runtime", lambda: rt)
    return rt


def test_the_job_renders_and_stores_the_months_pdf(services, factory, job_runtime):
    company = factory.company()
    practice = factory.practice(company.slug)
    result = reports_job.monthly_summary_pdf(practice.slug, "2026-03")
    key = reports.monthly_summary_key(practice.slug, date(2026, 3, 1))
    assert result == {"practice": practice.slug, "month": "2026-03", "key": key}
    assert key == f"practices/{practice.slug}/reports/monthly/2026-03.pdf"
    pdf = services.storage.get(key)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert practice.name in text and "Monthly summary - March 2026" in text and "Billed by Company" in text
    assert "No payments were posted this month." in text and "Page 1 of " in text
    # Again: the same figures render to the same bytes at the same key.
    reports_job.monthly_summary_pdf(practice.slug, "2026-03")
    assert services.storage.get(key) == pdf
    bad = reports_job.monthly_summary_pdf(practice.slug, "March")
    assert bad["status"] == "error" and "month" in bad["errors"]
    assert reports_job.monthly_summary_pdf("nosuchpractice", "2026-03")["code"] == "not_found"


def test_the_schedule_fans_out_on_the_first_for_the_previous_month(services, factory, job_runtime):
    entry = next(e for e in SCHEDULE if e.name == "monthly-summary-pdfs")
    assert entry.func == "jobs.reports.monthly_summaries"
    first = datetime(2026, 12, 1, 5, 15, tzinfo=UTC)
    assert slot_of(entry, first) == first
    assert slot_of(entry, datetime(2026, 12, 20, 9, 0, tzinfo=UTC)) == first
    assert job_id_for(entry, first) == "periodic-monthly-summary-pdfs-20261201T0515"
    assert reports_job.previous_month(date(2026, 1, 1)) == "2025-12"
    assert reports_job.previous_month(date(2026, 3, 31)) == "2026-02"

    practice = factory.practice(factory.company().slug)
    job_ids = reports_job.monthly_summaries("2026-11")
    queue = job_runtime.dispatcher.queue("default")
    try:
        assert f"monthly-summary-{practice.slug}-2026-11" in job_ids
        job = queue.fetch_job(f"monthly-summary-{practice.slug}-2026-11")
        assert job.func_name == "jobs.reports.monthly_summary_pdf" and job.args == (practice.slug, "2026-11", True)
        # A second fan-out of the same month names the same jobs.
        assert reports_job.monthly_summaries("2026-11") == job_ids
    finally:
        for job_id in job_ids:
            found = queue.fetch_job(job_id)
            if found is not None:
                found.delete()
