"""A worker stopped while a job runs takes the job's work horse with it (RQ runs each horse in a process group of its
own, so stopping the worker's group used to leave the job running as an orphan): SIGTERM lets the job run for the
stop grace, then stops the horse and exits; a worker killed outright (SIGKILL, the supervisor's last resort) takes its
horse down too. And a worker whose Redis goes away waits for it and works again, instead of exiting."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest
from rq import Queue, Retry

from tests.conftest import settings_env
from tests.faults.support import RedisServer, descendants, kill_all, start_worker, wait_for

GRACE = 2


def _gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by whoever inherited it counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _horse(worker_pid: int) -> int | None:
    """The work horse: the worker's descendant that leads a process group of its own (RQ's scheduler process stays
    in the worker's group)."""
    for pid in descendants(worker_pid):
        try:
            if os.getpgid(pid) == pid and not _gone(pid):
                return pid
        except ProcessLookupError:
            continue
    return None


@pytest.fixture()
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def worker_env(settings, own_redis):
    env = settings_env(dataclasses.replace(settings, redis_url=own_redis.url))
    return env | {"MEDBILL_WORKER_STOP_GRACE": str(GRACE)}


def _running_job(env, own_redis, tmp_path):
    from redis import Redis

    queue = Queue("default", connection=Redis.from_url(own_redis.url))
    job = queue.enqueue("time.sleep", 300, job_timeout=600, retry=Retry(max=1, interval=60))
    worker = start_worker(env, "default", log=tmp_path / "worker.log")
    horse = wait_for(lambda: _horse(worker.pid), timeout=60, what="the job's work horse", every=0.2)
    return worker, horse, job


def test_sigterm_stops_the_running_horse_after_the_grace(worker_env, own_redis, tmp_path):
    worker, horse, job = _running_job(worker_env, own_redis, tmp_path)
    try:
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        time.sleep(GRACE / 2)
        assert not _gone(horse)  # the job gets its grace to finish
        assert worker.wait(timeout=GRACE + 15) is not None
        took = time.monotonic() - started
        assert GRACE <= took < GRACE + 10, took
        wait_for(lambda: _gone(horse), timeout=5, what="the horse to stop with its worker")
        job.refresh()
        assert job.get_status() in ("scheduled", "failed"), job.get_status()  # stopped, to be retried
    finally:
        if worker.poll() is None:
            kill_all(worker)


def test_a_killed_worker_takes_its_horse_down(worker_env, own_redis, tmp_path):
    worker, horse, _ = _running_job(worker_env, own_redis, tmp_path)
    try:
        os.kill(worker.pid, signal.SIGKILL)  # the worker only, as a supervisor's deadline or the OOM killer does
        worker.wait(timeout=10)
        wait_for(lambda: _gone(horse), timeout=5, what="the orphaned horse to die with its worker")
    finally:
        if worker.poll() is None:
            kill_all(worker)


def test_a_worker_waits_for_redis_and_works_again(worker_env, own_redis, tmp_path):
    from redis import Redis

    worker = start_worker(worker_env, "default", log=tmp_path / "worker.log")
    try:
        queue = Queue("default", connection=Redis.from_url(own_redis.url))
        first = queue.enqueue("time.sleep", 0)
        wait_for(lambda: first.refresh() or first.get_status() == "finished", timeout=60, what="a first job")
        own_redis.stop()
        time.sleep(8)  # long enough for RQ's heartbeat and maintenance to run into the outage
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        own_redis.start()
        queue = Queue("default", connection=Redis.from_url(own_redis.url))
        after = queue.enqueue("time.sleep", 0)
        wait_for(
            lambda: after.refresh() or after.get_status() == "finished", timeout=90, what="a job after Redis came back"
        )
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            kill_all(worker)
