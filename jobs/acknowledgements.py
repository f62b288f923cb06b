"""Jobs: fetch what the clearinghouse returned for a practice (999, 277CA, 835) and apply or post it; fan out over
practices on a schedule."""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select

from billing import edi_intake
from billing.models import BillingIdentity
from integrations.storage import practice_key
from jobs.runtime import final_on_domain_error, runtime
from jobs.submission import transport_for
from medbill.errors import DomainError
from tenants.models import Practice

log = logging.getLogger("medbill.jobs.acknowledgements")


ORDER = {"999": 0, "277": 1, "835": 2}


def _kinds(data: bytes) -> set[str]:
    try:
        return edi_intake.detect_kinds(data)
    except DomainError:
        return set()


@final_on_domain_error
def fetch_clearinghouse_files(practice_slug: str) -> dict:
    rt = runtime()
    with rt.db.tenant_session(practice_slug) as session:
        identity = session.get(BillingIdentity, 1)
        if identity is None or not identity.transport:
            return {"status": "skipped", "reason": "no clearinghouse transport configured"}
        transport = transport_for(session, practice_slug, identity)
        company_id = session.scalar(select(Practice.company_id).where(Practice.slug == practice_slug))
    # A billing company often shares one clearinghouse mailbox among its practices: whatever is in it is routed
    # to the practice it names, which need not be the one whose fetch found it.
    slugs = edi_intake.practice_slugs_for(rt.db, company_id=company_id)
    results = []
    fetched = [(remote, _kinds(remote.data)) for remote in transport.fetch()]
    # A 999 speaks of the file, a 277CA of its claims, an 835 pays them: in that order whatever the file names.
    fetched.sort(key=lambda item: (min((ORDER.get(k, 9) for k in item[1]), default=9), item[0].name))
    for remote, kinds in fetched:
        if not kinds or not kinds <= edi_intake.ALL_KINDS:
            # Anything else is left for whoever handles it.
            results.append({"file": remote.name, "status": "left", "kinds": sorted(kinds)})
            continue
        digest = hashlib.sha256(remote.data).hexdigest()
        key = practice_key(practice_slug, "edi", "inbound", f"{digest}-{remote.name}")
        rt.storage.put(key, remote.data, content_type="application/edi-x12")
        try:
            # Acknowledgements apply here; each 835 set becomes a job on the posting queue of its practice.
            report = edi_intake.intake(
                rt.db, remote.data, storage_key=key, slugs=slugs, kinds=edi_intake.ALL_KINDS, company_id=company_id,
                inline=False, dispatcher=rt.dispatcher, source="fetch", file_name=remote.name, storage=rt.storage,
            )  # fmt: skip
        except DomainError as exc:
            log.warning("file %s from the clearinghouse was refused: %s", remote.name, exc.message)
            results.append({"file": remote.name, "status": "refused", "error": exc.message})
        else:
            if report.quarantined:
                # Not this company's (or not all of it): left in the mailbox, where its owner's fetch still finds it;
                # the operator has the quarantined copy. Fetched again, it adds nothing (every set is keyed).
                results.append({"file": remote.name, "status": "quarantined", **report.as_dict()})
                continue
            results.append({"file": remote.name, "status": "applied", **report.as_dict()})
        transport.archive(remote.name)
    return {"files": results}


def fetch_all_practices() -> list[str]:
    """Scheduled: one fetch job per active practice with a clearinghouse, with ids that dedupe per run."""
    rt = runtime()
    with rt.db.shared_session() as session:
        slugs = list(session.scalars(select(Practice.slug).where(Practice.status == "active")))
    enqueued = []
    for slug in slugs:
        job_id = f"fetch-acks-{slug}"
        queue = rt.dispatcher.queue("default")
        job = queue.fetch_job(job_id)
        if job is not None and job.get_status(refresh=False) in ("queued", "started", "scheduled", "deferred"):
            continue  # the previous run for this practice is still pending
        if job is not None:
            job.delete()
        rt.dispatcher.enqueue_now("default", fetch_clearinghouse_files, slug, job_id=job_id)
        enqueued.append(slug)
    return enqueued
