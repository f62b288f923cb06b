"""The audit trail: one append-only entry for every write and every read of patient data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tenants.models import AuditEntry

if TYPE_CHECKING:
    from tenants.authz import PracticeAccess


def record(
    session: Session,
    *,
    user_id: int | None,
    practice_id: int | None,
    object_type: str,
    object_id: str | int | None,
    action: str,
    detail: dict | None = None,
    ip: str | None = None,
) -> None:
    """Written in the caller's transaction, so an action and its audit entry commit (or vanish) together."""
    session.execute(
        insert(AuditEntry).values(
            user_id=user_id,
            practice_id=practice_id,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            action=action,
            detail=detail or {},
            ip=ip,
        )
    )


def record_access(
    session: Session,
    access: PracticeAccess,
    object_type: str,
    object_id: str | int | None,
    action: str,
    detail: dict | None = None,
    ip: str | None = None,
) -> None:
    """`record` for the caller of a practice-scoped request or job: user and practice come from its access."""
    record(
        session,
        user_id=access.user_id,
        practice_id=access.practice_id,
        object_type=object_type,
        object_id=object_id,
        action=action,
        detail=detail,
        ip=ip,
    )
