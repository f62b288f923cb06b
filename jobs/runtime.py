"""What a job function needs in the worker process: the database, storage and dispatcher, built once per process
from the environment."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from redis import Redis

from integrations.mail import Mailer
from integrations.storage import Storage
from jobs.queues import Dispatcher
from medbill.config import Settings
from medbill.errors import DomainError
from tenants.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    storage: Storage
    dispatcher: Dispatcher
    mailer: Mailer | None = None  # built from the settings when first needed


def build_runtime(settings: Settings) -> Runtime:
    from medbill.services import database_timeouts, make_storage

    redis = Redis.from_url(settings.redis_url)
    return Runtime(
        settings=settings,
        db=Database(settings.database_url, pool_size=2, **database_timeouts(settings)),
        storage=make_storage(settings),
        dispatcher=Dispatcher(redis),
    )


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    return build_runtime(Settings.from_env().ensure_secret_key())


def final_on_domain_error(fn: Callable) -> Callable:
    """Retries are for transient failures (a database or S3 blip). A domain error (unknown id, refused input) will
    fail the same way every time, so it ends the job with a readable result instead of three more attempts."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            logging.getLogger("medbill.jobs").warning("%s ended: %s", fn.__name__, exc.code)
            return {"status": "error", "code": exc.code, "message": exc.message, "errors": exc.errors}

    return run
