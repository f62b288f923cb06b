"""Periodic work declared as data, and the scheduler loop that enqueues each due run exactly once. A run's job id
is derived from its name and time slot, and a Redis SET NX claims the slot, so several schedulers (a redeploy, two
machines) never enqueue the same run twice."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from croniter import croniter

from jobs.queues import Dispatcher

log = logging.getLogger("medbill.scheduler")


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str
    cron: str
    queue: str = "default"
    kwargs: dict = field(default_factory=dict)


SCHEDULE: tuple[Periodic, ...] = (
    Periodic("purge-expired-tokens", "jobs.maintenance.purge_expired_tokens", "17 * * * *"),
    Periodic("purge-expired-file-links", "jobs.maintenance.purge_expired_file_links", "47 * * * *"),
    Periodic("fetch-clearinghouse-files", "jobs.acknowledgements.fetch_all_practices", "*/5 * * * *"),
    # Payment plan check, then each practice's statement run of the current cycle (one run per cycle).
    Periodic("patient-billing-daily", "jobs.statements.daily", "30 6 * * *", queue="statements"),
    # New collection placements go to each agency once a day (billers can also export at once).
    Periodic("agency-exports-daily", "jobs.exports.export_all_practices", "0 7 * * *", queue="exports"),
    Periodic("claim-follow-up", "jobs.followup.followup_all_practices", "40 6 * * *"),
    # The 1st of each month: every practice's monthly summary PDF of the month that just ended.
    Periodic("monthly-summary-pdfs", "jobs.reports.monthly_summaries", "15 5 1 * *"),
)


def slot_of(entry: Periodic, now: datetime) -> datetime:
    """The most recent time the entry was due (now itself if due exactly now)."""
    if croniter.match(entry.cron, now):
        return now
    return croniter(entry.cron, now).get_prev(datetime)


def job_id_for(entry: Periodic, slot: datetime) -> str:
    return f"periodic-{entry.name}-{slot.strftime('%Y%m%dT%H%M')}"


def enqueue_due(dispatcher: Dispatcher, now: datetime | None = None, schedule=SCHEDULE) -> list[str]:
    """Enqueue every entry whose current slot has not been claimed yet; returns the job ids enqueued."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    enqueued = []
    for entry in schedule:
        slot = slot_of(entry, now)
        job_id = job_id_for(entry, slot)
        # Slots older than a day are not caught up: a scheduler down for a day should not replay a backlog.
        if dispatcher.redis.set(f"medbill:schedule:{job_id}", now.isoformat(), nx=True, ex=86400 * 2):
            dispatcher.queue(entry.queue).enqueue(entry.func, kwargs=entry.kwargs, job_id=job_id, result_ttl=86400)
            enqueued.append(job_id)
            log.info("enqueued %s", job_id)
    return enqueued


def run_scheduler(dispatcher: Dispatcher, stop: threading.Event, tick_seconds: float = 20.0) -> None:
    log.info("scheduler started with %d periodic job(s)", len(SCHEDULE))
    while not stop.is_set():
        try:
            enqueue_due(dispatcher)
        except Exception:  # keep scheduling through a Redis blip; the next tick retries
            log.exception("scheduler tick failed")
        stop.wait(tick_seconds)
    log.info("scheduler stopped")
