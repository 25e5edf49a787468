"""The OCSP endpoint (RFC 6960 appendix A, RFC 5019): POST `<path>` with the DER request, or GET
`<path>/<base64 request, URL-escaped>`, at the path of `urls.ocsp`.

A raw ASGI application in front of the FastAPI stack: an answer known in memory is sent from the
event loop without routing, middleware or a thread; only a miss (a database read, maybe a
signature) goes to a worker thread. Whatever the input, the answer is an OCSP response (a
malformed request gets malformedRequest), never an HTTP error page.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from certdesk.services.ocsp import ERRORS, MAX_REQUEST, OcspResponder, Served

_NOT_ALLOWED = [(b"allow", b"GET, POST"), (b"content-length", b"0")]


class OcspEndpoint:
    """Answers OCSP at `path` and hands every other request to `app`."""

    def __init__(self, app: ASGIApp, responder: OcspResponder, url: str) -> None:
        self.app = app
        self.responder = responder
        self.path = urlsplit(url).path.rstrip("/") or "/ocsp"
        self.prefix = self.path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.path or path.startswith(self.prefix)):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "POST" and path == self.path:
            der = await _body(receive)
        elif method in ("GET", "HEAD"):
            der = _from_url(path[len(self.prefix) :])
        else:
            await send({"type": "http.response.start", "status": 405, "headers": _NOT_ALLOWED})
            await send({"type": "http.response.body", "body": b""})
            return
        if der is None:
            result: Served = ERRORS["malformed"]
        else:
            found = self.responder.cached(der)
            if isinstance(found, Served):
                result = found
            else:
                try:
                    result = await run_in_threadpool(self.responder.answer, found, der)
                except Exception:  # a database outage: tryLater-like, never a 500 page
                    result = ERRORS["internal"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": result.http_headers(time.time()),
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else result.der})


def _from_url(encoded: str) -> bytes | None:
    """The request from the path (already percent-decoded by the server)."""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


async def _body(receive: Receive) -> bytes | None:
    """The POST body, or None when larger than any single request."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message: Any = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)
