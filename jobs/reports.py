"""Jobs: the doctor's monthly summary PDF of one practice (rendered from the ledger, stored at
reports/monthly/YYYY-MM.pdf under the practice's prefix), and the monthly fan-out over every active practice,
scheduled on the 1st for the month that just ended."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlalchemy import select

from billing import reports
from jobs.runtime import final_on_domain_error, runtime
from medbill.errors import Invalid, NotFound
from tenants.models import Practice

log = logging.getLogger("medbill.jobs.reports")


def _month(text: str) -> date:
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise Invalid(f"month must be YYYY-MM, not {text!r}", errors={"month": ["expected YYYY-MM"]}) from exc


def previous_month(today: date) -> str:
    return (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@final_on_domain_error
def monthly_summary_pdf(practice_slug: str, month: str) -> dict:
    """Render and store one practice's summary PDF of `month` (YYYY-MM); running it again replaces it."""
    rt = runtime()
    first = _month(month)
    with rt.db.shared_session() as shared:
        practice = shared.scalar(select(Practice).where(Practice.slug == practice_slug))
        if practice is None:
            raise NotFound(f"practice {practice_slug!r} not found")
        names = {"practice_name": practice.name, "company_name": practice.company.name}
    with rt.db.tenant_session(practice_slug) as session:
        key = reports.store_monthly_summary(session, rt.storage, practice_slug, first, **names)
    return {"practice": practice_slug, "month": month, "key": key}


def monthly_summaries(month: str | None = None) -> list[str]:
    """Scheduled on the 1st: one PDF job per active practice for the previous month (or `month`), with ids that
    name the practice and month, so a rerun of the fan-out replaces rather than duplicates."""
    rt = runtime()
    month = month or previous_month(date.today())
    _month(month)
    with rt.db.shared_session() as session:
        slugs = list(session.scalars(select(Practice.slug).where(Practice.status == "active").order_by(Practice.slug)))
    job_ids = []
    for slug in slugs:
        job = rt.dispatcher.enqueue_now(
            "default", "jobs.reports.monthly_summary_pdf", slug, month, job_id=f"monthly-summary-{slug}-{month}"
        )
        job_ids.append(job.id)
    log.info("monthly summary PDFs of %s: %d practice(s)", month, len(job_ids))
    return job_ids
