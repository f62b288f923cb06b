"""Settings read from environment variables: the one place that knows which servers medbill talks to."""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

# Bounds of MEDBILL_FILE_LINK_SECONDS: shorter than 30 s a slow browser cannot follow the redirect in time; longer
# than an hour a leaked link stays useful too long.
FILE_LINK_SECONDS_RANGE = (30, 3600)


class SettingsError(ValueError):
    """A setting's value is not acceptable; the message names the variable, what it holds and what is allowed."""


def _bounded_int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """The integer variable ``name`` (``default`` when unset or empty), refused outside ``low``..``high``."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number of seconds ({low}..{high})") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range: it must be between {low} and {high} seconds")
    return value


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything configurable. `database_url`/`redis_url` None means: use the embedded servers."""

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = ""
    s3_sse: str | None = "AES256"
    secret_key: str = ""
    access_token_ttl: int = 3600
    secure_cookies: bool = True
    public_url: str = "http://127.0.0.1:8000"
    db_pool_size: int = 5
    # Database timeouts (tenants/db.py): connecting, one statement (also enforced on our side, so a stalled server
    # answers 503 instead of hanging), waiting for a lock, waiting for a pooled connection.
    db_connect_timeout: int = 5
    db_statement_timeout_ms: int = 30000
    db_lock_timeout_ms: int = 10000
    db_pool_timeout: float = 10.0
    log_level: str = "INFO"
    # Failed sign-ins allowed per window (tenants/throttle.py): per account from one address, per account from all
    # addresses, per client address over all accounts.
    login_failures_per_account_address: int = 5
    login_failures_per_account: int = 20
    login_failures_per_address: int = 50
    login_window_seconds: int = 900
    # Reverse proxies in front of the web processes whose X-Forwarded-For/-Proto are trusted (0: none, serve direct).
    proxy_hops: int = 0
    # Life of every download link: the S3 presigned URL, the web app's file link (local storage's stand-in,
    # tenants/file_links.py) and the `expires_in` the API answers with it (MEDBILL_FILE_LINK_SECONDS).
    file_link_seconds: int = 300
    # Outgoing mail (the doctors' monthly summary): None writes .eml files under the data dir instead.
    smtp_url: str | None = None
    mail_from: str = "medbill <no-reply@medbill.invalid>"
    # Master key (base64, 32 bytes) wrapping the data keys of the companies' stored credentials (tenants.secrets).
    secrets_key: str = ""
    # Outbound connections the operator allows (billing.connections): "host" or "host:port" entries; the directory
    # transport only under this root (None: disabled).
    clearinghouse_hosts: tuple[str, ...] = ()
    agency_hosts: tuple[str, ...] = ()
    directory_transport_root: Path | None = None
    # Account lifecycle (tenants/accounts.py): a portal session ends after this many idle minutes and in any case
    # this many hours after sign-in; API tokens expire after the default days unless asked for (up to the maximum);
    # a password reset link is valid for this many minutes.
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    api_token_default_days: int = 90
    api_token_max_days: int = 365
    password_reset_minutes: int = 30
    # EOB rendering (jobs/eob.py): a payment with more posted claims than this is rendered by one job per this many.
    eob_chunk_claims: int = 200
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("MEDBILL_DATA_DIR") or "./var").resolve()
        sse = env.get("S3_SSE", "AES256")
        return cls(
            data_dir=data_dir,
            database_url=_normalise_db_url(env.get("DATABASE_URL") or None),
            redis_url=env.get("REDIS_URL") or None,
            s3_bucket=env.get("S3_BUCKET") or None,
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            s3_region=env.get("S3_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            s3_prefix=env.get("S3_PREFIX", ""),
            s3_sse=None if sse.lower() in {"", "none"} else sse,
            secret_key=env.get("MEDBILL_SECRET_KEY", ""),
            access_token_ttl=int(env.get("MEDBILL_ACCESS_TOKEN_TTL", "3600")),
            secure_cookies=_bool(env.get("MEDBILL_SECURE_COOKIES"), True),
            public_url=env.get("MEDBILL_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            db_pool_size=int(env.get("MEDBILL_DB_POOL_SIZE", "5")),
            db_connect_timeout=int(env.get("MEDBILL_DB_CONNECT_TIMEOUT", "5")),
            db_statement_timeout_ms=int(env.get("MEDBILL_DB_STATEMENT_TIMEOUT_MS", "30000")),
            db_lock_timeout_ms=int(env.get("MEDBILL_DB_LOCK_TIMEOUT_MS", "10000")),
            db_pool_timeout=float(env.get("MEDBILL_DB_POOL_TIMEOUT", "10")),
            log_level=env.get("MEDBILL_LOG_LEVEL", "INFO"),
            login_failures_per_account_address=int(env.get("MEDBILL_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", "5")),
            login_failures_per_account=int(env.get("MEDBILL_LOGIN_FAILURES_PER_ACCOUNT", "20")),
            login_failures_per_address=int(env.get("MEDBILL_LOGIN_FAILURES_PER_ADDRESS", "50")),
            login_window_seconds=int(env.get("MEDBILL_LOGIN_WINDOW_SECONDS", "900")),
            proxy_hops=int(env.get("MEDBILL_PROXY_HOPS", "0")),
            file_link_seconds=_bounded_int(env, "MEDBILL_FILE_LINK_SECONDS", 300, *FILE_LINK_SECONDS_RANGE),
            smtp_url=env.get("MEDBILL_SMTP_URL") or None,
            mail_from=env.get("MEDBILL_MAIL_FROM") or "medbill <no-reply@medbill.invalid>",
            secrets_key=env.get("MEDBILL_SECRETS_KEY", "").strip(),
            clearinghouse_hosts=_list(env.get("MEDBILL_CLEARINGHOUSE_HOSTS")),
            agency_hosts=_list(env.get("MEDBILL_AGENCY_HOSTS")),
            directory_transport_root=(
                Path(env["MEDBILL_DIRECTORY_TRANSPORT_ROOT"]).resolve()
                if env.get("MEDBILL_DIRECTORY_TRANSPORT_ROOT")
                else None
            ),
            session_idle_minutes=int(env.get("MEDBILL_SESSION_IDLE_MINUTES", "30")),
            session_max_hours=int(env.get("MEDBILL_SESSION_MAX_HOURS", "12")),
            api_token_default_days=int(env.get("MEDBILL_API_TOKEN_DEFAULT_DAYS", "90")),
            api_token_max_days=int(env.get("MEDBILL_API_TOKEN_MAX_DAYS", "365")),
            password_reset_minutes=int(env.get("MEDBILL_PASSWORD_RESET_MINUTES", "30")),
            eob_chunk_claims=max(1, int(env.get("MEDBILL_EOB_CHUNK_CLAIMS", "200"))),
        )

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def ensure_secret_key(self) -> Settings:
        """Production must set MEDBILL_SECRET_KEY; the embedded default keeps a generated one in its data dir."""
        if self.secret_key:
            return self
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return replace(self, secret_key=path.read_text().strip())

    def ensure_secrets_key(self) -> Settings:
        """MEDBILL_SECRETS_KEY, else the key the embedded default keeps in its data dir (``secrets_key``).

        The file is created only when no external database is configured (the embedded default): with a production
        DATABASE_URL a key generated on one machine would lock every other machine out of the stored credentials,
        so there the variable (or a key file put there by the operator) is required; tenants.secrets says so."""
        if self.secrets_key:
            return self
        path = self.data_dir / "secrets_key"
        if not path.exists() and self.database_url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
        if not path.exists():
            return self
        return replace(self, secrets_key=path.read_text().strip())


def _list(value: str | None) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty entries."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _normalise_db_url(url: str | None) -> str | None:
    """Accept the usual postgres:// forms and always use psycopg 3."""
    if url is None:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def with_embedded_servers(settings: Settings, *, database: bool = True, redis: bool = True) -> Settings:
    """``settings`` with the URLs of the embedded servers ``medbill up`` runs on its data directory filled in where
    DATABASE_URL / REDIS_URL are not set (read from the recorded ports and passwords there).

    Raises medbill.embedded.EmbeddedError (one line, naming the data directory and `medbill up`) when they are not
    running: a one-off command does not start servers of its own, which would outlive it or be stopped under a
    later `medbill up`."""
    from medbill.embedded import EmbeddedPostgres, EmbeddedValkey

    def quiet(_message: str) -> None:
        return None

    changes: dict[str, str] = {}
    if database and settings.database_url is None:
        changes["database_url"] = EmbeddedPostgres(settings.data_dir, log=quiet).running_url()
    if redis and settings.redis_url is None:
        changes["redis_url"] = EmbeddedValkey(settings.data_dir, log=quiet).running_url()
    return replace(settings, **changes) if changes else settings
