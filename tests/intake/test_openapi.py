"""docs/openapi.yaml stays true to the intake route and its outcomes."""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web

from bot.intake import MAX_BATCH, routes
from config.settings import PROJECT_ROOT
from flows.intake import CaseIn, NotSampledReason, OutcomeKind


def spec() -> dict[str, Any]:
    with (PROJECT_ROOT / "docs" / "openapi.yaml").open(encoding="utf-8") as file:
        loaded: dict[str, Any] = yaml.safe_load(file)
    return loaded


def test_every_intake_route_is_documented() -> None:
    documented = {(path, method.upper()) for path, item in spec()["paths"].items() for method in item}
    served = {(r.path, r.method) for r in routes if isinstance(r, web.RouteDef)}
    assert served <= documented


def test_case_schema_matches_the_model() -> None:
    schemas = spec()["components"]["schemas"]
    case = schemas["Case"]
    assert set(case["properties"]) == set(CaseIn.model_fields)
    assert set(case["required"]) == {name for name, f in CaseIn.model_fields.items() if f.is_required()}
    assert schemas["CaseBatch"]["properties"]["cases"]["maxItems"] == MAX_BATCH
    result = schemas["CaseResult"]["properties"]
    assert result["outcome"]["enum"] == [kind.value for kind in OutcomeKind]
    assert set(result["reason"]["enum"]) == {reason.value for reason in NotSampledReason}
