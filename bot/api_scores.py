"""GET /api/v1/scores: the objects of `sipas scores show --format json`, for other systems
(`procedure=CODE`: the cases of one procedure only, as `scores show --procedure`).

Authorization: Bearer <token> from `sipas api-tokens add`; a token sees its agency's subtree
only (401 without a valid token, 403 for an agency outside it). Suppressed units keep their
`suppressed: true`; figures with no data stay null.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bot.context import CONTEXT, AppContext
from bot.errors import RefusedError, dumps
from flows.scores.counts import CHANNELS
from flows.scores.periods import PeriodError, parse_period
from flows.scores.report import UnknownAgencyError, build_report
from storage.agencies import get_by_code
from storage.api_tokens import check_token
from storage.users import subtree_ids

__all__ = ["routes"]

routes = web.RouteTableDef()
_MAX_PARAM = 64


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 256:
        raise RefusedError(401, "unauthorized", "send Authorization: Bearer <token> (sipas api-tokens add)")
    return token.strip()


def _scores(
    ctx: AppContext, token: str, agency_code: str, period_text: str, view: tuple[str, str | None]
) -> list[dict[str, Any]]:
    channel, procedure = view
    with ctx.sessions() as session, session.begin():
        api_token = check_token(session, token)
        if api_token is None:
            raise RefusedError(401, "unauthorized", "the token is unknown or revoked")
        agency = get_by_code(session, agency_code)
        scope = subtree_ids(session, api_token.agency_id) or set()
        if agency is None or agency.id not in scope:
            # an unknown code answers like one outside the subtree: a token learns nothing beyond it
            raise RefusedError(403, "forbidden", f"agency {agency_code!r} is outside this token's agencies")
        try:
            period = parse_period(period_text)
            report = build_report(
                session, period, agency_code, settings=ctx.settings, channel=channel, procedure=procedure
            )
        except (PeriodError, UnknownAgencyError) as exc:
            raise RefusedError(400, "invalid_parameter", str(exc)) from exc
        return report.as_json()


@routes.get("/api/v1/scores")
async def scores(request: web.Request) -> web.Response:
    token = _bearer(request)
    agency_code = request.query.get("agency", "").strip()
    period_text = request.query.get("period", "").strip()
    channel = request.query.get("channel", "all").strip()
    procedure = request.query.get("procedure", "").strip() or None
    if not agency_code or not period_text:
        raise RefusedError(400, "invalid_parameter", "agency and period are required")
    if max(len(agency_code), len(period_text), len(procedure or "")) > _MAX_PARAM:
        raise RefusedError(400, "invalid_parameter", "agency, period or procedure is too long")
    if channel not in CHANNELS:
        raise RefusedError(400, "invalid_parameter", f"channel must be one of {', '.join(CHANNELS)}")
    rows = await asyncio.to_thread(
        _scores, request.app[CONTEXT], token, agency_code, period_text, (channel, procedure)
    )
    return web.json_response(rows, dumps=dumps)
