"""An aiosmtpd handler that keeps every accepted message and refuses chosen recipients (550)."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP, Envelope, Session


class CapturingHandler:
    def __init__(self, refuse: set[str] | None = None) -> None:
        self.refuse = refuse or set()
        self.messages: list[tuple[str, bytes]] = []  # (recipient, raw message)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        for recipient in envelope.rcpt_tos:
            self.messages.append((recipient, raw))
        return "250 Message accepted"
