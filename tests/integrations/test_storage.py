"""Storage backends against a real moto S3 server process and a real temp directory."""

from __future__ import annotations

import hashlib
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from integrations.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    StorageKeyNotFound,
    StoredObject,
    company_key,
    practice_key,
    storage_from_settings,
)
from tests.s3server import free_port

KEY = "practices/acme/imports/2026/abc.csv"
DATA = b"id,amount\n1,12.50\n"


@pytest.fixture()
def bucket() -> str:
    return f"medbill-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def s3(s3_endpoint: str, bucket: str) -> S3Storage:
    return S3Storage(bucket, endpoint_url=s3_endpoint, create_bucket=True)


@pytest.fixture()
def raw_s3(s3_endpoint: str):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


# ---------------------------------------------------------------------------------------------- S3


def test_s3_roundtrip(s3: S3Storage, raw_s3, bucket: str) -> None:
    assert isinstance(s3, Storage)
    assert not s3.exists(KEY)

    stored = s3.put(KEY, DATA, content_type="text/csv", metadata={"uploaded-by": "7"})

    assert stored == StoredObject(
        key=KEY, size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest(), content_type="text/csv"
    )
    assert s3.exists(KEY)
    assert s3.get(KEY) == DATA

    head = raw_s3.head_object(Bucket=bucket, Key=KEY)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"sha256": stored.sha256, "uploaded-by": "7"}


def test_s3_overwrite_replaces_content(s3: S3Storage) -> None:
    s3.put(KEY, b"old")
    s3.put(KEY, b"new")
    assert s3.get(KEY) == b"new"


def test_s3_get_missing_key(s3: S3Storage) -> None:
    with pytest.raises(StorageKeyNotFound) as info:
        s3.get("practices/acme/nope.csv")
    assert info.value.key == "practices/acme/nope.csv"
    assert isinstance(info.value, StorageError)


def test_s3_presigned_missing_key(s3: S3Storage) -> None:
    with pytest.raises(StorageKeyNotFound) as info:
        s3.presigned_url("practices/acme/nope.csv")
    assert info.value.key == "practices/acme/nope.csv"


def test_s3_presigned_url_downloads_same_bytes(s3: S3Storage) -> None:
    s3.put(KEY, DATA, content_type="text/csv")

    url = s3.presigned_url(KEY, expires_in=60, download_name='report "Q1".csv')

    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == DATA
    # moto ignores response-* overrides, so check what S3 would be asked to send.
    disposition = parse_qs(urlsplit(url).query)["response-content-disposition"][0]
    assert disposition.startswith("attachment;")
    assert 'filename="report _Q1_.csv"' in disposition
    assert "filename*=UTF-8''report%20%22Q1%22.csv" in disposition


def test_s3_sse_is_configurable(s3_endpoint: str, bucket: str, raw_s3) -> None:
    store = S3Storage(bucket, endpoint_url=s3_endpoint, sse=None, create_bucket=True)
    store.put(KEY, DATA)
    assert "ServerSideEncryption" not in raw_s3.head_object(Bucket=bucket, Key=KEY)


def test_s3_prefix_is_applied(s3_endpoint: str, bucket: str, raw_s3) -> None:
    store = S3Storage(bucket, endpoint_url=s3_endpoint, prefix="prod/", create_bucket=True)

    stored = store.put(KEY, DATA)

    assert stored.key == KEY
    assert raw_s3.get_object(Bucket=bucket, Key="prod/" + KEY)["Body"].read() == DATA
    assert store.get(KEY) == DATA
    assert store.exists(KEY)
    # The unprefixed location stays empty: the prefix really is part of the object key.
    assert "Contents" not in raw_s3.list_objects_v2(Bucket=bucket, Prefix="practices/")


def test_s3_create_bucket_outside_us_east_1(s3_endpoint: str, bucket: str, raw_s3) -> None:
    store = S3Storage(bucket, endpoint_url=s3_endpoint, region="eu-west-1", create_bucket=True)
    store.check()
    assert raw_s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    # Creating again is a no-op, not an error.
    S3Storage(bucket, endpoint_url=s3_endpoint, region="eu-west-1", create_bucket=True)


def test_s3_check_ok(s3: S3Storage) -> None:
    s3.check()


def test_s3_check_missing_bucket(s3_endpoint: str, bucket: str) -> None:
    store = S3Storage(bucket, endpoint_url=s3_endpoint)
    with pytest.raises(StorageError) as info:
        store.check()
    assert not isinstance(info.value, StorageKeyNotFound)
    assert bucket in str(info.value)


def test_s3_unreachable_endpoint_fails_fast(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Storage("medbill-nowhere", endpoint_url=endpoint, connect_timeout=1, read_timeout=1)

    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.check()
    assert time.monotonic() - started < 5
    assert "medbill-nowhere" in str(info.value)
    assert endpoint in str(info.value)


def test_s3_unreachable_get_is_storage_error_not_missing(aws_env: None) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Storage("medbill-nowhere", endpoint_url=endpoint, connect_timeout=0.5, read_timeout=0.5, max_attempts=1)
    with pytest.raises(StorageError) as info:
        store.get(KEY)
    assert not isinstance(info.value, StorageKeyNotFound)
    assert KEY in str(info.value)


def test_s3_rejects_bad_keys(s3: S3Storage) -> None:
    for bad in ("../x", "", "/abs", "a//b", "a\\b"):
        with pytest.raises(ValueError):
            s3.put(bad, b"x")


def test_storage_from_settings_picks_backend(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    s3 = storage_from_settings(s3_bucket=bucket, s3_endpoint_url=s3_endpoint, s3_region=None, local_root=tmp_path)
    local = storage_from_settings(s3_bucket="", s3_endpoint_url=None, s3_region=None, local_root=tmp_path)
    assert isinstance(s3, S3Storage)
    assert isinstance(local, LocalStorage)


# -------------------------------------------------------------------------------------------- keys


def test_practice_key_accepts_valid() -> None:
    assert practice_key("acme", "imports", "2026", "abc.csv") == KEY
    assert practice_key("acme", "imports/2026/abc.csv") == KEY
    assert practice_key("a_1", "x") == "practices/a_1/x"


@pytest.mark.parametrize("part", ["../x", "", "/abs", "a..b", "a\\b", "a\x00b", "a//b", "a/./b", "x/"])
def test_practice_key_rejects_bad_parts(part: str) -> None:
    with pytest.raises(ValueError):
        practice_key("acme", part)


@pytest.mark.parametrize("slug", ["A", "1abc", "a-b", "a", "", "a" * 42, "acme/x", "../acme"])
def test_practice_key_rejects_bad_slugs(slug: str) -> None:
    with pytest.raises(ValueError):
        practice_key(slug, "x")


def test_practice_key_needs_a_part() -> None:
    with pytest.raises(ValueError):
        practice_key("acme")


def test_company_key() -> None:
    assert company_key(42, "exports", "f.pdf") == "companies/42/exports/f.pdf"
    for bad_id in (0, -1, True, "42"):
        with pytest.raises(ValueError):
            company_key(bad_id, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        company_key(42, "../x")


# ------------------------------------------------------------------------------------------- local


def test_local_roundtrip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    assert isinstance(store, Storage)
    assert not store.exists(KEY)

    stored = store.put(KEY, DATA, content_type="text/csv", metadata={"uploaded_by": "7"})

    assert stored == StoredObject(
        key=KEY, size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest(), content_type="text/csv"
    )
    assert store.exists(KEY)
    assert store.get(KEY) == DATA
    store.put(KEY, b"new")
    assert store.get(KEY) == b"new"
    store.check()


def test_local_missing_key(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(StorageKeyNotFound) as info:
        store.get("practices/acme/nope.csv")
    assert info.value.key == "practices/acme/nope.csv"
    with pytest.raises(StorageKeyNotFound):
        store.presigned_url("practices/acme/nope.csv")
    # A key whose "directory" is actually a file is missing too, not an OS error.
    store.put("practices/acme/f", b"x")
    with pytest.raises(StorageKeyNotFound):
        store.get("practices/acme/f/g")


def test_local_traversal_rejected(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    for bad in ("../escape", "practices/../../escape", "/etc/passwd", "a\\..\\b", "a\x00b", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")
        with pytest.raises(ValueError):
            store.get(bad)
    assert not (tmp_path / "escape").exists()


def test_local_symlink_escape_rejected(tmp_path: Path) -> None:
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "objects").mkdir(parents=True)
    (root / "objects" / "link").symlink_to(outside)
    store = LocalStorage(root)
    with pytest.raises(ValueError):
        store.put("link/x", b"x")
    assert list(outside.iterdir()) == []


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    for i in range(3):
        store.put(KEY, DATA * (i + 1))
        store.put(f"practices/acme/other{i}.bin", b"\x00" * i)

    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    others = [f"other{i}.bin" for i in range(3)]
    assert files == sorted(["abc.csv", "abc.csv.json", *others, *(f"{name}.json" for name in others)])
    assert store.get(KEY) == DATA * 3


def test_local_url_signer_is_used(tmp_path: Path) -> None:
    calls: list[tuple[str, int, str | None]] = []

    def signer(key: str, expires_in: int, download_name: str | None) -> str:
        calls.append((key, expires_in, download_name))
        return f"https://app.example/files/{key}?sig=abc"

    store = LocalStorage(tmp_path, url_signer=signer)
    store.put(KEY, DATA)

    assert store.presigned_url(KEY, expires_in=60, download_name="abc.csv") == (
        f"https://app.example/files/{KEY}?sig=abc"
    )
    assert calls == [(KEY, 60, "abc.csv")]


def test_local_presigned_without_signer_is_file_url(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put(KEY, DATA)
    url = store.presigned_url(KEY)
    assert url.startswith("file://")
    with urllib.request.urlopen(url) as response:
        assert response.read() == DATA


def test_local_check(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        LocalStorage(tmp_path / "missing").check()
    LocalStorage(tmp_path).check()
    assert list(tmp_path.iterdir()) == []  # the write probe cleans up after itself
