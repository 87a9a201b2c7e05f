"""The real app with every webhook configured, and requests signed the way each provider signs
them, computed here with hashlib/hmac (never with the project's own signing functions)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from config.settings import Settings

MO = "/webhooks/sms/kannel"
DLR = "/webhooks/sms/kannel/dlr"
BOT = "/webhooks/zalo/bot"
OA = "/webhooks/zalo/oa"

MO_TOKEN = "mo-token-security-0123"
BOT_SECRET = "bot-secret-security-0123"
OA_APP_ID = "3051234567890123456"
OA_KEY = "oa-secret-key-security"
APP_SECRET = "app-secret-security-0"
BRANDNAME_SECRET = "brandname-callback-security-0123"


def configured(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "KANNEL_MO_TOKEN": MO_TOKEN,
            "ZALO_BOT_SECRET_TOKEN": BOT_SECRET,
            "ZALO_OA_APP_ID": OA_APP_ID,
            "ZALO_OA_SECRET_KEY": OA_KEY,
            "ZALO_APP_SECRET": APP_SECRET,
            "BRANDNAME_CALLBACK_SECRET": BRANDNAME_SECRET,
        }
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def oa_mac(raw: str, timestamp: str, key: str = OA_KEY, app_id: str = OA_APP_ID) -> str:
    """Zalo's X-ZEvent-Signature: hex sha256(app_id + body + timestamp + key), computed here."""
    return hashlib.sha256(f"{app_id}{raw}{timestamp}{key}".encode()).hexdigest()


def brandname_signature(body: bytes, timestamp: str, secret: str = BRANDNAME_SECRET) -> str:
    """The brandname API's X-Brandname-Signature: v1=hex HMAC-SHA256(secret, ts + "." + body)."""
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def dlr_token_vector(secret: str, ref: str) -> str:
    """The per-message dlr-url token, computed here: HMAC-SHA256(secret, "kannel-dlr:" + ref)[:32]."""
    return hmac.new(secret.encode(), f"kannel-dlr:{ref}".encode(), hashlib.sha256).hexdigest()[:32]


def oa_event(msg_id: str = "oa-msg-1", timestamp: int | str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "app_id": OA_APP_ID,
        "event_name": "user_send_text",
        "sender": {"id": "2468013579246801357"},
        "recipient": {"id": "4301234567890123456"},
        "message": {"msg_id": msg_id, "text": "Tốt"},
        "timestamp": str(now_ms() if timestamp is None else timestamp),
        **extra,
    }


def signed_oa(raw: str, timestamp: str) -> dict[str, str]:
    return {"X-ZEvent-Signature": f"mac={oa_mac(raw, timestamp)}", "Content-Type": "application/json"}


def bot_event(message_id: str = "bot-msg-1", text: str = "5") -> dict[str, Any]:
    return {
        "event_name": "message.text.received",
        "message": {
            "from": {"id": "6ede9afa66b88fe6d6a9", "display_name": "Dan", "is_bot": False},
            "chat": {"id": "6ede9afa66b88fe6d6a9", "chat_type": "PRIVATE"},
            "text": text,
            "message_id": message_id,
            "date": now_ms(),
        },
    }


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
