"""Zalo Official Account and ZNS (developers.zalo.me): the agency's OA, its customer-service
messages, and ZNS template messages by phone number (the rating invitation). ZNS has no webhook
of its own: its events (`user_received_message`, `user_feedback`, the rating) arrive at the OA's.
Everything the provider needs is here or in the shared Zalo client (bot/channels/zalo: the OA and
ZNS clients, OAuth token refresh and store, typed events, errors):

- parse.py: an event into the neutral InboundRecord (provider id `<event_name>:<msg_id>`, sender
  = the citizen's OA user id, text), and `rating_id`, the id a rating is stored under whichever
  road brought it (the webhook, or the nightly `rating/get` of workers/zalo_reconcile.py);
- webhooks.py: `POST /webhooks/zalo/oa`, authenticated by `X-ZEvent-Signature` over app id, body
  and timestamp;
- send.py: the OA customer-service text and the ZNS rating template (ZaloOASender, the send
  job's `zalo_oa` and `zns` routes, with the OA's token pair from the database);
- fixtures/: events/ as the webhook receives them, api/ the OA API's answers (cs message, OAuth
  tokens, errors), zns/ the ZNS API's (template send, rating/get, errors).

The local Zalo simulator (bot/channels/zalo/simulator) plays the OA, OAuth and ZNS over HTTP.
Settings: ZALO_OA_APP_ID, ZALO_APP_SECRET, ZALO_OA_SECRET_KEY,
ZALO_OA_SIGNATURE_KEY, ZALO_OA_API_BASE, ZALO_OAUTH_BASE, ZNS_API_BASE, ZNS_RATING_TEMPLATE_ID
(docs/zalo.md).
"""

from __future__ import annotations

from bot.channels.outgoing import SendServices
from bot.channels.provider import Provider
from bot.channels.zalo.events import InboundRecord
from bot.channels.zalo.token_store import DatabaseTokenStore
from bot.channels.zalo_oa.parse import PROVIDER_OA as NAME
from bot.channels.zalo_oa.parse import describe_oa_event, parse_stored, rating_id, read_event
from bot.channels.zalo_oa.send import ZaloOASender
from bot.channels.zalo_oa.webhooks import routes
from storage.models import Channel, Route

__all__ = [
    "NAME",
    "PROVIDER",
    "ZaloOASender",
    "describe_oa_event",
    "parse_stored",
    "rating_id",
    "read_event",
    "routes",
]


def _sender(services: SendServices) -> ZaloOASender:
    """The OA's sender with its token pair in the database (refreshed by one process at a time)."""
    settings = services.settings
    settings.require("ZALO_OA_APP_ID", "ZALO_APP_SECRET")
    tokens = DatabaseTokenStore(services.sessions, services.vault, services.redis, settings.ZALO_OA_APP_ID)
    return ZaloOASender(settings, tokens)


PROVIDER: Provider[InboundRecord] = Provider(
    name=NAME,
    channel=Channel.ZALO,
    serves=(Route.ZALO_OA, Route.ZNS),
    routes=routes,
    parse_stored=parse_stored,
    sender=_sender,
)
