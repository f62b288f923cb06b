"""Builders for the outside services every process needs (database, Redis, storage), from Settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from itsdangerous import BadSignature, URLSafeSerializer
from redis import Redis

from integrations.mail import Mailer, mailer_from_settings
from integrations.storage import Storage, storage_from_settings
from medbill.config import Settings
from tenants.db import Database


def make_database(settings: Settings) -> Database:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (medbill up sets it for the embedded server)")
    return Database(settings.database_url, pool_size=settings.db_pool_size)


def make_redis(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (medbill up sets it for the embedded server)")
    return Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)


def file_url_signer(settings: Settings) -> Callable[[str, int, str | None], str]:
    """Local storage's stand-in for S3 presigned URLs: a signed, expiring link served by the web app."""
    serializer = URLSafeSerializer(settings.secret_key, salt="medbill-file")

    def sign(key: str, expires_in: int, download_name: str | None) -> str:
        token = serializer.dumps({"k": key, "e": int(time.time()) + expires_in, "n": download_name})
        return f"{settings.public_url}/files/{token}"

    return sign


def read_file_token(settings: Settings, token: str) -> tuple[str, str | None] | None:
    """(key, download name) of a valid, unexpired link, else None."""
    try:
        data = URLSafeSerializer(settings.secret_key, salt="medbill-file").loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("e", 0) < time.time():
        return None
    return data.get("k"), data.get("n")


def make_storage(settings: Settings) -> Storage:
    return storage_from_settings(
        s3_bucket=settings.s3_bucket,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        s3_prefix=settings.s3_prefix,
        s3_sse=settings.s3_sse,
        local_root=settings.data_dir / "storage",
        url_signer=file_url_signer(settings),
    )


def make_mailer(settings: Settings) -> Mailer:
    return mailer_from_settings(settings.smtp_url, settings.mail_from, settings.data_dir / "outbox")
