"""The outermost ASGI guard: the `Host` a request names, and how many body bytes it may send.

It runs before FastAPI sees the request, so nothing is parsed, buffered or stored for a refused
one. The body limit is checked twice: against the declared `Content-Length` (refused before a
byte of the body is read) and while the body streams in (chunked uploads, lying lengths). The
refusal answers `Connection: close`, so the server stops reading the rest of an upload; so does
any answer given before the application read the whole body (EST refusing the code first).
A caller without a client certificate (EST, the renewal API, OCSP, a stranger) gets the tight
`limits.anonymous_body_bytes`; a logged-in one `limits.body_bytes`, the form uploads a bit more
than the largest form.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.services.content import MAX_FORM_BYTES
from certdesk.web.portal.identity import PROXY_CERT_HEADER, peer_trusted
from certdesk.web.problems import locale_of, problem_json
from certdesk.web.tls import client_certificate_der

# A form of MAX_FORM_BYTES plus the multipart envelope and the other fields.
MAX_UPLOAD_REQUEST = MAX_FORM_BYTES + 64 * 1024
UPLOAD_PATHS = frozenset({"/api/v1/forms", "/console/content/forms"})
WILDCARDS = {"", "0.0.0.0", "::"}


class BodyTooLarge(Exception):
    """Raised into the application when the streamed body passes the limit (already answered)."""


def host_name(host: str) -> str:
    """The name in a `Host` header, without the port (`[::1]:8443` → `::1`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else host


def allowed_hosts(config: Config) -> frozenset[str]:
    """`server.hostnames`, the host of `urls.base` and the address `serve` listens on."""
    names = {h.strip().lower() for h in config.server.hostnames.split(",")}
    names.add((urlsplit(config.base_url).hostname or "").lower())
    names.add(config.server.host.lower())
    return frozenset(names - WILDCARDS)


class RequestLimits:
    def __init__(self, app: Any, config: Config) -> None:
        self.app = app
        self.config = config
        self.hosts = allowed_hosts(config)

    def body_limit(self, scope: Any, headers: Headers) -> int:
        if not self.has_certificate(scope, headers):
            return self.config.limits.anonymous_body_bytes
        if scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS:
            return max(MAX_UPLOAD_REQUEST, self.config.limits.body_bytes)
        return self.config.limits.body_bytes

    def has_certificate(self, scope: Any, headers: Headers) -> bool:
        if client_certificate_der(scope) is not None:
            return True
        client = scope.get("client")
        return PROXY_CERT_HEADER in headers and peer_trusted(
            self.config.server.trusted_proxies, client[0] if client else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)

        async def refuse(exc: CertdeskError) -> None:
            locale = locale_of(headers.get("accept-language", ""))
            response = problem_json(exc, locale, headers={"connection": "close"})
            await response(scope, receive, send)

        if host_name(headers.get("host", "")) not in self.hosts:
            await refuse(CertdeskError("request.unknown_host", base=self.config.base_url))
            return
        declared = headers.get("content-length", "")
        body_done = not (declared not in ("", "0") or "transfer-encoding" in headers)
        if body_done:  # no body to count or to stop reading (GET): nothing more to watch
            await self.app(scope, receive, send)
            return
        limit = self.body_limit(scope, headers)
        too_large = CertdeskError("request.too_large", limit=limit)
        if declared.isdigit() and int(declared) > limit:
            await refuse(too_large)
            return

        received = 0
        started = refused = False

        async def counted() -> Any:
            nonlocal received, refused, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    if not started and not refused:
                        refused = True
                        await refuse(too_large)
                    raise BodyTooLarge
            return message

        async def watched(message: Any) -> None:
            nonlocal started
            if refused:  # the refusal went out; whatever the application makes of it does not
                return
            if message["type"] == "http.response.start":
                started = True
                if not body_done:  # answered before reading the body: do not drain the rest
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counted, watched)
