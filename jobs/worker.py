"""`medbill worker`: a real RQ worker over medbill's queues, with RQ's scheduler for retries with backoff.

Two things RQ's own worker does not do, and why:

* A work horse never outlives its worker. RQ forks each job into a process group of its own, so stopping the
  worker's group (a supervisor's SIGKILL after its deadline) left the job running as an orphan. The horse asks the
  kernel to kill it when the worker dies (PR_SET_PDEATHSIG), and a worker asked to stop (SIGTERM) lets its job finish
  for `stop_grace` seconds, then stops the horse itself (the job fails and is retried later: every job is
  idempotent) and exits, before the supervisor's own deadline.
* Redis going away does not end the worker. RQ retries while it waits for a job, but a Redis error anywhere else
  (a heartbeat, the suspension check, registering) ends its loop; `run_worker` then waits for Redis to answer and
  starts a fresh RQ worker, until it is asked to stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

import jobs
from jobs.queues import QUEUES, recover_abandoned

# Imported lazily by job code; heavy enough to be worth sharing with every work horse.
PRELOAD = ("integrations.pdf.statement", "integrations.pdf.eob", "integrations.pdf.appeal")
# Waiting for Redis: the first pause, and the longest.
RECONNECT_FIRST_PAUSE = 1.0
RECONNECT_MAX_PAUSE = 30.0
_PR_SET_PDEATHSIG = 1

log = logging.getLogger("medbill.worker")


def preload_job_modules() -> None:
    """RQ forks a work horse per job: what the worker imported before is shared with it, anything else every job
    imports again. The job modules pull in the billing domain and the ICD-10-CM code set (about 6 s of CPU), which
    made every job pay seconds before its first query (a 10-claim 835 set took 9 s in a worker, 0.7 s in process)."""
    for module in pkgutil.iter_modules(jobs.__path__):
        importlib.import_module(f"jobs.{module.name}")
    for name in PRELOAD:
        importlib.import_module(name)


def _die_with_parent(parent: int) -> None:
    """In a forked child: the kernel SIGKILLs this process when its parent dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


class MedbillWorker(Worker):
    """RQ's forking worker whose work horse stops with it (see the module docstring)."""

    def __init__(self, *args, stop_grace: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop_grace = stop_grace
        self.medbill_stop_requested = False
        self._grace_timer: threading.Timer | None = None

    def main_work_horse(self, job, queue) -> None:
        _die_with_parent(self.pid)
        super().main_work_horse(job, queue)

    def request_stop(self, signum, frame) -> None:
        # Set first: RQ's handler below talks to Redis, which may be the thing that is away.
        self.medbill_stop_requested = True
        if self.horse_pid and self._grace_timer is None:
            self._grace_timer = threading.Timer(self.stop_grace, self._stop_horse)
            self._grace_timer.daemon = True
            self._grace_timer.start()
        super().request_stop(signum, frame)

    def _stop_horse(self) -> None:
        if self.horse_pid:
            log.warning(
                "worker %s: job still running %gs after the stop request; stopping its work horse %d (it is retried)",
                self.name,
                self.stop_grace,
                self.horse_pid,
            )
            self.kill_horse()

    def teardown(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        super().teardown()


def run_worker(
    redis_url: str,
    queues: list[str] | None = None,
    *,
    burst: bool = False,
    name: str | None = None,
    stop_grace: float = 10.0,
) -> bool:
    """Work the queues until SIGTERM/SIGINT (or, in burst mode, until they are empty); True if any job was done."""
    # Timeouts: a Redis that stops answering must raise (and be waited for), not block the worker forever. The read
    # timeout stays above RQ's blocking dequeue (dequeue_timeout) so an idle wait is not taken for an outage.
    redis = Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)
    names = queues or list(QUEUES)
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    preload_job_modules()
    worked = False
    pause = RECONNECT_FIRST_PAUSE
    while True:
        started = time.monotonic()
        worker: MedbillWorker | None = None
        try:
            # Jobs of a worker of this host that died mid-job run again now, not after its heartbeat expires.
            recover_abandoned(redis, names)
            # Maintenance (which retries jobs abandoned by dead workers of other hosts) every minute, not every ten.
            worker = MedbillWorker(
                [Queue(n, connection=redis) for n in names],
                connection=redis,
                name=name,
                maintenance_interval=60,
                stop_grace=stop_grace,
            )
            worked = worker.work(burst=burst, with_scheduler=True) or worked
            if burst or worker.medbill_stop_requested:
                return worked
            reason = "its loop ended (see above)"
        except RedisError as exc:
            if worker is not None:
                _stop_scheduler(worker)
            if burst or (worker is not None and worker.medbill_stop_requested):
                raise
            reason = f"Redis: {type(exc).__name__}: {exc}"
        if time.monotonic() - started > 60:
            pause = RECONNECT_FIRST_PAUSE  # it had worked for a while: this is a new outage
        log.warning("worker stopped working (%s); waiting for Redis, then starting again", reason)
        if not _wait_for_redis(redis, pause):
            return worked
        pause = min(pause * 2, RECONNECT_MAX_PAUSE)


def _stop_scheduler(worker: MedbillWorker) -> None:
    """A worker that ended on a Redis error never reached its teardown: its scheduler process (a non-daemon child)
    would keep running, and at exit multiprocessing waits for it, so a later SIGTERM never ended the worker."""
    process = getattr(getattr(worker, "scheduler", None), "_process", None)
    if process is None or process.pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(process.pid, signal.SIGTERM)
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)


def _wait_for_redis(redis: Redis, pause: float) -> bool:
    """Sleep `pause`, then until Redis answers a PING (pausing longer each time); False if SIGTERM/SIGINT came."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(pause):
            try:
                redis.ping()
                log.info("Redis answers again; starting the worker")
                return True
            except RedisError as exc:
                log.warning("Redis still away (%s); next try in %gs", type(exc).__name__, pause)
                pause = min(pause * 2, RECONNECT_MAX_PAUSE)
        log.info("stop requested while waiting for Redis")
        return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
