"""Jobs (`statements` queue): carry out a statement run, and the daily patient-billing round over practices (payment
plan check first, so a plan broken today puts its patient back in the cycle, then the statement run of the current
cycle for practices with scheduled runs). Thin: each opens the practice's session and calls billing services."""

from __future__ import annotations

import logging
from datetime import date

from rq import get_current_job
from sqlalchemy import select

from billing import payment_plans, statements
from billing.models import StatementRun
from jobs.runtime import final_on_domain_error, runtime
from tenants.models import Practice

log = logging.getLogger("medbill.jobs.statements")


@final_on_domain_error
def run_statements(practice_slug: str, run_id: int) -> dict:
    """Render, store and record the run's statements, committing after each one so its progress shows (on the run
    row and in the job's meta). A retry resumes: statements already made are not made again."""
    rt = runtime()
    job = get_current_job()

    with rt.db.tenant_session(practice_slug) as session:

        def progress(run: StatementRun) -> None:
            session.commit()
            if job is not None:
                job.meta.update({"run_id": run.id, "selected": run.patients_selected, "done": run.statements_done,
                                 "status": run.status})  # fmt: skip
                job.save_meta()

        try:
            run = statements.execute_run(
                session, run_id, practice_slug=practice_slug, storage=rt.storage, progress=progress
            )
        except Exception as exc:
            session.rollback()
            statements.mark_failed(session, run_id, f"{type(exc).__name__}: {exc}")
            session.commit()
            raise
        session.commit()
        return {
            "run_id": run.id,
            "status": run.status,
            "selected": run.patients_selected,
            "statements": run.statements_done,
            "total_due": str(run.total_due),
            "batch": run.batch_storage_key,
        }


def start_run_job(practice_slug: str, *, today: date | None = None, trigger: str = "schedule") -> dict:
    """Start this cycle's run unless it has one; the run itself is a separate job, enqueued after commit."""
    rt = runtime()
    with rt.db.tenant_session(practice_slug) as session:
        run, created = statements.start_run(session, None, today=today, trigger=trigger)
        if created:
            run.job_id = rt.dispatcher.enqueue_after_commit(
                session, "statements", run_statements, practice_slug, run.id, timeout=3600
            )
        elif run.status != "done":  # unfinished and its job lost: the daily round resumes it
            run.job_id = (
                rt.dispatcher.ensure_pending(
                    session, run.job_id, "statements", run_statements, practice_slug, run.id, timeout=3600
                )
                or run.job_id
            )
        session.commit()
        return {"run_id": run.id, "created": created}


def daily(today: str | None = None, slugs: list[str] | None = None) -> dict:
    """Scheduled once a day: per active practice (or the given ones), the payment plan check, then the current
    cycle's statement run (when the practice runs statements on schedule)."""
    rt = runtime()
    day = date.fromisoformat(today) if today else date.today()
    with rt.db.shared_session() as session:
        stmt = select(Practice.id, Practice.slug).where(Practice.status == "active").order_by(Practice.slug)
        if slugs is not None:
            stmt = stmt.where(Practice.slug.in_(slugs))
        practices = session.execute(stmt).all()
    report = {}
    for practice_id, slug in practices:
        try:
            with rt.db.tenant_session(slug) as session:
                check = payment_plans.check_plans(session, day, practice_id=practice_id)
                settings = statements.get_settings(session)
                scheduled = settings.scheduled_runs
                session.commit()
            entry = {"reminded": len(check.reminded), "broken": len(check.broken)}
            if scheduled:
                entry["run"] = start_run_job(slug, today=day, trigger="schedule")
            report[slug] = entry
        except Exception:  # one practice's failure must not stop the others; the next day retries
            log.exception("daily patient billing failed for %s", slug)
            report[slug] = {"error": True}
    return report
