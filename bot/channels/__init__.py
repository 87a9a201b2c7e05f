"""Channel adapters: how a message leaves us and how a provider's callbacks are read.

One package per provider, each with its webhook routes, its parsers into neutral types, its send,
its fixtures (and a simulator where we keep one), and its `PROVIDER` (bot.channels.provider: name,
channel, the outbox routes it sends, its routes, its stored-event parser, its sender factory):

- SMS: kannel/, brandname/. Neutral types in `sms` (InboundSms, DeliveryReport with a
  storage.outbox.Delivery); the sender SIPAS_SMS_PROVIDER names sends every SMS.
- Zalo: zalo_bot/ (the Bot Platform) and zalo_oa/ (the Official Account and ZNS), on the shared
  Zalo client in zalo/ (API clients, tokens, typed events, errors and their meaning for the
  outbox, the synchronous router the inbound job runs its Zalo handlers through, and the
  simulator). Neutral type: zalo.events.InboundRecord.

Every sender speaks `outgoing` (Outgoing in; Sent, or a SendError whose flags say what the outbox
does), whatever its channel. `registry` lists the providers: it mounts their routes, picks the
parser of a stored event and the sender of an outbox row. `intake` is the one "store, then
dispatch" path of every webhook (and of `sipas zalo poll` and the ZNS rating reconciliation).
Nothing outside this package knows a provider's codes. Adding a provider is one folder:
docs/channels.md.
"""
