"""Outgoing email: one interface, two ways to deliver. `SmtpMailer` talks to the SMTP server production names
(`MEDBILL_SMTP_URL`: smtp://, smtp+starttls:// or smtps://, with optional user:password@); `OutboxMailer` writes
each message as an .eml file into a folder, the embedded default's stand-in that a developer can open."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class MailError(Exception):
    """The message could not be handed over (the job's retry sends it again)."""


class Mailer(Protocol):
    sender: str

    def send(self, message: EmailMessage) -> None: ...


def compose(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


class SmtpMailer:
    def __init__(self, url: str, sender: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps") or not parts.hostname:
            raise ValueError(
                "MEDBILL_SMTP_URL must look like smtp://host:25, smtp+starttls://host:587 or smtps://host:465"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or {"smtp": 25, "smtp+starttls": 587, "smtps": 465}[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    def __repr__(self) -> str:  # never the password
        return f"SmtpMailer({self.scheme}://{self.host}:{self.port})"

    def send(self, message: EmailMessage) -> None:
        try:
            if self.scheme == "smtps":
                context = ssl.create_default_context()
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"could not send mail through {self.host}:{self.port}: {exc}") from exc


class OutboxMailer:
    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def __repr__(self) -> str:
        return f"OutboxMailer({self.directory})"

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.time_ns()}"
        target = self.directory / f"{stamp}.eml"
        partial = self.directory / f".{stamp}.eml.part"
        partial.write_bytes(message.as_bytes())
        partial.replace(target)  # a reader never sees half a message


def mailer_from_settings(smtp_url: str | None, sender: str, outbox_dir: Path) -> Mailer:
    return SmtpMailer(smtp_url, sender) if smtp_url else OutboxMailer(outbox_dir, sender)
