"""In-process portal clients: the application with a client certificate in the TLS scope,
as `certdesk serve`'s TLS layer puts it there (web/tls.py)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI
from fastapi.testclient import TestClient

from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance


class WithCertificate:
    """ASGI wrapper: every request arrives as if the TLS client sent `der` (None: nothing)."""

    def __init__(self, app: FastAPI, der: bytes | None) -> None:
        self.app = app
        self.der = der

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": self.der}
        await self.app(scope, receive, send)


def client_for(app: FastAPI, der: bytes | None, lang: str = "en") -> TestClient:
    """A browser-like client (asks for HTML) presenting certificate `der`."""
    headers = {"Accept": "text/html", "Accept-Language": lang}
    return TestClient(WithCertificate(app, der), base_url="https://testserver", headers=headers)


def issue_for(ctx: Context, person_id: str, issuance: Issuance | None = None) -> bytes:
    """A personal certificate for `person_id` (file key); its DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    issued = (issuance or Issuance(ctx)).issue(OfficerEnrolment(ctx, person_id, key.public_key()))
    return issued.certificate.public_bytes(Encoding.DER)
