"""Jobs: claim follow-up. Daily, `followup_all_practices` fans out one job per active practice; `followup_practice`
opens the practice's session, lists the claims the payer has not answered within its follow-up days into the
follow-up queue (billing.followup.run), brings the denial work queue up to date (billing.denials.sync) and commits.
Both are idempotent: a rerun adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from billing import denials, followup
from jobs.runtime import final_on_domain_error, runtime
from tenants.models import Practice


@final_on_domain_error
def followup_practice(practice_slug: str) -> dict:
    rt = runtime()
    with rt.db.tenant_session(practice_slug) as session:
        report = followup.run(session, datetime.now(UTC))
        report["denials"] = denials.sync(session)
        session.commit()
    return report


def followup_all_practices() -> list[str]:
    """Scheduled daily: one follow-up job per active practice, with ids that dedupe per day."""
    rt = runtime()
    with rt.db.shared_session() as session:
        slugs = list(session.scalars(select(Practice.slug).where(Practice.status == "active")))
    day = datetime.now(UTC).strftime("%Y%m%d")
    for slug in slugs:
        rt.dispatcher.enqueue_now("default", followup_practice, slug, job_id=f"followup-{slug}-{day}")
    return slugs
