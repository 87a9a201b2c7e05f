"""Local Zalo simulators (Bot Platform, OA, OAuth, ZNS) for tests and `make run` demos."""

from tests.support.zalo_sim.simulator import RecordedRequest, SimConfig, ZaloSimulator

__all__ = ["RecordedRequest", "SimConfig", "ZaloSimulator"]
