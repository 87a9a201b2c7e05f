"""E-mail through the SMTP_* settings: the one mail sender of the service (the supervisors' digests
in workers.digest, and the inbox's forwards to a unit's complaints desk from the pages)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from config.settings import Settings

__all__ = ["SMTP_TIMEOUT", "Mailer", "SmtpMailer"]

SMTP_TIMEOUT = 30


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand one message to the mail server; raises smtplib.SMTPException or OSError."""


@dataclass(frozen=True)
class SmtpMailer:
    """smtplib with the SMTP_* settings: STARTTLS (verified) when asked, login when a user is set."""

    settings: Settings

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.SMTP_HOST, s.SMTP_PORT, timeout=SMTP_TIMEOUT) as client:
            if s.SMTP_STARTTLS:
                client.starttls(context=ssl.create_default_context())
            if s.SMTP_USERNAME:
                client.login(s.SMTP_USERNAME, s.SMTP_PASSWORD)
            client.send_message(message)
