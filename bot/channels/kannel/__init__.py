"""Kannel (Debian package `kannel`): HTTP to us, SMPP to the operators. Everything it needs is here:

- send.py: MT by `GET /cgi-bin/sendsms` (KannelSender), the per-message dlr-url and its token;
- parse.py: the MO get-url and DLR callbacks into InboundSms / DeliveryReport, Kannel's DLR
  codes onto the neutral storage.outbox.Delivery;
- webhooks.py: `GET/POST /webhooks/sms/kannel` (MO) and `/webhooks/sms/kannel/dlr` (contract.md);
- fixtures/: callbacks as Kannel sends them, read by the contract suite (tests/channels).

Settings: KANNEL_SENDSMS_URL, KANNEL_USERNAME, KANNEL_PASSWORD, KANNEL_MO_TOKEN, SMS_SENDER
(docs/kannel.md).
"""

from __future__ import annotations

from bot.channels.kannel.parse import parse_delivery_report, parse_inbound, parse_stored
from bot.channels.kannel.send import DLR_MASK_ALL, KannelSender, dlr_token
from bot.channels.kannel.webhooks import PROVIDER as NAME
from bot.channels.kannel.webhooks import routes
from bot.channels.outgoing import SendServices
from bot.channels.provider import Provider
from bot.channels.sms import InboundSms
from storage.models import Channel, Route

__all__ = [
    "DLR_MASK_ALL",
    "NAME",
    "PROVIDER",
    "KannelSender",
    "dlr_token",
    "parse_delivery_report",
    "parse_inbound",
    "routes",
]


def _sender(services: SendServices) -> KannelSender:
    return KannelSender(services.settings)


PROVIDER: Provider[InboundSms] = Provider(
    name=NAME,
    channel=Channel.SMS,
    serves=(Route.SMS,),
    routes=routes,
    parse_stored=parse_stored,
    sender=_sender,
)
