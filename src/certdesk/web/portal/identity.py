"""Where the client certificate comes from: our own TLS layer, or a trusted reverse proxy.

Behind nginx the verified certificate arrives URL-encoded in a header; it is believed only when
the connection comes from an address in `server.trusted_proxies`. Either way `Access.identify`
checks chain, dates and state again.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import Request

from certdesk.services.access import Access, LoginRefusal, Principal
from certdesk.web.tls import client_certificate_der

PROXY_CERT_HEADER = "x-ssl-client-cert"


@functools.lru_cache(maxsize=256)  # a few proxies and peers: parsed once, not per request
def peer_trusted(proxies: str, host: str | None) -> bool:
    """Whether the TCP peer `host` is one of `server.trusted_proxies`."""
    if not proxies or host is None:
        return False
    try:
        peer = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(p.strip(), strict=False) for p in proxies.split(","))


@functools.lru_cache(maxsize=4096)  # the same holders come back: decode each header once
def header_der(header: str) -> bytes:
    """The DER of the certificate nginx forwarded (URL-encoded PEM); b"\\x00" if unreadable:
    present but unreadable means "not ours", never "no certificate"."""
    try:
        cert = x509.load_pem_x509_certificate(unquote(header).encode())
    except ValueError:
        return b"\x00"
    return cert.public_bytes(Encoding.DER)


def trusted_proxy(request: Request) -> bool:
    proxies = request.app.state.ctx.config.server.trusted_proxies
    return peer_trusted(proxies, request.client.host if request.client else None)


def client_der(request: Request) -> bytes | None:
    der = client_certificate_der(request.scope)
    if der is not None:
        return der
    header = request.headers.get(PROXY_CERT_HEADER)
    if header and trusted_proxy(request):
        return header_der(header)
    return None


def who(request: Request) -> Principal | LoginRefusal:
    """Identify once per request (kept on the request)."""
    known: Principal | LoginRefusal | None = getattr(request.state, "who", None)
    if known is None:
        known = request.state.who = access(request).identify(client_der(request))
    return known


async def who_async(request: Request) -> Principal | LoginRefusal:
    """`who` on the event loop (`Access.identify_async`): what the login dependency uses."""
    known: Principal | LoginRefusal | None = getattr(request.state, "who", None)
    if known is None:
        known = request.state.who = await access(request).identify_async(client_der(request))
    return known


def access(request: Request) -> Access:
    """The process's `Access` (identification and authorisation)."""
    found: Access = request.app.state.services.access
    return found
