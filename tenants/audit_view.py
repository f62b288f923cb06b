"""A company admin's view of the audit trail: who did what, and who read which patient, when, across the company's
practices and users; one read (`company_audit`) behind the API (`GET /api/v1/company/audit`, JSON or CSV) and the
portal's audit page, and one CSV table (`audit_csv_table`).

Only entries of the admin's own companies are ever read: entries about one of their practices, and entries about no
practice (sign-ins, tokens, the payer list...) by one of their users. Reading the trail is itself audited."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from medbill.errors import Forbidden, Invalid, NotFound
from tenants import audit
from tenants.authz import Principal
from tenants.models import AuditEntry, Membership, Practice, User

# The most rows one CSV export holds (the export says so in its last row when there are more).
MAX_EXPORT_ROWS = 50_000
CSV_COLUMNS = ("at", "user_email", "user_name", "practice", "action", "object_type", "object_id", "patient_id", "ip",
               "detail")  # fmt: skip


@dataclass(frozen=True)
class AuditFilters:
    """What to show; every field optional. `practice` is a slug, `user` an email; dates are inclusive (UTC)."""

    practice: str | None = None
    user: str | None = None
    object_type: str | None = None
    action: str | None = None
    start: date | None = None
    end: date | None = None
    patient_id: int | None = None

    def as_detail(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    user_id: int | None
    user_email: str | None
    user_name: str | None
    practice: str | None
    practice_name: str | None
    object_type: str
    object_id: str | None
    action: str
    patient_id: str | None
    ip: str | None
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditRow]
    page: int
    per_page: int
    total: int


def _company_ids(principal: Principal) -> list[int]:
    companies = principal.admin_company_ids
    if not companies:
        raise Forbidden("only a company admin may read the company's audit trail")
    return companies


def _conditions(session: Session, companies: list[int], filters: AuditFilters) -> list[ColumnElement[bool]]:
    practices = select(Practice.id).where(Practice.company_id.in_(companies))
    company_users = select(Membership.user_id).where(
        or_(Membership.company_id.in_(companies), Membership.practice_id.in_(practices))
    )
    conditions: list[ColumnElement[bool]] = [
        or_(
            AuditEntry.practice_id.in_(practices),
            and_(AuditEntry.practice_id.is_(None), AuditEntry.user_id.in_(company_users)),
        )
    ]
    if filters.start and filters.end and filters.start > filters.end:
        raise Invalid("start is after end", errors={"start": ["must not be after end"]})
    if filters.practice:
        practice_id = session.scalar(
            select(Practice.id).where(Practice.slug == filters.practice, Practice.company_id.in_(companies))
        )
        if practice_id is None:  # another company's practice is as unknown as one that does not exist
            raise NotFound(f"practice {filters.practice!r} not found", errors={"practice": ["not found"]})
        conditions.append(AuditEntry.practice_id == practice_id)
    if filters.user:
        conditions.append(AuditEntry.user_id.in_(select(User.id).where(User.email == filters.user.strip().lower())))
    if filters.object_type:
        conditions.append(AuditEntry.object_type == filters.object_type)
    if filters.action:
        conditions.append(AuditEntry.action == filters.action)
    if filters.start:
        conditions.append(AuditEntry.at >= datetime.combine(filters.start, time(), UTC))
    if filters.end:
        conditions.append(AuditEntry.at < datetime.combine(filters.end + timedelta(days=1), time(), UTC))
    if filters.patient_id is not None:
        pid = str(filters.patient_id)
        conditions.append(
            or_(
                and_(AuditEntry.object_type == "patient", AuditEntry.object_id == pid),
                AuditEntry.detail["patient_id"].astext == pid,
            )
        )
    return conditions


def _rows(session: Session, conditions, *, limit: int, offset: int) -> list[AuditRow]:
    query = (
        select(AuditEntry, User.email, User.full_name, Practice.slug, Practice.name)
        .outerjoin(User, User.id == AuditEntry.user_id)
        .outerjoin(Practice, Practice.id == AuditEntry.practice_id)
        .where(*conditions)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    out = []
    for entry, email, name, slug, practice_name in session.execute(query):
        detail = entry.detail or {}
        patient = entry.object_id if entry.object_type == "patient" else detail.get("patient_id")
        out.append(
            AuditRow(
                id=entry.id, at=entry.at, user_id=entry.user_id, user_email=email, user_name=name, practice=slug,
                practice_name=practice_name, object_type=entry.object_type, object_id=entry.object_id,
                action=entry.action, patient_id=None if patient is None else str(patient), ip=entry.ip,
                detail=detail,
            )
        )  # fmt: skip
    return out


def company_audit(
    session: Session, principal: Principal, filters: AuditFilters, *, page: int = 1, per_page: int = 50,
    export: bool = False,
) -> AuditPage:  # fmt: skip
    """The entries of the caller's companies matching `filters`, newest first: one page, or with `export` the first
    MAX_EXPORT_ROWS. Forbidden unless the caller is a company admin. The read is audited in the caller's transaction
    (the caller commits)."""
    companies = _company_ids(principal)
    conditions = _conditions(session, companies, filters)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    if export:
        items = _rows(session, conditions, limit=MAX_EXPORT_ROWS, offset=0)
    else:
        items = _rows(session, conditions, limit=per_page, offset=(page - 1) * per_page)
    audit.record(
        session,
        user_id=principal.user_id,
        practice_id=None,
        object_type="audit_log",
        object_id=None,
        action="export" if export else "read",
        detail={"filters": filters.as_detail(), "companies": companies, "rows": len(items), "total": total},
    )
    return AuditPage(items=items, page=1 if export else page, per_page=len(items) if export else per_page, total=total)


def audit_csv_table(page: AuditPage) -> tuple[list[str], list[list]]:
    """The CSV table of an export (written by the one CSV writer, which neutralises formula cells)."""
    rows = [
        [
            row.at.astimezone(UTC).isoformat(timespec="seconds"), row.user_email or "", row.user_name or "",
            row.practice or "", row.action, row.object_type, row.object_id or "", row.patient_id or "", row.ip or "",
            json.dumps(row.detail, sort_keys=True, default=str),
        ]
        for row in page.items
    ]  # fmt: skip
    if page.total > len(page.items):
        rows.append([f"{page.total - len(page.items)} older entries not exported: narrow the dates"] + [""] * 9)
    return list(CSV_COLUMNS), rows
