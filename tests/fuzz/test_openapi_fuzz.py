"""Schemathesis against docs/openapi.yaml, on the real app over HTTP: no generated request may
get a 5xx. Each case is sent twice: as generated (mostly refused by the authentication checks),
and authenticated the way each caller authenticates (signatures computed here), so the fuzzer
reaches the parsers behind the checks. Bounded examples keep the suite to about a minute."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings

from config.settings import PROJECT_ROOT
from tests.fuzz.conftest import METRICS_TOKEN, ONESTOP, LiveApp
from tests.security.webhook_client import (
    BOT_SECRET,
    MO_TOKEN,
    OA_APP_ID,
    brandname_signature,
    dlr_token_vector,
    oa_mac,
)

schema = schemathesis.openapi.from_path(str(PROJECT_ROOT / "docs" / "openapi.yaml"))

# Per operation and method: the coverage phase (every boundary case the schema defines) plus 15
# generated examples, each sent twice.
EXAMPLES = 15


def _body_bytes(kwargs: dict[str, Any]) -> bytes:
    if "json" in kwargs:
        return json.dumps(kwargs.pop("json"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    data = kwargs.pop("data", None) or kwargs.pop("content", None)
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    if isinstance(data, dict):
        return "&".join(f"{key}={value}" for key, value in data.items()).encode("utf-8", "surrogatepass")
    return bytes(data)


def _authenticate(path: str, request: dict[str, Any], body: bytes) -> None:
    """Give the generated request the credentials its real caller would send."""
    headers: dict[str, str] = request.setdefault("headers", {})
    params: dict[str, Any] = request.setdefault("params", {})
    if path == "/api/v1/cases/closed":
        stamp = str(int(time.time()))
        mac = hmac.new(ONESTOP.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers.update({"X-Sipas-Timestamp": stamp, "X-Sipas-Signature": f"v1={mac}"})
    elif path == "/webhooks/sms/kannel":
        params["token"] = MO_TOKEN
    elif path == "/webhooks/sms/kannel/dlr":
        params["token"] = dlr_token_vector(MO_TOKEN, str(params.get("ref", "")))
    elif path.startswith("/webhooks/sms/brandname/"):
        stamp = str(int(time.time()))
        headers.update(
            {"X-Brandname-Timestamp": stamp, "X-Brandname-Signature": brandname_signature(body, stamp)}
        )
    elif path == "/webhooks/zalo/bot":
        headers["X-Bot-Api-Secret-Token"] = BOT_SECRET
    elif path == "/webhooks/zalo/oa":
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        stamp = str(event.get("timestamp", "")) if isinstance(event, dict) else ""
        app_id = str(event.get("app_id", OA_APP_ID)) if isinstance(event, dict) else OA_APP_ID
        headers["X-ZEvent-Signature"] = "mac=" + oa_mac(body.decode("utf-8", "replace"), stamp, app_id=app_id)
    elif path == "/metrics":
        headers["Authorization"] = f"Bearer {METRICS_TOKEN}"


def _send(
    http: httpx.Client, method: str, url: str, request: dict[str, Any], body: bytes
) -> httpx.Response | None:
    """The answer, or None when the HTTP client itself refuses to send the request (a header
    value it cannot encode): nothing reached the app."""
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    params = {
        str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (request.get("params") or {}).items()
    }
    try:
        return http.request(method, url, headers=headers, params=params, content=body or None)
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, live_app: LiveApp) -> None:
    with httpx.Client(timeout=30) as http:
        for authenticated in (False, True):
            request = case.as_transport_kwargs(base_url=live_app.url)
            method, url = request.pop("method"), request.pop("url")
            body = _body_bytes(request)
            if authenticated:
                _authenticate(case.path, request, body)
            response = _send(http, method, url, request, body)
            if response is None:
                continue
            assert response.status_code < 500, (
                authenticated,
                method,
                url,
                request,
                body[:300],
                response.text[:300],
            )
            if response.status_code >= 400:  # a clear error: JSON naming what is wrong
                assert "error" in response.json(), response.text[:300]
