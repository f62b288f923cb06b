"""The audit trail: one append-only entry for every write and every read of patient data.

Every entry written while a web request is served carries the request's client address: the app sets it once per
request (`set_client_address`, from medbill/app.py, after ProxyFix) and `record` uses it whenever its caller gives no
ip, so no caller has to pass it. Jobs set none: their entries name the user who started them and no address.
Configuration changes are recorded with their values, secrets masked (`mask_secrets`)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from tenants.models import AuditEntry

if TYPE_CHECKING:
    from tenants.authz import PracticeAccess

# Keys whose values are secrets wherever they appear in a configuration value (transport settings and the like).
SECRET_KEYS = frozenset({"password", "private_key"})
MASK = "***"

_client_ip: ContextVar[str | None] = ContextVar("medbill_audit_client_ip", default=None)


def set_client_address(ip: str | None) -> object:
    """From now on, entries recorded without an explicit ip carry this one (the request's client address). Pass the
    result to `reset_client_address` when the request ends, so the next request on this thread starts without."""
    return _client_ip.set(ip)


def reset_client_address(token: object) -> None:
    _client_ip.reset(token)  # type: ignore[arg-type]


def current_client_address() -> str | None:
    return _client_ip.get()


def mask_secrets(value: Any) -> Any:
    """A configuration value as it may be shown or recorded: secret values replaced by '***' at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if k in SECRET_KEYS and v not in (None, "") else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


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
    """Written in the caller's transaction, so an action and its audit entry commit (or vanish) together. Without
    an ip, the entry carries the client address of the request being served (none in jobs)."""
    session.execute(
        insert(AuditEntry).values(
            user_id=user_id,
            practice_id=practice_id,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            action=action,
            detail=detail or {},
            ip=ip if ip is not None else _client_ip.get(),
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


def record_change(
    session: Session,
    access: PracticeAccess,
    object_type: str,
    object_id: str | int | None,
    before: dict | None,
    after: dict,
    action: str = "update",
) -> None:
    """A configuration change with its values: before and after (secrets masked), and which fields changed."""
    before = before or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    detail = {
        "before": _jsonable(mask_secrets(before)),
        "after": _jsonable(mask_secrets(after)),
        "changed": changed,
    }
    record_access(session, access, object_type, object_id, action, detail)


def _jsonable(value: Any) -> Any:
    """Values as JSON can hold them: dates, Decimals and the like as their text (amounts stay exact)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
