"""Job: the password reset mail. Sent from a worker, after the request's transaction committed, so the request
answers in the same time whether or not the email is a user's (no mail server latency to tell them apart).

The job gets only the id of the stored reset request: RQ keeps job arguments in Redis in clear, so the link is made
here (tenants.accounts.mint_reset_link, which stores only its hash) and exists nowhere but in the mail."""

from __future__ import annotations

import logging

from integrations.mail import compose
from jobs.runtime import runtime
from medbill.services import make_mailer
from tenants.accounts import mint_reset_link, reset_message, reset_url

log = logging.getLogger("medbill.jobs.accounts")


def send_password_reset(reset_id: int) -> dict:
    """Mint the link of reset request ``reset_id`` and hand it to the mail server (a failure is retried by the
    job's retries, which mint a new link: only the last one mailed works). Nothing is sent for a request that is
    no longer live (voided by a later one, expired, the user deactivated)."""
    rt = runtime()
    with rt.db.shared_session() as session:
        link = mint_reset_link(session, reset_id)
        # Committed before sending: a mailed link always has its hash stored.
        session.commit()
    if link is None:
        log.info("password reset %s is no longer live: no mail sent", reset_id)
        return {"status": "void"}
    mailer = rt.mailer or make_mailer(rt.settings)
    subject, body = reset_message(link.full_name, reset_url(rt.settings.public_url, link.raw), link.minutes)
    mailer.send(compose(mailer.sender, link.email, subject, body))
    log.info("password reset mail handed over")
    return {"status": "sent"}
