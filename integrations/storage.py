"""Object storage: the one client the project uses to keep files (imports, exports, statements, EDI).

Owns:
- the key layout (``practice_key`` / ``company_key``) and key validation, so no caller can address
  another tenant's prefix or escape the storage root;
- ``Storage``, the protocol the rest of the code depends on, with two backends:
  ``S3Storage`` (boto3; production) and ``LocalStorage`` (files under a directory; embedded default);
- ``storage_from_settings``, which picks the backend from configuration;
- the error vocabulary: ``StorageError`` (backend unreachable / misconfigured) and
  ``StorageKeyNotFound`` (the object does not exist).

Credentials for S3 come from boto3's normal chain only; this module never reads them itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageKeyNotFound",
    "StoredObject",
    "company_key",
    "content_disposition",
    "practice_key",
    "storage_from_settings",
]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Life of a download link when the caller does not configure one (MEDBILL_FILE_LINK_SECONDS, medbill.config).
DEFAULT_LINK_SECONDS = 300

_SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
# S3 error codes that mean "no such object"; HEAD responses carry no body, so only the status shows.
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})


class StorageError(Exception):
    """The storage backend is unreachable, misconfigured or refused the operation."""


class StorageKeyNotFound(StorageError):
    """The requested object does not exist."""

    def __init__(self, key: str, message: str | None = None) -> None:
        super().__init__(message or f"storage key not found: {key}")
        self.key = key


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


@runtime_checkable
class Storage(Protocol):
    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def presigned_url(self, key: str, expires_in: int | None = None, download_name: str | None = None) -> str:
        """A short-lived link to ``key``: ``expires_in`` seconds (None: the storage's ``link_seconds``), never longer
        than ``link_seconds``."""
        ...

    def check(self) -> None: ...


# --------------------------------------------------------------------------------------------- keys


def _check_part(part: str) -> None:
    if not isinstance(part, str) or not part:
        raise ValueError(f"storage key part must be a non-empty string, got {part!r}")
    if ".." in part:
        raise ValueError(f"storage key part must not contain '..': {part!r}")
    if part.startswith("/"):
        raise ValueError(f"storage key part must not be absolute: {part!r}")
    if "\\" in part or any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
        # Backslashes are separators on Windows tooling and control characters break S3 listings/logs.
        raise ValueError(f"storage key part contains a backslash or control character: {part!r}")


def _validate_key(key: str) -> str:
    """Check a full key; parts may hold '/', but every segment must be a real name."""
    _check_part(key)
    for segment in key.split("/"):
        # Empty and "." segments would alias other keys once a filesystem normalises the path.
        if segment in ("", "."):
            raise ValueError(f"storage key has an empty or '.' segment: {key!r}")
    return key


def practice_key(slug: str, *parts: str) -> str:
    """Key under a practice's prefix: ``practices/<slug>/<part>/...``."""
    if not isinstance(slug, str) or not _SLUG_RE.match(slug):
        raise ValueError(f"invalid practice slug {slug!r}: must match {_SLUG_RE.pattern}")
    if not parts:
        raise ValueError("practice_key needs at least one part below the practice prefix")
    for part in parts:
        _check_part(part)
    return _validate_key("/".join(("practices", slug, *parts)))


def company_key(company_id: int, *parts: str) -> str:
    """Key under a billing company's prefix: ``companies/<id>/<part>/...``."""
    # bool is an int subclass; True would silently become company 1.
    if isinstance(company_id, bool) or not isinstance(company_id, int) or company_id <= 0:
        raise ValueError(f"invalid company id {company_id!r}: must be a positive integer")
    if not parts:
        raise ValueError("company_key needs at least one part below the company prefix")
    for part in parts:
        _check_part(part)
    return _validate_key("/".join(("companies", str(company_id), *parts)))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_disposition(download_name: str) -> str:
    """The Content-Disposition header value that makes a download save as `download_name`."""
    # Quotes/CR/LF in a filename would break or inject into the header; RFC 5987 carries the real name.
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in download_name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(download_name, safe='')}"


# ----------------------------------------------------------------------------------------------- S3


class S3Storage:
    """S3 (or S3-compatible) bucket; ``prefix`` is prepended to every key transparently."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        sse: str | None = "AES256",
        sse_kms_key_id: str | None = None,
        create_bucket: bool = False,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 5,
        link_seconds: int = DEFAULT_LINK_SECONDS,
    ) -> None:
        if not bucket:
            raise StorageError("S3 bucket name is empty")
        if prefix:
            _validate_key(prefix.rstrip("/"))
            if not prefix.endswith("/"):
                prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.link_seconds = link_seconds

        s3_options: dict[str, Any] = {}
        if endpoint_url:
            # MinIO/moto/etc. rarely have wildcard DNS for virtual-hosted buckets.
            s3_options["addressing_style"] = "path"

        def config(attempts: int) -> Config:
            return Config(
                retries={"max_attempts": attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                signature_version="s3v4",
                s3=s3_options,
            )

        # A private session keeps us off boto3's module-global default session, which is not thread-safe.
        session = boto3.session.Session(region_name=region)
        try:
            self._client = session.client("s3", endpoint_url=endpoint_url, config=config(max_attempts))
            # The health probe must answer fast: retrying with backoff would stall the health endpoint.
            self._probe_client = session.client("s3", endpoint_url=endpoint_url, config=config(1))
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(f"cannot create S3 client for bucket {bucket!r} at {self._where()}: {exc}") from exc

        if create_bucket:
            self._ensure_bucket()

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self._where()})"

    # -- helpers

    def _where(self) -> str:
        return self.endpoint_url or "AWS default endpoint"

    def _full_key(self, key: str) -> str:
        return self.prefix + _validate_key(key)

    def _fail(self, op: str, full_key: str | None, exc: Exception) -> StorageError:
        target = f"s3://{self.bucket}/{full_key}" if full_key is not None else f"s3://{self.bucket}"
        return StorageError(f"S3 {op} {target} at {self._where()} failed: {exc}")

    @staticmethod
    def _code(exc: ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if self._code(exc) not in _MISSING_BUCKET_CODES:
                raise self._fail("head_bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head_bucket", None, exc) from exc

        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        # us-east-1 is the one region that rejects an explicit LocationConstraint.
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            # Another process may have won the race to create it.
            if self._code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail("create_bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("create_bucket", None, exc) from exc

    def _head(self, full_key: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if self._code(exc) in _MISSING_CODES:
                return None
            raise self._fail("head_object", full_key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head_object", full_key, exc) from exc

    # -- Storage protocol

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        full_key = self._full_key(key)
        digest = _sha256(data)
        meta = {**(metadata or {}), "sha256": digest}
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full_key,
            "Body": data,
            "ContentType": content_type,
            "Metadata": meta,
        }
        if self.sse:
            kwargs["ServerSideEncryption"] = self.sse
            if self.sse_kms_key_id and self.sse == "aws:kms":
                kwargs["SSEKMSKeyId"] = self.sse_kms_key_id
        try:
            self._client.put_object(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put_object", full_key, exc) from exc
        return StoredObject(key=key, size=len(data), sha256=digest, content_type=content_type)

    def get(self, key: str) -> bytes:
        full_key = self._full_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full_key)
            return response["Body"].read()
        except ClientError as exc:
            if self._code(exc) in _MISSING_CODES:
                raise StorageKeyNotFound(
                    key, f"storage key not found: s3://{self.bucket}/{full_key} at {self._where()}"
                ) from exc
            raise self._fail("get_object", full_key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get_object", full_key, exc) from exc

    def exists(self, key: str) -> bool:
        full_key = self._full_key(key)
        return self._head(full_key) is not None

    def presigned_url(self, key: str, expires_in: int | None = None, download_name: str | None = None) -> str:
        full_key = self._full_key(key)
        # Signing is offline and would happily sign a URL that can only ever 404.
        if self._head(full_key) is None:
            raise StorageKeyNotFound(key, f"storage key not found: s3://{self.bucket}/{full_key} at {self._where()}")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": full_key}
        if download_name:
            params["ResponseContentDisposition"] = content_disposition(download_name)
        try:
            return self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=_link_life(expires_in, self.link_seconds)
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("presign get_object", full_key, exc) from exc

    def check(self) -> None:
        try:
            self._probe_client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if self._code(exc) in _MISSING_BUCKET_CODES:
                raise StorageError(f"S3 bucket s3://{self.bucket} does not exist at {self._where()}") from exc
            raise self._fail("head_bucket", None, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head_bucket", None, exc) from exc


# -------------------------------------------------------------------------------------------- local


class LocalStorage:
    """Files under ``root``: object bytes in ``root/objects/<key>``, metadata in ``root/meta/<key>.json``.

    Separate trees keep a sidecar from ever colliding with a real key (e.g. one ending in ``.json``).
    """

    def __init__(
        self,
        root: Path,
        *,
        url_signer: Callable[[str, int, str | None], str] | None = None,
        link_seconds: int = DEFAULT_LINK_SECONDS,
    ) -> None:
        self.root = Path(root)
        self.url_signer = url_signer
        self.link_seconds = link_seconds

    def __repr__(self) -> str:
        return f"LocalStorage(root={str(self.root)!r})"

    def _paths(self, key: str) -> tuple[Path, Path]:
        _validate_key(key)
        root = self.root.resolve()
        objects = root / "objects"
        data_path = (objects / key).resolve()
        meta_path = (root / "meta" / f"{key}.json").resolve()
        # Validation already forbids '..'; resolving also defeats symlinks planted inside the root.
        if not data_path.is_relative_to(objects) or not meta_path.is_relative_to(root / "meta"):
            raise ValueError(f"storage key escapes the storage root: {key!r}")
        return data_path, meta_path

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory so os.replace is a rename on one filesystem, never a copy.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
    ) -> StoredObject:
        data_path, meta_path = self._paths(key)
        digest = _sha256(data)
        sidecar = {"content_type": content_type, "sha256": digest, "metadata": dict(metadata or {})}
        try:
            # Sidecar first: once the object is visible its metadata already describes it.
            self._atomic_write(meta_path, json.dumps(sidecar, sort_keys=True).encode())
            self._atomic_write(data_path, data)
        except OSError as exc:
            raise StorageError(f"local storage put {key!r} under {self.root} failed: {exc}") from exc
        return StoredObject(key=key, size=len(data), sha256=digest, content_type=content_type)

    def get(self, key: str) -> bytes:
        data_path, _ = self._paths(key)
        try:
            return data_path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise StorageKeyNotFound(key, f"storage key not found: {key} under {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"local storage get {key!r} under {self.root} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        data_path, _ = self._paths(key)
        return data_path.is_file()

    def presigned_url(self, key: str, expires_in: int | None = None, download_name: str | None = None) -> str:
        data_path, _ = self._paths(key)
        if not data_path.is_file():
            raise StorageKeyNotFound(key, f"storage key not found: {key} under {self.root}")
        if self.url_signer is not None:
            return self.url_signer(key, _link_life(expires_in, self.link_seconds), download_name)
        return data_path.as_uri()

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"local storage root {self.root} does not exist or is not a directory")
        # os.access lies under some ACL/NFS setups; an actual write is the only honest probe.
        try:
            with tempfile.TemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as exc:
            raise StorageError(f"local storage root {self.root} is not writable: {exc}") from exc


def _link_life(expires_in: int | None, link_seconds: int) -> int:
    """Seconds a link lives: what the caller asked for, at most the configured life (one setting bounds them all)."""
    if expires_in is None:
        return link_seconds
    return max(1, min(expires_in, link_seconds))


# -------------------------------------------------------------------------------------------- setup


def storage_from_settings(
    *,
    s3_bucket: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
    local_root: Path,
    url_signer: Callable[[str, int, str | None], str] | None = None,
    s3_prefix: str = "",
    s3_sse: str | None = "AES256",
    s3_create_bucket: bool = False,
    link_seconds: int = DEFAULT_LINK_SECONDS,
) -> Storage:
    """S3Storage when a bucket is configured, else LocalStorage under ``local_root``; either makes download links of
    ``link_seconds``."""
    # An empty env var (S3_BUCKET=) means "not configured", not "bucket named ''".
    if s3_bucket:
        return S3Storage(
            s3_bucket,
            endpoint_url=s3_endpoint_url or None,
            region=s3_region or None,
            prefix=s3_prefix,
            sse=s3_sse,
            create_bucket=s3_create_bucket,
            link_seconds=link_seconds,
        )
    return LocalStorage(Path(local_root), url_signer=url_signer, link_seconds=link_seconds)
