"""Webhook deliveries: the stored JSON body, signed with the endpoint's secret.

`X-Certdesk-Signature: sha256=<hex HMAC-SHA256 of the body>`; `X-Certdesk-Delivery` is the
outbox row's id, the same on every retry, so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import httpx

from certdesk.config import Config

TIMEOUT = 10.0


def secret_path(config: Config, endpoint: str) -> Path:
    folder = config.remind.webhook_secrets_dir or str(config.data_dir / "webhooks")
    return Path(folder) / endpoint


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post(config: Config, endpoint: str, delivery: int, body: bytes) -> None:
    """POST `body` to the endpoint; raises unless it answers 2xx."""
    url = config.remind.endpoints()[endpoint]
    secret = secret_path(config, endpoint).read_bytes().strip()
    answer = httpx.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Certdesk-Signature": signature(secret, body),
            "X-Certdesk-Delivery": str(delivery),
        },
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
