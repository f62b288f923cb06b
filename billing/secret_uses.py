"""Which of a billing company's connections name one of its stored secrets, and the deletion of a secret that only
goes through while none does.

A connection names a secret in ``password_secret`` / ``private_key_secret`` (billing.connections): a practice's
clearinghouse transport (``billing_identity.transport``) and a practice's delivery to a collection agency
(``agency_terms.sftp``). Deleting a secret still named there would break that connection silently at its next use,
so the deletion is refused (409) naming every practice and connection that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medbill.errors import Conflict
from tenants import secrets
from tenants.db import schema_for
from tenants.models import CollectionAgency, Practice

__all__ = ["SecretUse", "delete_unused_secret", "secret_uses"]

# The secret-naming keys of a connection's settings (billing.connections).
_NAMING_KEYS = ("password_secret", "private_key_secret")


@dataclass(frozen=True)
class SecretUse:
    """One connection naming the secret: the practice it belongs to and what it is."""

    practice_slug: str
    practice_name: str
    connection: str  # "clearinghouse transport" or "delivery to agency <name>"

    def describe(self) -> str:
        return f"{self.connection} of practice {self.practice_name} ({self.practice_slug})"


def _names(column: str) -> str:
    return " OR ".join(f"{column}->>'{key}' = :name" for key in _NAMING_KEYS)


def secret_uses(session: Session, company_id: int, name: str) -> list[SecretUse]:
    """Every connection of the company's practices that names the secret ``name``, practice by practice."""
    practices = session.execute(
        select(Practice.slug, Practice.name)
        .where(Practice.company_id == company_id)
        # A practice whose schema is not there (half created, or dropped) has no connections to look at.
        .where(text("EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = shared.practices.schema_name)"))
        .order_by(Practice.slug)
    ).all()
    found: list[tuple[str, str, int | None]] = []  # (slug, practice name, agency id or None: the clearinghouse)
    for slug, practice_name in practices:
        schema = schema_for(slug)  # from a validated slug only
        rows = session.execute(
            text(
                f'SELECT NULL::bigint AS agency_id FROM "{schema}".billing_identity WHERE {_names("transport")} '
                f'UNION ALL SELECT agency_id FROM "{schema}".agency_terms WHERE {_names("sftp")} '
                "ORDER BY agency_id NULLS FIRST"
            ),
            {"name": name},
        ).all()
        found.extend((slug, practice_name, agency_id) for (agency_id,) in rows)
    wanted = {agency_id for _, _, agency_id in found if agency_id is not None}
    agencies: dict[int, str] = {}
    if wanted:
        query = select(CollectionAgency.id, CollectionAgency.name).where(CollectionAgency.id.in_(wanted))
        agencies = {row.id: row.name for row in session.execute(query)}
    uses = [
        SecretUse(
            slug,
            practice_name,
            "clearinghouse transport"
            if agency_id is None
            else f"delivery to agency {agencies.get(agency_id, f'#{agency_id}')}",
        )
        for slug, practice_name, agency_id in found
    ]
    return uses


def delete_unused_secret(session: Session, company_id: int, name: str, *, user_id: int | None) -> None:
    """Delete the company's secret ``name`` (audited), or raise Conflict naming the connections that still use it
    (nothing deleted). NotFound when there is no such secret. The caller commits.

    The secret's row is locked first: a connection being saved holds a share lock on the row it names
    (billing.connections), so a save and this deletion cannot both go through unseen by each other."""
    secrets.lock_secret(session, company_id, name)
    uses = secret_uses(session, company_id, name)
    if uses:
        described = [use.describe() for use in uses]
        raise Conflict(
            f"the secret {name!r} is in use by: {'; '.join(described)}. Point those at another secret (or remove "
            "them) before deleting it",
            errors={"used_by": described},
            code="secret_in_use",
        )
    secrets.delete_secret(session, company_id, name, user_id=user_id)
