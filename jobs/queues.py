"""Queues and the dispatcher that enqueues jobs only after the transaction that created their work commits."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session

# A worker takes its next job from the first of these with one waiting: posting before documents (`eob`, EOB rendering
# in chunks of bounded work), so one practice's large payment cannot hold up another practice's posting.
QUEUES = ("submission", "posting", "statements", "exports", "default", "eob")
# Transient failures (database or S3 briefly away) get three more tries with growing pauses.
DEFAULT_RETRY = Retry(max=3, interval=[5, 30, 120])
_PENDING = "medbill_pending_jobs"
# A job whose worker died under it is put back this many times; a job that kills its worker every time (out of memory,
# a crash in a C library) then fails instead of taking worker after worker down.
MAX_CRASH_REQUEUES = 3
PENDING_STATUSES = frozenset({"queued", "started", "scheduled", "deferred"})
log = logging.getLogger("medbill.jobs")


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

    def is_pending(self, job_id: str | None) -> bool:
        """Whether the job exists and will still run (queued, running, waiting for a retry): the recovery paths use
        it to tell work whose job was lost (a Redis restart without persistence, a kill) from work under way."""
        if not job_id:
            return False
        try:
            job = Job.fetch(job_id, connection=self.redis)
        except Exception:  # NoSuchJobError, or a job whose data was lost
            return False
        status = job.get_status(refresh=False)
        return str(getattr(status, "value", status)) in PENDING_STATUSES

    def ensure_pending(
        self,
        session: Session,
        job_id: str | None,
        queue: str,
        func: Callable | str,
        *args,
        meta: dict | None = None,
        timeout: int = 600,
    ) -> str | None:
        """The recovery path of work recorded in the database whose job is gone (Redis restarted without
        persistence, the enqueue after commit failed, the job ran out of retries): when `job_id` is not pending, a
        new job is queued after `session` commits and its id returned; None when the job is still on its way."""
        if self.is_pending(job_id):
            return None
        return self.enqueue_after_commit(session, queue, func, *args, meta=meta, timeout=timeout)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def recover_abandoned(redis: Redis, queue_names: list[str] | tuple[str, ...] = QUEUES) -> list[str]:
    """Put back the jobs of workers that died mid-job (SIGKILL, OOM, a lost machine); returns their ids.

    Two paths. A worker of this host whose process is gone is known dead at once: its started jobs are queued again
    now (each job's work is idempotent, so running it again finishes what the dead one began). Workers on other hosts
    stop sending heartbeats; RQ's own cleanup of the started registry (run here and by every worker's maintenance,
    every 60 s in `medbill worker`) retries their jobs once the heartbeat has expired (about 90 s)."""
    host = socket.gethostname()
    dead = set()
    for worker in Worker.all(connection=redis):
        if worker.hostname == host and worker.pid and worker.pid != os.getpid() and not _alive(worker.pid):
            dead.add(worker.name)
            worker.register_death()
    recovered = []
    for name in queue_names:
        queue = Queue(name, connection=redis)
        registry = StartedJobRegistry(queue=queue)
        for job_id in registry.get_job_ids(cleanup=False):
            try:
                job = Job.fetch(job_id, connection=redis)
            except Exception:
                continue
            if job.worker_name not in dead or str(getattr(job.get_status(), "value", "")) != "started":
                continue
            registry.remove_executions(job)
            crashes = int(job.meta.get("medbill_worker_crashes", 0)) + 1
            job.meta["medbill_worker_crashes"] = crashes
            job.save_meta()
            if crashes > MAX_CRASH_REQUEUES:
                log.error("job %s killed its worker %d times: failed", job.id, crashes)
                with redis.pipeline() as pipe:
                    from rq.job_lifecycle import record_job_failure

                    record_job_failure(job, f"worker died {crashes} times running this job", pipe)
                    pipe.execute()
                continue
            queue.enqueue_job(job, at_front=True)
            log.warning("job %s: its worker %s died mid-job; queued again", job.id, job.worker_name)
            recovered.append(job.id)
        registry.cleanup()  # abandoned jobs of other hosts whose heartbeat expired: RQ retries them
    return recovered
