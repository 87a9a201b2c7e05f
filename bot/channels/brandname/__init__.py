"""A brandname-SMS HTTP API, of the kind Vietnamese operators and aggregators offer.

No real provider can be reached from here, so this package speaks a *generic contract*, the
common shape of such APIs (JSON send with an API key, JSON delivery callback, MO of a two-way
number forwarded by HTTP). An adapter for a real aggregator is a copy of this folder with its
field names (docs/channels.md). The contract, which simulator.py implements:

Send: `POST BRANDNAME_API_URL`, `Authorization: Bearer BRANDNAME_API_KEY`, JSON
`{"to": "84912345678", "from": SMS_SENDER, "text": "...", "unicode": bool, "ref": "<outbox id>",
"callback_url": "<SIPAS_PUBLIC_URL>/webhooks/sms/brandname/status"}`.
- 2xx `{"message_id": "...", "segments": n}`: taken. The provider de-duplicates on `ref`: a
  repeated ref answers the first message_id and sends nothing.
- 4xx `{"error": {"code": "...", "message": "..."}}`: refused (401/403 key, 402 balance,
  400/422 request or number); 408/429 (with `Retry-After`) and 5xx: try later.

Callbacks to us, each a JSON object, signed: `X-Brandname-Timestamp: <unix seconds>` and
`X-Brandname-Signature: v1=<hex HMAC-SHA256(BRANDNAME_CALLBACK_SECRET, "<timestamp>." + body)>`,
within 5 minutes of our clock; answered 200 once stored, 4xx when refused, 503 when we cannot
store (retry then):
- `POST /webhooks/sms/brandname/status`: `{"message_id", "ref", "status", "error_code"?,
  "reported_at"?}`, status one of delivered, failed, rejected, expired, undeliverable, accepted,
  sent, pending, enroute (parse.py maps them onto storage.outbox.Delivery);
- `POST /webhooks/sms/brandname/mo`: `{"id", "from", "to", "text", "received_at"?}`, `id` unique
  per MO (a retry repeats it).

Files: send.py (BrandnameSender), parse.py (callbacks, signature, status mapping), webhooks.py
(the two routes), simulator.py (the other side, over HTTP), fixtures/ (callbacks as the contract
has them, for tests/channels). Settings: BRANDNAME_API_URL, BRANDNAME_API_KEY,
BRANDNAME_CALLBACK_SECRET, SMS_SENDER; selected by SIPAS_SMS_PROVIDER=brandname.
"""

from __future__ import annotations

from bot.channels.brandname.parse import parse_stored
from bot.channels.brandname.send import BrandnameSender
from bot.channels.brandname.webhooks import PROVIDER as NAME
from bot.channels.brandname.webhooks import routes
from bot.channels.outgoing import SendServices
from bot.channels.provider import Provider
from bot.channels.sms import InboundSms
from storage.models import Channel, Route

__all__ = ["NAME", "PROVIDER", "BrandnameSender", "routes"]


def _sender(services: SendServices) -> BrandnameSender:
    return BrandnameSender(services.settings)


PROVIDER: Provider[InboundSms] = Provider(
    name=NAME,
    channel=Channel.SMS,
    serves=(Route.SMS,),
    routes=routes,
    parse_stored=parse_stored,
    sender=_sender,
)
