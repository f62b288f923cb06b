"""`medbill worker`: a real RQ worker over medbill's queues, with RQ's scheduler for retries with backoff."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Worker

from jobs.queues import QUEUES, recover_abandoned


def run_worker(
    redis_url: str, queues: list[str] | None = None, *, burst: bool = False, name: str | None = None
) -> bool:
    redis = Redis.from_url(redis_url)
    names = queues or list(QUEUES)
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    # Jobs of a worker of this host that died mid-job run again now, not after its heartbeat expires.
    recover_abandoned(redis, names)
    # Maintenance (which retries jobs abandoned by dead workers of other hosts) every minute, not every ten.
    worker = Worker([Queue(n, connection=redis) for n in names], connection=redis, name=name, maintenance_interval=60)
    return worker.work(burst=burst, with_scheduler=True)
