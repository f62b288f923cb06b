"""Registry services: billing companies, practices (provisioned with their schema in one transaction), users,
memberships and collection agencies."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from medbill.errors import Conflict, Invalid, NotFound
from tenants.auth import check_password_policy, hash_password
from tenants.db import schema_for, validate_slug
from tenants.migrate import create_tenant_schema
from tenants.models import ROLES, AgencyPractice, BillingCompany, CollectionAgency, Membership, Practice, User


def _slug(slug: str) -> str:
    try:
        return validate_slug(slug)
    except ValueError as exc:
        raise Invalid(str(exc), errors={"slug": [str(exc)]}) from exc


def create_company(session: Session, slug: str, name: str) -> BillingCompany:
    if session.scalar(select(BillingCompany).where(BillingCompany.slug == _slug(slug))):
        raise Conflict(f"billing company {slug!r} already exists")
    company = BillingCompany(slug=slug, name=name)
    session.add(company)
    session.flush()
    return company


def get_company(session: Session, slug: str) -> BillingCompany:
    company = session.scalar(select(BillingCompany).where(BillingCompany.slug == slug))
    if company is None:
        raise NotFound(f"billing company {slug!r} not found")
    return company


def create_practice(engine: Engine, company_slug: str, slug: str, name: str, settings: dict | None = None) -> Practice:
    """Registry row, schema, tables and version stamp in one transaction: a practice exists at head or not at all."""
    _slug(slug)
    with engine.begin() as conn:
        with Session(bind=conn, expire_on_commit=False) as session:
            company = get_company(session, company_slug)
            if session.scalar(select(Practice.id).where(Practice.slug == slug)) is not None:
                raise Conflict(f"practice {slug!r} already exists")
            practice = Practice(
                company_id=company.id,
                slug=slug,
                name=name,
                schema_name=schema_for(slug),
                settings=settings or {},
            )
            session.add(practice)
            session.flush()
            create_tenant_schema(conn, slug)
            session.expunge(practice)
    return practice


def create_user(session: Session, email: str, full_name: str, password: str) -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise Invalid("not an email address", errors={"email": ["not an email address"]})
    check_password_policy(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"user {email!r} already exists")
    user = User(email=email, full_name=full_name, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def grant(
    session: Session,
    user: User,
    role: str,
    *,
    company: BillingCompany | None = None,
    practice: Practice | None = None,
    agency: CollectionAgency | None = None,
) -> Membership:
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}", errors={"role": [f"one of {', '.join(ROLES)}"]})
    expected = {"company_admin": company, "biller": company, "doctor": practice, "agency": agency}[role]
    if expected is None:
        scope = {"company_admin": "company", "biller": "company", "doctor": "practice", "agency": "agency"}[role]
        raise Invalid(f"role {role} needs a {scope}", errors={scope: [f"required for role {role}"]})
    membership = Membership(
        user_id=user.id,
        role=role,
        company_id=company.id if role in ("company_admin", "biller") else None,
        practice_id=practice.id if role == "doctor" else None,
        agency_id=agency.id if role == "agency" else None,
    )
    session.add(membership)
    session.flush()
    return membership


def create_agency(session: Session, slug: str, name: str, settings: dict | None = None) -> CollectionAgency:
    if session.scalar(select(CollectionAgency.id).where(CollectionAgency.slug == _slug(slug))) is not None:
        raise Conflict(f"collection agency {slug!r} already exists")
    agency = CollectionAgency(slug=slug, name=name, settings=settings or {})
    session.add(agency)
    session.flush()
    return agency


def link_agency(session: Session, agency: CollectionAgency, practice: Practice) -> None:
    session.merge(AgencyPractice(agency_id=agency.id, practice_id=practice.id))
    session.flush()


def get_practice(session: Session, slug: str) -> Practice:
    practice = session.scalar(select(Practice).where(Practice.slug == slug))
    if practice is None:
        raise NotFound(f"practice {slug!r} not found")
    return practice


def practice_doctors(session: Session, practice_id: int) -> list[User]:
    """The active users who hold the doctor role in the practice (the readers of its monthly summary)."""
    return list(
        session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.role == "doctor", Membership.practice_id == practice_id, User.is_active.is_(True))
            .order_by(User.email)
        )
    )
