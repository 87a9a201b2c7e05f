"""Channel adapters: how a message leaves us and how a provider's callbacks are read.

One package per provider, each with its webhook routes, its parsers into neutral types, its send,
its fixtures (and a simulator where we keep one):

- SMS: kannel/, brandname/. Neutral types in `sms` (InboundSms, DeliveryReport with a
  storage.outbox.Delivery); each exports PROVIDER, an SmsProvider (its stored-MO parser and its
  sender, picked by SIPAS_SMS_PROVIDER).
- Zalo: zalo_bot/ (the Bot Platform) and zalo_oa/ (the Official Account and ZNS), on the shared
  Zalo client in zalo/ (API clients, tokens, typed events, errors, the synchronous router the
  inbound job runs its Zalo handlers through, and the simulator). Neutral type:
  zalo.events.InboundRecord.

`registry` lists them and mounts their routes; `intake` is the one "store, then dispatch" path of
every webhook (and of `sipas zalo poll` and the ZNS rating reconciliation). Nothing outside this
package knows which SMS gateway carries the messages. Adding a provider is one folder:
docs/channels.md.
"""
