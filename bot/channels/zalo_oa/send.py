"""Sending as the Official Account: a customer-service text to an OA user (the send job's
`zalo_oa` route) and a ZNS template to a phone number, the rating invitation (`zns`).

The OA's token pair lives in the database (bot.channels.zalo.token_store: refreshed by one process
at a time); the clients refresh a refused token and retry once. Failures are mapped by
bot.channels.zalo.sending.failure_from_zalo: -213/-230 (not a follower, outside the window) and
-108/-118/-114/-119/-139/-141 (no Zalo on that phone, ZNS refused) are unreachable (the survey
moves to SMS).
"""

from __future__ import annotations

from bot.channels.outgoing import Outgoing, SendError, Sent
from bot.channels.zalo.exceptions import ZaloError
from bot.channels.zalo.oa_api import ZaloOAClient, ZNSClient
from bot.channels.zalo.sending import ZaloSender, failure_from_zalo
from bot.channels.zalo.tokens import TokenStore
from config.settings import Settings
from flows.phones import to_msisdn
from storage.models import Route

__all__ = ["ZaloOASender"]


class ZaloOASender(ZaloSender):
    """The OA's sends within SIPAS_SEND_TIMEOUT, with `tokens`, the OA's token store
    (bot.channels.outgoing.Sender)."""

    def __init__(self, settings: Settings, tokens: TokenStore) -> None:
        super().__init__(float(settings.SIPAS_SEND_TIMEOUT))
        self._settings = settings
        self._tokens = tokens

    async def send(self, message: Outgoing) -> Sent:
        try:
            if message.route is Route.ZNS:
                return await self._send_template(message)
            return await self._send_cs_text(message)
        except ZaloError as exc:
            raise failure_from_zalo(exc) from exc

    async def _send_cs_text(self, message: Outgoing) -> Sent:
        """A customer-service message (`/v3.0/oa/message/cs`) to the row's OA user id."""
        s = self._settings
        oa = ZaloOAClient(
            s.ZALO_OA_API_BASE, s.ZALO_OAUTH_BASE, s.ZALO_OA_APP_ID, s.ZALO_APP_SECRET, self._tokens,
            http=self.http(), timeout=self._timeout,
        )  # fmt: skip
        result = await oa.send_cs_message(message.to, message.text)
        return Sent(result.message_id, 1, "text")

    async def _send_template(self, message: Outgoing) -> Sent:
        """The ZNS template the row's `payload` names (`template_id`, `template_data`) to its
        phone; `payload["tracking_id"]` wins over the survey id (the outbox id without one)."""
        payload = message.payload or {}
        template_id = str(payload.get("template_id") or "")
        if not template_id:
            raise SendError("no ZNS template id (ZNS_RATING_TEMPLATE_ID)", retryable=False)
        s = self._settings
        zns = ZNSClient(
            s.ZNS_API_BASE, s.ZALO_OAUTH_BASE, s.ZALO_OA_APP_ID, s.ZALO_APP_SECRET, self._tokens,
            http=self.http(), timeout=self._timeout,
        )  # fmt: skip
        tracking_id = payload.get("tracking_id") or message.survey_id or message.message_id
        template = await zns.send_template(
            to_msisdn(message.to), template_id, dict(payload.get("template_data") or {}), str(tracking_id)
        )
        return Sent(template.msg_id, 1, "template")
