"""Zalo Bot Platform (bot.zaloplatforms.com): a bot the citizen writes to first, with the start
code of their survey. Everything the provider needs is here or in the shared Zalo client
(bot/channels/zalo: the Bot API client, typed events, errors):

- parse.py: an event (webhook body or getUpdates result, wrapped `{ok, result}` or bare) into the
  neutral InboundRecord (provider id `message.message_id`, sender = the chat's user id, text);
- webhooks.py: `POST /webhooks/zalo/bot`, authenticated by `X-Bot-Api-Secret-Token`
  (ZALO_BOT_SECRET_TOKEN, given to Zalo by `sipas zalo set-webhook`);
- send.py: `sendMessage` to the citizen's chat (ZaloBotSender, the send job's `zalo_bot` route);
- fixtures/: events/ as the webhook receives them (text, image, sticker, unsupported; wrapped and
  bare), api/ the Bot API's answers (getMe, sendMessage, errors).

`sipas zalo poll` reads getUpdates in development and stores each event like the webhook. The
local Zalo simulator (bot/channels/zalo/simulator) plays the Bot Platform over HTTP. Settings:
ZALO_BOT_TOKEN, ZALO_BOT_SECRET_TOKEN, ZALO_BOT_API_BASE (docs/zalo.md).
"""

from __future__ import annotations

from bot.channels.outgoing import SendServices
from bot.channels.provider import Provider
from bot.channels.zalo.events import InboundRecord
from bot.channels.zalo_bot.parse import PROVIDER_BOT as NAME
from bot.channels.zalo_bot.parse import describe_bot_event, parse_stored, read_update
from bot.channels.zalo_bot.send import ZaloBotSender
from bot.channels.zalo_bot.webhooks import routes
from storage.models import Channel, Route

__all__ = ["NAME", "PROVIDER", "ZaloBotSender", "describe_bot_event", "parse_stored", "read_update", "routes"]


def _sender(services: SendServices) -> ZaloBotSender:
    return ZaloBotSender(services.settings)


PROVIDER: Provider[InboundRecord] = Provider(
    name=NAME,
    channel=Channel.ZALO,
    serves=(Route.ZALO_BOT,),
    routes=routes,
    parse_stored=parse_stored,
    sender=_sender,
)
