"""docs/openapi.yaml documents every route the app serves, with its methods."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web

from bot.app import ROUTE_MODULES
from config.settings import PROJECT_ROOT


def test_every_route_is_documented() -> None:
    with (PROJECT_ROOT / "docs" / "openapi.yaml").open(encoding="utf-8") as file:
        spec: dict[str, Any] = yaml.safe_load(file)
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    served = {
        (route.path, route.method)
        for module in ROUTE_MODULES
        for route in module.routes
        if isinstance(route, web.RouteDef)
    }
    assert served == documented
