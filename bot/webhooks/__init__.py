"""Inbound webhooks of the Zalo channels (the SMS providers keep theirs in bot/channels/<provider>/)."""
