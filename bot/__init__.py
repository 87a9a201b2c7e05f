"""The aiohttp application: intake API, channel webhooks, staff and supervisor pages, channel adapters."""
