"""Async clients for the Zalo Official Account API v3 and ZNS (template messages by phone).

Both authenticate with the OA access token in an `access_token` header and answer HTTP 200 with
`{error, message, data}`. A call refused for an invalid or expired token (-216/-220/-124) refreshes
the token once (see bot.channels.zalo.tokens) and is retried once; a second refusal is raised.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.channels.zalo.bot_api import check_text
from bot.channels.zalo.exceptions import (
    ZaloPermanentError,
    ZaloTokenInvalid,
    raise_for_oa_envelope,
    transport_failure,
)
from bot.channels.zalo.http_client import ZaloHttpClient
from bot.channels.zalo.tokens import OATokenManager, TokenStore
from bot.channels.zalo.types import OASendResult, ZNSRatingPage, ZNSSendResult

__all__ = ["DEFAULT_OA_API_BASE", "DEFAULT_ZNS_API_BASE", "ZNSClient", "ZaloOAClient"]

DEFAULT_OA_API_BASE = "https://openapi.zalo.me"
DEFAULT_ZNS_API_BASE = "https://business.openapi.zalo.me"
MAX_TRACKING_ID = 48


class _OpenAPIClient(ZaloHttpClient):
    """Shared plumbing of the OA and ZNS clients: token header, refresh-and-retry-once."""

    def __init__(
        self,
        base_url: str,
        oauth_base: str,
        app_id: str,
        app_secret: str,
        token_store: TokenStore,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        super().__init__(http, timeout)
        self.tokens = OATokenManager(
            token_store, http=self._http, oauth_base=oauth_base, app_id=app_id, app_secret=app_secret
        )

    async def _once(
        self,
        http_method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        try:
            response = await self._http.request(
                http_method, f"{self._base}{path}", headers={"access_token": token}, json=json, params=params
            )
        except httpx.HTTPError as exc:
            raise transport_failure(exc, "Zalo API", path) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        return raise_for_oa_envelope(response.status_code, body, method=path, headers=response.headers)

    async def call(
        self, http_method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """One authorised call; on a token refusal, refresh once and retry once."""
        token = await self.tokens.access_token()
        try:
            return await self._once(http_method, path, token, json=json, params=params)
        except ZaloTokenInvalid:
            fresh = await self.tokens.refresh(token)
            return await self._once(http_method, path, fresh.access_token, json=json, params=params)


class ZaloOAClient(_OpenAPIClient):
    """Customer-service messages to a follower's `user_id` (free within 48 h of their last
    interaction, billable up to 7 days, refused after: -230)."""

    async def send_cs_message(self, user_id: str, text: str) -> OASendResult:
        body = {"recipient": {"user_id": user_id}, "message": {"text": check_text(text)}}
        return OASendResult.model_validate(await self.call("POST", "/v3.0/oa/message/cs", json=body))


class ZNSClient(_OpenAPIClient):
    """Approved template messages by phone number, and the ratings given on them."""

    async def send_template(
        self, phone: str, template_id: str, template_data: dict[str, Any], tracking_id: str
    ) -> ZNSSendResult:
        """`phone` in international form without '+', e.g. 84912345678; `tracking_id` <= 48 chars
        (our survey id) comes back in delivery and rating events."""
        if not phone.isdigit() or not phone.startswith("84"):
            raise ZaloPermanentError("phone must look like 84912345678", method="/message/template")
        if not tracking_id or len(tracking_id) > MAX_TRACKING_ID:
            raise ZaloPermanentError("tracking_id must have 1 to 48 characters", method="/message/template")
        body = {
            "phone": phone,
            "template_id": template_id,
            "template_data": template_data,
            "tracking_id": tracking_id,
        }
        return ZNSSendResult.model_validate(await self.call("POST", "/message/template", json=body))

    async def get_ratings(
        self, template_id: str, from_time: int, to_time: int, offset: int = 0, limit: int = 100
    ) -> ZNSRatingPage:
        """One page of ratings submitted between `from_time` and `to_time` (Unix ms)."""
        params = {
            "template_id": template_id,
            "from_time": from_time,
            "to_time": to_time,
            "offset": offset,
            "limit": limit,
        }
        data = await self.call("GET", "/rating/get", params=params)
        return ZNSRatingPage.model_validate(data or {})
