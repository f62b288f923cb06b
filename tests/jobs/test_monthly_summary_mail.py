"""The monthly summary reaches the practice's doctors: the job that stores the PDF sends each doctor (and nobody
else) a message with the month's figures and the portal link, through a real SMTP server; a rerun sends nothing
twice, and a message that could not be handed over is sent by the retry."""

from __future__ import annotations

import email
from datetime import date
from email import policy

import pytest
from aiosmtpd.controller import Controller

import jobs.reports as reports_job
from billing import reports
from integrations.mail import MailError, OutboxMailer, SmtpMailer, compose
from jobs.runtime import Runtime
from tests.s3server import free_port


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture()
def smtp():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _runtime(monkeypatch, settings, services, mailer) -> Runtime:
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher,
                 mailer=mailer)  # fmt: skip
    monkeypatch.setattr(reports_job, "runtime", lambda: rt)
    return rt


def test_each_doctor_is_told_once_with_the_months_figures(monkeypatch, settings, services, factory, smtp):
    controller, inbox = smtp
    company = factory.company()
    practice = factory.practice(company.slug)
    doctors = {factory.user("doctor", practice=practice), factory.user("doctor", practice=practice)}
    factory.user("doctor", practice=factory.practice(company.slug))  # another practice's doctor
    factory.user("biller", company=company)
    mailer = SmtpMailer(f"smtp://{controller.hostname}:{controller.port}", "medbill <reports@example.test>")
    _runtime(monkeypatch, settings, services, mailer)

    result = reports_job.monthly_summary_pdf(practice.slug, "2026-10", True)
    assert set(result["notified"]) == doctors
    assert {m["To"] for m in inbox.messages} == doctors
    with services.db.tenant_session(practice.slug) as s:
        figures = reports.month_totals(s, date(2026, 10, 1))
    message = inbox.messages[0]
    assert message["Subject"] == f"{practice.name}: monthly summary for October 2026"
    body = message.get_content()
    assert f"Charges:                 ${figures.charges:,}" in body
    assert f"{settings.public_url}/home?month=2026-10" in body
    # The job again (a retry, a rerun of the fan-out): the PDF is rendered again, nobody is told twice.
    assert reports_job.monthly_summary_pdf(practice.slug, "2026-10", True)["notified"] == []
    assert len(inbox.messages) == 2


def test_a_message_not_handed_over_is_sent_by_the_retry(monkeypatch, settings, services, factory, smtp):
    controller, inbox = smtp
    practice = factory.practice(factory.company().slug)
    doctor = factory.user("doctor", practice=practice)
    down = SmtpMailer(f"smtp://127.0.0.1:{free_port()}", "medbill <reports@example.test>", timeout=2)
    _runtime(monkeypatch, settings, services, down)
    with pytest.raises(MailError, match="could not send mail"):
        reports_job.monthly_summary_pdf(practice.slug, "2026-09", True)
    up = SmtpMailer(f"smtp://{controller.hostname}:{controller.port}", "medbill <reports@example.test>")
    _runtime(monkeypatch, settings, services, up)
    assert reports_job.monthly_summary_pdf(practice.slug, "2026-09", True)["notified"] == [doctor]
    assert [m["To"] for m in inbox.messages] == [doctor]


def test_without_smtp_messages_are_written_to_the_outbox(tmp_path):
    mailer = OutboxMailer(tmp_path / "outbox", "medbill <no-reply@example.test>")
    mailer.send(compose(mailer.sender, "dr@example.test", "Hello", "Body"))
    (path,) = (tmp_path / "outbox").glob("*.eml")
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert (parsed["To"], parsed["Subject"], parsed.get_content().strip()) == ("dr@example.test", "Hello", "Body")
    with pytest.raises(ValueError, match="MEDBILL_SMTP_URL"):
        SmtpMailer("http://mail.example.test", "x@example.test")
