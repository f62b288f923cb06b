"""Jobs that keep the shared registry tidy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from jobs.runtime import runtime
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
