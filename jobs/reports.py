"""Jobs: the doctor's monthly summary PDF of one practice (rendered from the ledger, stored at
reports/monthly/YYYY-MM.pdf under the practice's prefix) and the message telling each of its doctors it is ready,
and the monthly fan-out over every active practice, scheduled on the 1st for the month that just ended."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlalchemy import select

from billing import reports
from billing.summary_mail import summary_message
from integrations.mail import compose
from jobs.runtime import final_on_domain_error, runtime
from medbill.errors import Invalid, NotFound
from medbill.services import make_mailer
from tenants.models import Practice
from tenants.registry import practice_doctors

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
def monthly_summary_pdf(practice_slug: str, month: str, notify: bool = False) -> dict:
    """Render and store one practice's summary PDF of `month` (YYYY-MM); running it again replaces it. With
    `notify`, each doctor of the practice is sent a message that it is ready — once, however often the job runs."""
    rt = runtime()
    first = _month(month)
    with rt.db.shared_session() as shared:
        practice = shared.scalar(select(Practice).where(Practice.slug == practice_slug))
        if practice is None:
            raise NotFound(f"practice {practice_slug!r} not found")
        names = {"practice_name": practice.name, "company_name": practice.company.name}
        doctors = [(u.id, u.email, u.full_name) for u in practice_doctors(shared, practice.id)]
    with rt.db.tenant_session(practice_slug) as session:
        key = reports.store_monthly_summary(session, rt.storage, practice_slug, first, **names)
        figures = reports.month_totals(session, first) if notify else None
    result = {"practice": practice_slug, "month": month, "key": key}
    if notify:
        result["notified"] = _notify_doctors(rt, practice_slug, names["practice_name"], first, figures, doctors)
    return result


def _notify_doctors(rt, slug: str, practice_name: str, first, figures, doctors) -> list[str]:
    """Send each doctor the message; a doctor already told about this month is skipped (a retried job after a
    partial send tells only the rest). Returns the addresses sent to now."""
    mailer = rt.mailer or make_mailer(rt.settings)
    portal_url = f"{rt.settings.public_url}/home?month={first:%Y-%m}"
    sent = []
    for user_id, email, full_name in doctors:
        marker = f"medbill:mail:monthly-summary:{slug}:{first:%Y-%m}:{user_id}"
        if not rt.dispatcher.redis.set(marker, "sending", nx=True, ex=86400 * 40):
            continue
        subject, body = summary_message(
            figures, practice_name=practice_name, month=first, portal_url=portal_url, recipient_name=full_name
        )
        try:
            mailer.send(compose(mailer.sender, email, subject, body))
        except Exception:
            rt.dispatcher.redis.delete(marker)  # not sent: the job's retry sends it
            raise
        sent.append(email)
    log.info("monthly summary of %s for %s: %d doctor(s) told", slug, f"{first:%Y-%m}", len(sent))
    return sent


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
            "default", "jobs.reports.monthly_summary_pdf", slug, month, True, job_id=f"monthly-summary-{slug}-{month}"
        )
        job_ids.append(job.id)
    log.info("monthly summary PDFs of %s: %d practice(s)", month, len(job_ids))
    return job_ids
