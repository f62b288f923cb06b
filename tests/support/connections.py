"""Test helpers for outbound connections: a company's stored secret, a company admin's access to a practice, and
where the directory transport of a company writes (under the tests' MEDBILL_DIRECTORY_TRANSPORT_ROOT)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from billing import connections
from tenants import secrets
from tenants.authz import load_principal, resolve_practice
from tenants.models import BillingCompany, User


def company_id(services, company_slug: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(BillingCompany.id).where(BillingCompany.slug == company_slug))


def store_secret(services, company_slug: str, name: str, value: str) -> None:
    """Put a secret into the company's store, as `medbill secrets set` would."""
    box = secrets.SecretBox.from_settings(services.settings)
    with services.db.shared_session() as s:
        secrets.put_secret(s, box, company_id(services, company_slug), name, value, user_id=None)
        s.commit()


def admin_access(services, factory, practice_slug: str, company_slug: str):
    """A new company admin of the practice's company, as the PracticeAccess services take."""
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == company_slug))
    email = factory.user("company_admin", company=company)
    with services.db.shared_session() as s:
        user = s.scalar(select(User).where(User.email == email))
        return resolve_practice(s, load_principal(user), practice_slug, "setup:write")


def policy(services) -> connections.OutboundPolicy:
    return connections.OutboundPolicy.from_settings(services.settings)


def company_drop(services, company_slug: str, subdir: str | None = None) -> Path:
    """The directory a company's directory transport uses."""
    root = services.settings.directory_transport_root.resolve() / company_slug
    return root / subdir if subdir else root
