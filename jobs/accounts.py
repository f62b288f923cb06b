"""Job: the password reset mail. Sent from a worker, after the request's transaction committed, so the request
answers in the same time whether or not the email is a user's (no mail server latency to tell them apart)."""

from __future__ import annotations

import logging

from integrations.mail import compose
from jobs.runtime import runtime
from medbill.services import make_mailer
from tenants.accounts import reset_message

log = logging.getLogger("medbill.jobs.accounts")


def send_password_reset(email: str, full_name: str, link: str, minutes: int) -> dict:
    """Hand the reset link to the mail server (a failure is retried by the job's retries)."""
    rt = runtime()
    mailer = rt.mailer or make_mailer(rt.settings)
    subject, body = reset_message(full_name, link, minutes)
    mailer.send(compose(mailer.sender, email, subject, body))
    log.info("password reset mail handed over")
    return {"status": "sent"}
