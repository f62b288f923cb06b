"""Job: send a practice's ready claims to its clearinghouse. Pending files are sent again first (same bytes, same
control numbers); then a new 837P is built, stored, transmitted, and its claims marked submitted."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import connections, submissions
from billing.models import BillingIdentity, Submission
from integrations.clearinghouse import Transport, TransportError
from integrations.storage import practice_key
from jobs.runtime import final_on_domain_error, runtime
from tenants.models import Practice

log = logging.getLogger("medbill.jobs.submission")


def transport_for(session: Session, practice_slug: str, identity: BillingIdentity) -> Transport:
    """The practice's clearinghouse transport: credentials from its own company's secrets, hosts and directories
    as the operator allows them (billing.connections); errors it raises are fit to show the practice."""
    settings = runtime().settings
    company_id = session.scalar(select(Practice.company_id).where(Practice.slug == practice_slug))
    return connections.build_transport(
        session,
        company_id,
        identity.transport,
        purpose="clearinghouse",
        policy=connections.OutboundPolicy.from_settings(settings),
        box=connections.secret_box(settings),
    )


def _transmit(session, transport: Transport, submission: Submission, data: bytes, user_id: int | None) -> dict:
    try:
        transport.send(submission.filename, data)
    except TransportError as exc:
        # The practice sees the public message; the detail was logged by the transport (billing.connections).
        submissions.mark_failed(session, submission, exc.public)
        session.commit()
        log.warning("submission %s not transmitted: %s", submission.id, exc)
        if exc.transient:
            raise  # RQ retries with backoff; the same file goes again
        return {"submission_id": submission.id, "status": "failed", "error": exc.public}
    claim_ids = submissions.mark_transmitted(session, submission, user_id=user_id)
    session.commit()
    return {"submission_id": submission.id, "status": "transmitted", "claims": len(claim_ids)}


@final_on_domain_error
def submit_claims(practice_slug: str, claim_ids: list[int] | None = None, user_id: int | None = None) -> dict:
    rt = runtime()
    result: dict = {"resent": [], "submission": None, "skipped": {}}
    with rt.db.tenant_session(practice_slug) as session:
        identity = submissions.identity_for_submission(session)
        transport = transport_for(session, practice_slug, identity)
        for pending in submissions.pending_submissions(session):
            data = rt.storage.get(pending.storage_key)
            result["resent"].append(_transmit(session, transport, pending, data, user_id))
        prepared = submissions.prepare_submission(
            session, practice_slug=practice_slug, user_id=user_id, claim_ids=claim_ids
        )
        if prepared is None:
            session.commit()  # scrub results of claims that turned out not ready
            return result
        data = prepared.text.encode("ascii")
        key = practice_key(practice_slug, "submissions", prepared.submission.filename)
        # Stored before the commit that records it: a recorded submission always has its file.
        rt.storage.put(
            key,
            data,
            content_type="application/edi-x12",
            metadata={"interchange-control-number": str(prepared.submission.interchange_control_number)},
        )
        prepared.submission.storage_key = key
        result["skipped"] = {str(k): v for k, v in prepared.skipped.items()}
        session.commit()
        result["submission"] = _transmit(session, transport, prepared.submission, data, user_id)
        if result["submission"]["status"] == "transmitted":
            _follow_up(rt, practice_slug, prepared.submission.id)
    return result


FOLLOW_UP = timedelta(seconds=20)


def _follow_up(rt, practice_slug: str, submission_id: int) -> None:
    """Look for the clearinghouse's answer soon after sending, besides the scheduled fetch every few minutes."""
    rt.dispatcher.queue("default").enqueue_in(
        FOLLOW_UP,
        "jobs.acknowledgements.fetch_clearinghouse_files",
        practice_slug,
        job_id=f"fetch-acks-{practice_slug}-after-{submission_id}",
    )
