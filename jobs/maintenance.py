"""Jobs that keep the shared registry tidy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from jobs.runtime import runtime
from tenants import file_links
from tenants.models import ApiToken


def purge_expired_tokens(grace_days: int = 7) -> int:
    """Expired short-lived tokens are useless after a grace period; revoked API tokens stay for the audit trail."""
    cutoff = datetime.now(UTC) - timedelta(days=grace_days)
    with runtime().db.shared_session() as session:
        result = session.execute(
            delete(ApiToken).where(ApiToken.kind.in_(("access", "portal")), ApiToken.expires_at < cutoff)
        )
        session.commit()
    return result.rowcount


def purge_expired_file_links(grace_hours: int = 24) -> int:
    """File link grants that expired more than `grace_hours` ago open nothing; each use stays in the audit log."""
    with runtime().db.shared_session() as session:
        count = file_links.purge_expired(session, older_than=timedelta(hours=grace_hours))
        session.commit()
    return count
