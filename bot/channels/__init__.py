"""Channel adapters: how a message leaves us and how a provider's callbacks are read.

One package per SMS provider (kannel/, brandname/), each with its webhook routes, its parsers into
the neutral types of `bot.channels.sms` (InboundSms, DeliveryReport with a storage.outbox.Delivery),
its sender and its fixtures; `registry` lists them, mounts their routes and picks the sender by
SIPAS_SMS_PROVIDER; `intake` is the one "store, then dispatch" path of every webhook. Nothing
outside this package knows which SMS gateway carries the messages. Adding a provider:
docs/channels.md. (The Zalo adapters are in bot/zalo/ and bot/webhooks/zalo.py.)
"""
