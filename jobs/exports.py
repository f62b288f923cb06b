"""Jobs (`exports` queue): write each agency's file of newly placed accounts for a practice (billing.collections
does the work and records each placement once, so a retried job writes nothing twice), then deliver it over SFTP
when the practice configured that for the agency. The file is in storage under the agency's prefix and listed in
the agency's portal and API whether or not SFTP delivery is set up or succeeds."""

from __future__ import annotations

import logging

from sqlalchemy import select

from billing import collections, connections
from integrations.clearinghouse import TransportError
from jobs.runtime import final_on_domain_error, runtime
from tenants.models import AgencyPractice, Practice

log = logging.getLogger("medbill.jobs.exports")


def _deliver(session, practice_slug: str, settings: dict, filename: str, data: bytes) -> None:
    """Over the delivery the practice configured, with its own company's credentials and the operator's allowed
    agency hosts (billing.connections): an old row naming an environment variable or a host off the list is
    refused here without connecting."""
    rt_settings = runtime().settings
    company_id = session.scalar(select(Practice.company_id).where(Practice.slug == practice_slug))
    connections.build_transport(
        session,
        company_id,
        settings,
        purpose="agency",
        policy=connections.OutboundPolicy.from_settings(rt_settings),
        box=connections.secret_box(rt_settings),
    ).send(filename, data)


def _linked(session, practice_slug: str) -> set[int]:
    return set(
        session.scalars(
            select(AgencyPractice.agency_id)
            .join(Practice, Practice.id == AgencyPractice.practice_id)
            .where(Practice.slug == practice_slug)
        )
    )


@final_on_domain_error
def export_placements(practice_slug: str, agency_id: int | None = None, user_id: int | None = None) -> dict:
    """Export the practice's new placements, then the updates of accounts sent before (new balances, recalls), for
    one agency or every agency serving the practice. Each file is committed on its own, then delivered."""
    rt = runtime()
    done = []
    with rt.db.tenant_session(practice_slug) as session:
        if agency_id is not None:
            agency_ids = serving = [agency_id]
        else:
            linked = _linked(session, practice_slug)
            agency_ids = [a for a in collections.agencies_with_pending_exports(session) if a in linked]
            serving = sorted(linked)
        session.rollback()
        for aid in agency_ids:
            for write in (collections.export_agency, collections.export_agency_updates):
                result = write(session, rt.storage, practice_slug, aid, user_id=user_id)
                if result is None:
                    session.rollback()
                    continue
                export_id, filename, sftp = result.export.id, result.export.filename, result.sftp
                entry = {
                    "agency_id": aid,
                    "export_id": export_id,
                    "kind": result.export.kind,
                    "accounts": result.export.account_count,
                }
                session.commit()
                if sftp:
                    entry["delivered"] = _send(session, practice_slug, export_id, sftp, filename, result.data)
                done.append(entry)
        # Files recorded but not delivered yet: an earlier delivery failed, or a worker died after recording a
        # file and before sending it. Each is sent from storage, at most once successfully.
        sent = {entry["export_id"] for entry in done}
        redelivered = []
        for export, sftp in collections.undelivered_exports(session, serving):
            if export.id in sent:
                continue
            data = rt.storage.get(export.storage_key)
            redelivered.append(
                {
                    "export_id": export.id,
                    "delivered": _send(session, practice_slug, export.id, sftp, export.filename, data),
                }
            )
    return {"practice": practice_slug, "exports": done, "redelivered": redelivered}


def _send(session, practice_slug: str, export_id: int, sftp: dict, filename: str, data: bytes) -> bool:
    try:
        _deliver(session, practice_slug, sftp, filename, data)
        collections.mark_delivered(session, export_id)
        delivered = True
    except TransportError as exc:
        # The file stays available in the portal and API; the error shown beside it is the public one (the
        # detail was logged where the transport failed).
        log.warning("export %s not delivered: %s", export_id, exc)
        collections.mark_delivered(session, export_id, error=exc.public)
        delivered = False
    session.commit()
    return delivered


def export_all_practices() -> dict:
    """Periodic fan-out: one export job per practice that has agencies linked."""
    rt = runtime()
    with rt.db.shared_session() as session:
        slugs = list(
            session.scalars(
                select(Practice.slug)
                .join(AgencyPractice, AgencyPractice.practice_id == Practice.id)
                .where(Practice.status == "active")
                .distinct()
            )
        )
    for slug in slugs:
        rt.dispatcher.enqueue_now(
            "exports", "jobs.exports.export_placements", slug, meta={"practice": slug, "kind": "agency_export"}
        )
    return {"practices": len(slugs)}
