"""Account lifecycle (HIPAA termination procedures and automatic logoff): which users a company admin manages,
deactivation and reactivation, password change and reset by mail, service accounts, API token minting, and the
audit of failed sign-ins. The API, the portal and the CLI are thin adapters over these functions.

Every credential of a user (portal sessions, login and API tokens) is revoked at once by deactivation, a password
change (all but the credential that made the change) and a reset (all). Each function writes its audit entry in the
caller's transaction; the caller commits."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from medbill.errors import Conflict, Forbidden, Invalid, NotFound
from tenants import audit
from tenants.auth import (
    NO_PASSWORD,
    check_password_policy,
    hash_password,
    issue_token,
    revoke_all,
    token_hash,
    verify_password,
)
from tenants.authz import Principal
from tenants.models import AgencyPractice, ApiToken, BillingCompany, Membership, PasswordReset, Practice, User

RESET_PREFIX = "pr_"
# Reset requests allowed per window: per account (so nobody floods a user's mailbox) and per client address.
RESET_REQUESTS_PER_ACCOUNT = 3
RESET_REQUESTS_PER_ADDRESS = 10
RESET_WINDOW_SECONDS = 3600
_RESET_KEY = "medbill:password-reset:"
SERVICE_ACCOUNT_ROLES = ("biller",)
FAILED_SIGN_IN_REASONS = ("unknown email", "wrong password", "account deactivated", "service account", "throttled")


# --- who a company admin manages ------------------------------------------------------------------------------------


def _managed_ids_clause(company_ids: list[int]):
    """Users of the companies: their billers and admins, the doctors of their practices, and the users of agencies
    attached to their practices."""
    practices = select(Practice.id).where(Practice.company_id.in_(company_ids))
    agencies = select(AgencyPractice.agency_id).where(AgencyPractice.practice_id.in_(practices))
    return select(Membership.user_id).where(
        or_(
            Membership.company_id.in_(company_ids),
            Membership.practice_id.in_(practices),
            Membership.agency_id.in_(agencies),
        )
    )


def managed_user_ids(session: Session, principal: Principal) -> list[int]:
    companies = principal.admin_company_ids
    if not companies:
        return []
    return list(session.scalars(_managed_ids_clause(companies).distinct()))


@dataclass(frozen=True)
class UserRow:
    id: int
    email: str
    full_name: str
    roles: list[str]
    is_active: bool
    is_service_account: bool
    last_login_at: datetime | None
    deactivated_at: datetime | None


def company_users(session: Session, principal: Principal) -> list[UserRow]:
    """The users a company admin manages, with their roles and status, by email."""
    companies = principal.admin_company_ids
    if not companies:
        raise Forbidden("only a company admin manages users")
    users = session.scalars(select(User).where(User.id.in_(_managed_ids_clause(companies))).order_by(User.email)).all()
    return [
        UserRow(
            id=u.id,
            email=u.email,
            full_name=u.full_name,
            roles=sorted({m.role for m in u.memberships}),
            is_active=u.is_active,
            is_service_account=u.is_service_account,
            last_login_at=u.last_login_at,
            deactivated_at=u.deactivated_at,
        )
        for u in users
    ]


def managed_user(session: Session, principal: Principal, user_id: int) -> User:
    """A user the admin manages; anyone else (another company's, unknown) is a 404 alike."""
    if not principal.admin_company_ids:
        raise Forbidden("only a company admin manages users")
    user = session.scalar(
        select(User).where(User.id == user_id, User.id.in_(_managed_ids_clause(principal.admin_company_ids)))
    )
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"user {email!r} not found")
    return user


# --- deactivation ---------------------------------------------------------------------------------------------------


def deactivate(session: Session, user: User, *, actor_id: int | None, ip: str | None = None, via: str) -> int:
    """Deactivate a user and revoke every session and token they hold; returns how many were revoked. Deactivating
    an inactive user again revokes whatever is left (nothing) and is audited as well."""
    if actor_id is not None and actor_id == user.id:
        raise Conflict("you cannot deactivate your own account")
    user.is_active = False
    user.deactivated_at = datetime.now(UTC)
    revoked = revoke_all(session, user.id)
    audit.record(
        session, user_id=actor_id, practice_id=None, object_type="user", object_id=user.id, action="deactivate",
        detail={"email": user.email, "credentials_revoked": revoked, "via": via}, ip=ip,
    )  # fmt: skip
    return revoked


def reactivate(session: Session, user: User, *, actor_id: int | None, ip: str | None = None, via: str) -> None:
    """Let a user sign in again. Sessions and tokens revoked at deactivation stay revoked."""
    user.is_active = True
    user.deactivated_at = None
    audit.record(
        session, user_id=actor_id, practice_id=None, object_type="user", object_id=user.id, action="reactivate",
        detail={"email": user.email, "via": via}, ip=ip,
    )  # fmt: skip


# --- passwords ------------------------------------------------------------------------------------------------------


def _set_password(user: User, new_password: str) -> None:
    check_password_policy(new_password, field="new_password")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = datetime.now(UTC)


def change_password(
    session: Session,
    user: User,
    current_password: str,
    new_password: str,
    *,
    keep_token_id: int | None,
    ip: str | None = None,
    via: str,
) -> int:
    """A signed-in user's own change: needs the current password. Every other session and token of the user is
    revoked; the one that made the change (`keep_token_id`) stays signed in. Returns how many were revoked."""
    if user.is_service_account:
        raise Forbidden("a service account has no password")
    if not verify_password(user.password_hash, current_password or ""):
        raise Invalid(
            "current_password: not your current password", errors={"current_password": ["not your current password"]}
        )
    if new_password == current_password:
        message = "must differ from the current one"
        raise Invalid(f"new_password: {message}", errors={"new_password": [message]})
    _set_password(user, new_password)
    revoked = revoke_all(session, user.id, keep_token_id=keep_token_id)
    audit.record(
        session, user_id=user.id, practice_id=None, object_type="user", object_id=user.id, action="password_change",
        detail={"credentials_revoked": revoked, "via": via}, ip=ip,
    )  # fmt: skip
    return revoked


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def reset_request_allowed(redis: Redis, email: str, address: str | None) -> bool:
    """Counts this reset request; False once the account or the address is past its limit in the window. The
    request is then answered as usual (the caller cannot tell), only no mail is sent."""
    keys = [
        (f"{_RESET_KEY}acct:{_digest(email.strip().lower())}", RESET_REQUESTS_PER_ACCOUNT),
        (f"{_RESET_KEY}addr:{_digest(address or 'unknown')}", RESET_REQUESTS_PER_ADDRESS),
    ]
    pipe = redis.pipeline(transaction=True)
    for key, _ in keys:
        # SET NX EX starts the window on the first request; INCR keeps the key's expiry.
        pipe.set(key, 0, ex=RESET_WINDOW_SECONDS, nx=True)
        pipe.incr(key)
    counts = pipe.execute()[1::2]
    return all(count <= limit for count, (_, limit) in zip(counts, keys, strict=True))


@dataclass(frozen=True)
class ResetLink:
    raw: str  # the secret of the link, shown only in the mail
    email: str
    full_name: str
    minutes: int  # how long the link works from the request


def reset_url(public_url: str, raw: str) -> str:
    """The address of a reset link (the portal's page; the API's confirm takes the same token)."""
    return f"{public_url}/password/reset?token={raw}"


def request_reset(session: Session, email: str, *, minutes: int, ip: str | None = None) -> int | None:
    """The id of a new reset request of an active user with a password, its link not made yet (the mail job makes
    it: ``mint_reset_link``); None for any other email (unknown, deactivated, a service account), which the caller
    answers exactly like a known one. An earlier unused link of the user stops working."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_active or user.is_service_account:
        return None
    now = datetime.now(UTC)
    for old in session.scalars(
        select(PasswordReset).where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
    ):
        old.used_at = now
    expires_at = now + timedelta(minutes=minutes)
    reset = PasswordReset(user_id=user.id, token_hash=None, expires_at=expires_at, ip=ip)
    session.add(reset)
    session.flush()
    audit.record(
        session, user_id=user.id, practice_id=None, object_type="password_reset", object_id=reset.id,
        action="request", detail={"expires_at": reset.expires_at.isoformat()}, ip=ip,
    )  # fmt: skip
    return reset.id


def mint_reset_link(session: Session, reset_id: int) -> ResetLink | None:
    """Make the link of a stored reset request, for its mail: a new secret whose hash replaces any earlier one (a
    retried mail job mints again, and only the link last mailed works). None when the request is no longer live:
    used, voided (a later request, a password change, a deactivation), expired, or its user may not reset any
    more. The row is locked until the caller commits, which it does before sending the mail."""
    reset = session.scalar(select(PasswordReset).where(PasswordReset.id == reset_id).with_for_update())
    if reset is None or reset.used_at is not None or reset.expires_at <= datetime.now(UTC):
        return None
    user = session.get(User, reset.user_id)
    if user is None or not user.is_active or user.is_service_account:
        return None
    raw = RESET_PREFIX + secrets.token_urlsafe(32)
    reset.token_hash = token_hash(raw)
    session.flush()
    minutes = max(1, round((reset.expires_at - reset.created_at).total_seconds() / 60))
    return ResetLink(raw=raw, email=user.email, full_name=user.full_name, minutes=minutes)


_INVALID_LINK = "this reset link is invalid, used or expired: ask for a new one"


def reset_is_live(session: Session, raw: str) -> bool:
    """Whether a link can still be used (the portal shows its form only then)."""
    return _live_reset(session, raw, lock=False) is not None


def _live_reset(session: Session, raw: str, *, lock: bool) -> PasswordReset | None:
    if not raw or not isinstance(raw, str) or not raw.startswith(RESET_PREFIX) or len(raw) > 100:
        return None
    stmt = select(PasswordReset).where(PasswordReset.token_hash == token_hash(raw))
    reset = session.scalar(stmt.with_for_update() if lock else stmt)
    if reset is None or reset.used_at is not None or reset.expires_at <= datetime.now(UTC):
        return None
    return reset


def consume_reset(session: Session, raw: str, new_password: str, *, ip: str | None = None, via: str) -> User:
    """Set a new password with a reset link: once (the row is locked, so two concurrent uses cannot both pass),
    before it expires. Every session and token of the user is revoked."""
    reset = _live_reset(session, raw, lock=True)
    user = session.get(User, reset.user_id) if reset is not None else None
    if reset is None or user is None or not user.is_active or user.is_service_account:
        raise Invalid(_INVALID_LINK, errors={"token": [_INVALID_LINK]})
    _set_password(user, new_password)
    reset.used_at = datetime.now(UTC)
    revoked = revoke_all(session, user.id)
    audit.record(
        session, user_id=user.id, practice_id=None, object_type="password_reset", object_id=reset.id, action="use",
        detail={"credentials_revoked": revoked, "via": via}, ip=ip,
    )  # fmt: skip
    return user


def reset_message(full_name: str, link: str, minutes: int) -> tuple[str, str]:
    """Subject and body of the reset mail."""
    body = (
        f"Hello {full_name},\n\n"
        "Someone (we hope you) asked to reset your medbill password. Open this link to choose a new one:\n\n"
        f"{link}\n\n"
        f"The link works once, for {minutes} minutes. Using it signs you out everywhere.\n"
        "If you did not ask for it, ignore this message: your password stays as it is.\n"
    )
    return "Reset your medbill password", body


# --- service accounts and API tokens --------------------------------------------------------------------------------


def _admin_company(session: Session, principal: Principal, company_id: int | None) -> BillingCompany:
    companies = principal.admin_company_ids
    if not companies:
        raise Forbidden("only a company admin manages service accounts")
    if company_id is None:
        if len(companies) > 1:
            raise Invalid("company_id: you administer several companies; name one", errors={"company_id": ["required"]})
        company_id = companies[0]
    if company_id not in companies:
        raise NotFound(f"company {company_id} not found")
    return session.get(BillingCompany, company_id)


def create_service_account(
    session: Session,
    principal: Principal,
    name: str,
    *,
    role: str = "biller",
    company_id: int | None = None,
    ip: str | None = None,
) -> User:
    """A user that holds only API tokens (no password sign-in, no reset), a member of the admin's company."""
    if role not in SERVICE_ACCOUNT_ROLES:
        message = f"one of {', '.join(SERVICE_ACCOUNT_ROLES)}"
        raise Invalid(f"role: {message}", errors={"role": [message]})
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("name: 1 to 100 characters", errors={"name": ["1 to 100 characters"]})
    company = _admin_company(session, principal, company_id)
    local = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "service"
    email = f"{local}.{secrets.token_hex(3)}@{company.slug}.service.invalid"
    user = User(email=email, full_name=name, password_hash=NO_PASSWORD, is_service_account=True)
    session.add(user)
    session.flush()
    session.add(Membership(user_id=user.id, role=role, company_id=company.id))
    session.flush()
    audit.record(
        session, user_id=principal.user_id, practice_id=None, object_type="user", object_id=user.id,
        action="create_service_account", detail={"email": email, "role": role, "company_id": company.id}, ip=ip,
    )  # fmt: skip
    return user


def token_holders(session: Session, principal: Principal) -> list[int]:
    """Whose API tokens the admin sees and revokes: their own and those of the users they manage."""
    return sorted({principal.user_id, *managed_user_ids(session, principal)})


def list_api_tokens(session: Session, principal: Principal) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.kind == "api", ApiToken.user_id.in_(token_holders(session, principal)))
            .order_by(ApiToken.id)
        )
    )


def mint_api_token(
    session: Session,
    principal: Principal,
    *,
    name: str,
    user_id: int | None,
    expires_in_days: int | None,
    default_days: int,
    max_days: int,
    ip: str | None = None,
) -> tuple[str, ApiToken]:
    """A long-lived API token for the caller or for a service account of a company the caller administers —
    nobody else (a person's token would let its minter act as them). It expires after `default_days` unless asked
    otherwise, never later than `max_days`; the creator is recorded."""
    if expires_in_days is None:
        expires_in_days = default_days
    if not 1 <= expires_in_days <= max_days:
        message = f"between 1 and {max_days} days"
        raise Invalid(f"expires_in_days: {message}", errors={"expires_in_days": [message]})
    target_id = user_id or principal.user_id
    if target_id != principal.user_id:
        target = session.get(User, target_id)
        if target is None or target_id not in managed_user_ids(session, principal):
            raise NotFound(f"user {target_id} not found")
        if not target.is_service_account:
            raise Forbidden("API tokens are minted only for yourself or for a service account of your company")
    user = session.get(User, target_id)
    creator = session.get(User, principal.user_id)
    raw, token = issue_token(
        session, user, kind="api", ttl_seconds=expires_in_days * 86400, name=name, created_by=creator
    )
    audit.record(
        session, user_id=principal.user_id, practice_id=None, object_type="api_token", object_id=token.id,
        action="create", detail={"user_id": user.id, "name": name, "expires_at": token.expires_at.isoformat()}, ip=ip,
    )  # fmt: skip
    return raw, token


# --- failed sign-ins ------------------------------------------------------------------------------------------------


def record_failed_sign_in(
    session: Session, *, email: str, reason: str, user_id: int | None, ip: str | None, channel: str
) -> None:
    """Audit a refused sign-in: the email tried (never the password), why, where from, API or portal. The entry
    names the account when the email is one, so its company can review attempts on it."""
    audit.record(
        session, user_id=user_id, practice_id=None, object_type="sign_in", object_id=None, action="failed",
        detail={"email": (email or "").strip().lower()[:254], "reason": reason, "channel": channel}, ip=ip,
    )  # fmt: skip


def start_password_reset(session: Session, dispatcher, *, email: str, ip: str | None, minutes: int) -> None:
    """The one reset request flow (API and portal): counted against its limits, a request stored for a user that
    may reset, and its mail job (which makes the link) queued after the caller's commit. Nothing tells the caller
    which of these happened."""
    if not reset_request_allowed(dispatcher.redis, email, ip):
        audit.record(
            session, user_id=None, practice_id=None, object_type="password_reset", object_id=None,
            action="throttled", detail={"email": (email or "").strip().lower()[:254]}, ip=ip,
        )  # fmt: skip
        return
    reset_id = request_reset(session, email, minutes=minutes, ip=ip)
    if reset_id is None:
        return
    # Only the request's id goes to the job: RQ keeps a job's arguments in Redis in clear, so the link (and the
    # address) stay out of them; the job mints the link (mint_reset_link) and mails it.
    dispatcher.enqueue_after_commit(session, "default", "jobs.accounts.send_password_reset", reset_id)
