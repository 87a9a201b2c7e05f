"""Inbound webhooks from the channel providers (Kannel, Zalo): authenticate, store, acknowledge."""
