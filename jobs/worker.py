"""`medbill worker`: a real RQ worker over medbill's queues, with RQ's scheduler for retries with backoff."""

from __future__ import annotations

import importlib
import pkgutil

from redis import Redis
from rq import Queue, Worker

import jobs
from jobs.queues import QUEUES, recover_abandoned

# Imported lazily by job code; heavy enough to be worth sharing with every work horse.
PRELOAD = ("integrations.pdf.statement", "integrations.pdf.eob", "integrations.pdf.appeal")


def preload_job_modules() -> None:
    """RQ forks a work horse per job: what the worker imported before is shared with it, anything else every job
    imports again. The job modules pull in the billing domain and the ICD-10-CM code set (about 6 s of CPU), which
    made every job pay seconds before its first query (a 10-claim 835 set took 9 s in a worker, 0.7 s in process)."""
    for module in pkgutil.iter_modules(jobs.__path__):
        importlib.import_module(f"jobs.{module.name}")
    for name in PRELOAD:
        importlib.import_module(name)


def run_worker(
    redis_url: str, queues: list[str] | None = None, *, burst: bool = False, name: str | None = None
) -> bool:
    redis = Redis.from_url(redis_url)
    names = queues or list(QUEUES)
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    preload_job_modules()
    # Jobs of a worker of this host that died mid-job run again now, not after its heartbeat expires.
    recover_abandoned(redis, names)
    # Maintenance (which retries jobs abandoned by dead workers of other hosts) every minute, not every ten.
    worker = Worker([Queue(n, connection=redis) for n in names], connection=redis, name=name, maintenance_interval=60)
    return worker.work(burst=burst, with_scheduler=True)
