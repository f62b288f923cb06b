"""Bulk patient registration from a CSV file (an export of the practice's own system): registered once per file
content, validated whole before anything is written, and safe to run again (existing account numbers are kept)."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing.models import Patient, PatientImport
from billing.patients import EDITABLE, REQUIRED, normalise
from medbill.errors import Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess

MAX_ROWS = 50_000


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register_import(
    session: Session, access: PracticeAccess, *, filename: str, data: bytes, storage_key: str
) -> tuple[PatientImport, bool]:
    """Returns (import, created). The same file uploaded again returns the first import instead of a second one."""
    digest = sha256_of(data)
    existing = session.scalar(select(PatientImport).where(PatientImport.file_sha256 == digest))
    if existing is not None:
        return existing, False
    stmt = (
        insert(PatientImport)
        .values(file_sha256=digest, filename=filename[:255], storage_key=storage_key, created_by_user_id=access.user_id)
        .on_conflict_do_nothing(index_elements=["file_sha256"])
        .returning(PatientImport.id)
    )
    new_id = session.scalar(stmt)
    if new_id is None:  # a concurrent upload of the same file won the race
        return session.scalar(select(PatientImport).where(PatientImport.file_sha256 == digest)), False
    audit.record(
        session,
        user_id=access.user_id,
        practice_id=access.practice_id,
        object_type="patient_import",
        object_id=new_id,
        action="create",
        detail={"filename": filename, "sha256": digest},
    )
    return session.get(PatientImport, new_id), True


def get_import(session: Session, import_id: int) -> PatientImport:
    imp = session.get(PatientImport, import_id)
    if imp is None:
        raise NotFound(f"patient import {import_id} not found")
    return imp


def attach_job(session: Session, import_id: int, job_id: str) -> None:
    get_import(session, import_id).job_id = job_id


def summary(imp: PatientImport) -> dict:
    return {
        "import_id": imp.id,
        "status": imp.status,
        "rows_total": imp.rows_total,
        "rows_created": imp.rows_created,
        "rows_existing": imp.rows_existing,
        "errors": imp.errors,
    }


def parse_rows(data: bytes) -> list[dict]:
    """The CSV's rows as normalised patient dicts; Invalid lists every problem by row and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("file is not UTF-8 text", errors={"file": [f"byte {exc.start}: not UTF-8"]}) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in EDITABLE]
    if missing or unknown:
        errors = {}
        if missing:
            errors["header"] = [f"missing column(s): {', '.join(missing)}"]
        if unknown:
            errors.setdefault("header", []).append(f"unknown column(s): {', '.join(unknown)}")
        raise Invalid("CSV header is not valid", errors=errors)
    reader.fieldnames = header
    rows: list[dict] = []
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if len(rows) >= MAX_ROWS:
            raise Invalid(f"too many rows: at most {MAX_ROWS} per file", errors={"file": [f"row {line}: over limit"]})
        if None in row:
            errors[f"row {line}"] = ["more fields than columns in the header"]
            continue
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        try:
            clean = normalise(values)
        except Invalid as exc:
            errors[f"row {line}"] = [f"{field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
            continue
        account = clean["account_number"]
        if account in seen:
            errors[f"row {line}"] = [f"account_number: {account!r} repeats row {seen[account]}"]
            continue
        seen[account] = line
        rows.append(clean)
    if errors:
        raise Invalid(f"{len(errors)} row(s) are not valid; nothing was imported", errors=errors)
    return rows


def run_import(session: Session, import_id: int, data: bytes, *, practice_id: int | None = None) -> dict:
    """Idempotent: an import already finished returns its summary unchanged. All rows or none are written."""
    imp = session.scalar(select(PatientImport).where(PatientImport.id == import_id).with_for_update())
    if imp is None:
        raise NotFound(f"patient import {import_id} not found")
    if imp.status != "queued":
        return summary(imp) | {"already_done": True}
    if sha256_of(data) != imp.file_sha256:
        raise Invalid("stored file does not match the uploaded one", errors={"file": ["sha256 mismatch"]})
    try:
        rows = parse_rows(data)
    except Invalid as exc:
        imp.status, imp.errors = "failed", {"message": [exc.message], **exc.errors}
        imp.finished_at = datetime.now(UTC)
        return summary(imp)
    created = 0
    for row in rows:
        new_id = session.scalar(
            insert(Patient)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["account_number"])
            .returning(Patient.id)
        )
        created += new_id is not None
    imp.status = "done"
    imp.rows_total, imp.rows_created, imp.rows_existing = len(rows), created, len(rows) - created
    imp.finished_at = datetime.now(UTC)
    audit.record(
        session,
        user_id=imp.created_by_user_id,
        practice_id=practice_id,
        object_type="patient_import",
        object_id=imp.id,
        action="run",
        detail={"created": created, "existing": len(rows) - created},
    )
    return summary(imp)
