"""Builders for the outside services every process needs (database, Redis, storage), from Settings."""

from __future__ import annotations

from collections.abc import Callable

from redis import Redis

from integrations.mail import Mailer, mailer_from_settings
from integrations.storage import Storage, storage_from_settings
from medbill.config import Settings
from tenants import file_links
from tenants.db import Database


def make_database(settings: Settings) -> Database:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (medbill up sets it for the embedded server)")
    return Database(settings.database_url, pool_size=settings.db_pool_size, **database_timeouts(settings))


def database_timeouts(settings: Settings) -> dict:
    """The Database keyword arguments of the configured timeouts (every process uses the same)."""
    return {
        "connect_timeout": settings.db_connect_timeout,
        "statement_timeout_ms": settings.db_statement_timeout_ms,
        "lock_timeout_ms": settings.db_lock_timeout_ms,
        "pool_timeout": settings.db_pool_timeout,
    }


def make_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (medbill up sets it for the embedded server)")
    return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)


def file_url_signer(settings: Settings) -> Callable[[str, int, str | None], str]:
    """Local storage's stand-in for S3 presigned URLs: a link to the web app's `/files/<link id>`, made for the
    signed-in user of the request being served and honoured only for them (tenants/file_links.py), for at most
    MEDBILL_FILE_LINK_SECONDS. The grant is committed on its own, so it exists whatever the caller's transaction does
    (some callers have committed already when they ask for the link)."""

    def sign(key: str, expires_in: int, download_name: str | None) -> str:
        from flask import current_app, has_request_context

        from api.security import request_credential

        who = request_credential() if has_request_context() else None
        if who is None:
            raise RuntimeError("a file link is made only while serving a signed-in user's request")
        ttl = max(1, min(expires_in, settings.file_link_seconds))
        with current_app.extensions["medbill"].db.shared_session() as session:
            link_id = file_links.mint(session, who, key, download_name, ttl_seconds=ttl)
            session.commit()
        return f"{settings.public_url}/files/{link_id}"

    return sign


def make_storage(settings: Settings) -> Storage:
    return storage_from_settings(
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_prefix=settings.s3_prefix,
        s3_sse=settings.s3_sse,
        local_root=settings.data_dir / "storage",
        url_signer=file_url_signer(settings),
        link_seconds=settings.file_link_seconds,
    )


def make_mailer(settings: Settings) -> Mailer:
    return mailer_from_settings(settings.smtp_url, settings.mail_from, settings.data_dir / "outbox")
