"""The local Zalo (Bot Platform, OA, OAuth, ZNS) over HTTP, for tests and demos: app.py the
server, citizen.py the citizen's side (signed events), threaded.py the server on a background
loop for synchronous tests, `python -m bot.channels.zalo.simulator` as its own process."""

from bot.channels.zalo.simulator.app import RecordedRequest, SimConfig, ZaloSimulator

__all__ = ["RecordedRequest", "SimConfig", "ZaloSimulator"]
