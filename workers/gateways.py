"""Which gateway sends a channel's messages (one place to add SMS aggregators or Zalo)."""

from __future__ import annotations

from bot.channels.kannel import KannelGateway
from config.settings import Settings
from storage.models import Channel


def gateway_for(settings: Settings, channel: Channel) -> KannelGateway:
    """A new gateway for one job; the caller closes it (`with gateway_for(...) as gw`)."""
    if channel is Channel.SMS:
        return KannelGateway(settings)
    raise ValueError(f"no gateway for channel {channel}")
