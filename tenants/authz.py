"""Authorisation, in one place: which roles may do what, which practices a caller sees, and the resolver that
turns (caller, practice slug, permission) into access or a 404/403. Another tenant's practice is a 404, exactly
like one that does not exist."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from medbill.errors import Forbidden, NotFound
from tenants.db import SLUG_RE
from tenants.models import AgencyPractice, Membership, Practice, User

PERMISSIONS: dict[str, frozenset[str]] = {
    "company_admin": frozenset(
        {
            "practice:read",
            "patients:read",
            "patients:write",
            "claims:read",
            "claims:write",
            "setup:write",
            "edi:write",
            "reports:read",
            "documents:read",
            "tokens:admin",
            # The company's audit trail (tenants.audit_view): who read which patient, when.
            "audit:read",
            # Deactivating and reactivating the company's users, creating its service accounts (tenants.accounts).
            "users:admin",
            "payers:admin",
            "denials:write",
            "payments:write",
            "statements:write",
            "collections:write",
            "exports:read",
            # Writing off what is owed is a decision about money, kept from the everyday biller role.
            "ledger:write_off",
            # Where the company's files go and with which credentials (billing.connections, tenants.secrets): a
            # biller who could point a transport anywhere could send the company's claims and files anywhere.
            "connections:write",
        }
    ),
    "biller": frozenset(
        {
            "practice:read",
            "patients:read",
            "patients:write",
            "claims:read",
            "claims:write",
            "setup:write",
            "edi:write",
            "reports:read",
            "documents:read",
            "denials:write",
            "payments:write",
            "statements:write",
            "collections:write",
            "exports:read",
        }
    ),
    # A client doctor reads reports and documents of their own practice; never writes, never browses patients.
    "doctor": frozenset({"practice:read", "reports:read", "documents:read"}),
    # An agency reads only the accounts placed with it (see PracticeAccess.placed_only).
    "agency": frozenset({"practice:read", "patients:read", "exports:read", "agency:report"}),
}


@dataclass(frozen=True)
class Principal:
    user_id: int
    email: str
    full_name: str
    company_roles: dict[int, str]
    practice_roles: dict[int, str]
    agency_ids: frozenset[int]
    token_id: int | None = None

    @property
    def roles(self) -> set[str]:
        roles = set(self.company_roles.values()) | set(self.practice_roles.values())
        if self.agency_ids:
            roles.add("agency")
        return roles

    @property
    def admin_company_ids(self) -> list[int]:
        return [cid for cid, role in self.company_roles.items() if role == "company_admin"]


@dataclass(frozen=True)
class PracticeAccess:
    """What a caller may do in one practice. Services take it to scope their queries."""

    principal: Principal
    practice_id: int
    slug: str
    name: str
    company_id: int
    roles: frozenset[str]
    permissions: frozenset[str]

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def placed_only(self) -> bool:
        """True when patient data is visible only through this caller's agency placements."""
        return self.roles == {"agency"}

    @property
    def agency_ids(self) -> frozenset[int]:
        return self.principal.agency_ids


def load_principal(user: User, token_id: int | None = None) -> Principal:
    company_roles: dict[int, str] = {}
    practice_roles: dict[int, str] = {}
    agency_ids: set[int] = set()
    for m in user.memberships:
        if m.company_id is not None:
            # An admin membership outranks a biller one on the same company.
            if company_roles.get(m.company_id) != "company_admin":
                company_roles[m.company_id] = m.role
        elif m.practice_id is not None:
            practice_roles[m.practice_id] = m.role
        elif m.agency_id is not None:
            agency_ids.add(m.agency_id)
    return Principal(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        company_roles=company_roles,
        practice_roles=practice_roles,
        agency_ids=frozenset(agency_ids),
        token_id=token_id,
    )


def _visibility_clause(principal: Principal):
    clauses = []
    if principal.company_roles:
        clauses.append(Practice.company_id.in_(list(principal.company_roles)))
    if principal.practice_roles:
        clauses.append(Practice.id.in_(list(principal.practice_roles)))
    if principal.agency_ids:
        clauses.append(
            Practice.id.in_(
                select(AgencyPractice.practice_id).where(AgencyPractice.agency_id.in_(list(principal.agency_ids)))
            )
        )
    return or_(*clauses) if clauses else None


def visible_practices(session: Session, principal: Principal) -> list[Practice]:
    clause = _visibility_clause(principal)
    if clause is None:
        return []
    return list(
        session.scalars(
            select(Practice).where(clause, Practice.status != "archived").order_by(Practice.name, Practice.id)
        )
    )


def _roles_on(session: Session, principal: Principal, practice: Practice) -> set[str]:
    roles: set[str] = set()
    if practice.company_id in principal.company_roles:
        roles.add(principal.company_roles[practice.company_id])
    if practice.id in principal.practice_roles:
        roles.add(principal.practice_roles[practice.id])
    if principal.agency_ids:
        linked = session.scalar(
            select(AgencyPractice.agency_id).where(
                AgencyPractice.practice_id == practice.id,
                AgencyPractice.agency_id.in_(list(principal.agency_ids)),
            )
        )
        if linked is not None:
            roles.add("agency")
    return roles


def resolve_practice(session: Session, principal: Principal, slug: str, permission: str) -> PracticeAccess:
    """The one gate to practice-scoped data. Unknown and foreign practices are indistinguishable (404)."""
    not_found = NotFound(f"practice {slug!r} not found")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise not_found
    practice = session.scalar(select(Practice).where(Practice.slug == slug, Practice.status != "archived"))
    if practice is None:
        raise not_found
    roles = _roles_on(session, principal, practice)
    if not roles:
        raise not_found
    permissions = frozenset().union(*(PERMISSIONS[r] for r in roles))
    if permission not in permissions:
        raise Forbidden(f"your role ({', '.join(sorted(roles))}) may not do '{permission}' in this practice")
    if practice.status == "suspended" and permission.endswith(":write"):
        raise Forbidden(f"practice {slug!r} is suspended: read-only")
    return PracticeAccess(
        principal=principal,
        practice_id=practice.id,
        slug=practice.slug,
        name=practice.name,
        company_id=practice.company_id,
        roles=frozenset(roles),
        permissions=permissions,
    )


def system_access(session: Session, slug: str, *, actor: str = "system") -> PracticeAccess:
    """Access for work no person started (seeding, scheduled jobs): every permission, audited with no user."""
    practice = session.scalar(select(Practice).where(Practice.slug == slug))
    if practice is None:
        raise NotFound(f"practice {slug!r} not found")
    principal = Principal(
        user_id=None,  # type: ignore[arg-type]  # audit entries of system work carry no user
        email=actor,
        full_name=actor,
        company_roles={practice.company_id: "company_admin"},
        practice_roles={},
        agency_ids=frozenset(),
    )
    return PracticeAccess(
        principal=principal,
        practice_id=practice.id,
        slug=practice.slug,
        name=practice.name,
        company_id=practice.company_id,
        roles=frozenset({"company_admin"}),
        permissions=PERMISSIONS["company_admin"],
    )


def require_global(principal: Principal, permission: str) -> None:
    """Permissions not tied to one practice (e.g. token administration) need the role somewhere."""
    if not any(permission in PERMISSIONS[r] for r in principal.roles):
        raise Forbidden(f"your role may not do '{permission}'")


def memberships_of(session: Session, user_id: int) -> list[Membership]:
    return list(session.scalars(select(Membership).where(Membership.user_id == user_id)))
