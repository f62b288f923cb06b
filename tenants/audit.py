"""The audit trail: one append-only entry for every write and every read of patient data."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tenants.models import AuditEntry


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
