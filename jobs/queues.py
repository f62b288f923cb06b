"""Queues and the dispatcher that enqueues jobs only after the transaction that created their work commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

QUEUES = ("submission", "posting", "statements", "exports", "default")
# Transient failures (database or S3 briefly away) get three more tries with growing pauses.
DEFAULT_RETRY = Retry(max=3, interval=[5, 30, 120])
_PENDING = "medbill_pending_jobs"


@dataclass(frozen=True)
class PendingJob:
    queue: str
    func: Callable | str
    args: tuple
    job_id: str
    meta: dict
    timeout: int


class Dispatcher:
    """Owns the Redis connection used to enqueue. Jobs carry ids (practice slug, row ids), never ORM objects."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def queue(self, name: str) -> Queue:
        if name not in QUEUES:
            raise ValueError(f"unknown queue {name!r}")
        return Queue(name, connection=self.redis)

    def enqueue_now(
        self,
        queue: str,
        func: Callable | str,
        *args,
        job_id: str | None = None,
        meta: dict | None = None,
        timeout: int = 600,
    ):
        return self.queue(queue).enqueue(
            func,
            *args,
            job_id=job_id or new_job_id(),
            meta=meta or {},
            retry=DEFAULT_RETRY,
            job_timeout=timeout,
            result_ttl=7 * 86400,
            failure_ttl=30 * 86400,
        )

    def enqueue_after_commit(
        self,
        session: Session,
        queue: str,
        func: Callable | str,
        *args,
        meta: dict | None = None,
        timeout: int = 600,
    ) -> str:
        """Queue once `session` commits; dropped if it rolls back. Returns the job id, known before the commit."""
        self.queue(queue)  # validate the name now, not after the commit
        job = PendingJob(queue, func, args, new_job_id(), meta or {}, timeout)
        session.info.setdefault(_PENDING, []).append((self, job))
        return job.job_id


def new_job_id() -> str:
    return uuid.uuid4().hex


@event.listens_for(Session, "after_commit")
def _flush_pending(session: Session) -> None:
    for dispatcher, job in session.info.pop(_PENDING, []):
        dispatcher.enqueue_now(job.queue, job.func, *job.args, job_id=job.job_id, meta=job.meta, timeout=job.timeout)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    # A rolled-back nested savepoint does not discard the outer transaction's work.
    if not session.in_nested_transaction():
        session.info.pop(_PENDING, None)
