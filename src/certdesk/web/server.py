"""Serving the application: HTTPS from the process itself (the embedded default, asking for
client certificates), or plain HTTP on loopback for a reverse proxy (nginx) in front.

uvicorn's proxy-header rewriting is off in both shapes: `X-Forwarded-For` from a loopback peer
would otherwise change `request.client`, the address `server.trusted_proxies` is checked against.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import pki_dir
from certdesk.services.context import Context
from certdesk.services.ocsp import OcspResponder
from certdesk.services.server_tls import tls_paths
from certdesk.web.app import create_app
from certdesk.web.connections import bounded
from certdesk.web.limits import RequestLimits
from certdesk.web.ocsp import OcspEndpoint
from certdesk.web.tls import ClientCertProtocol, context_factory


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def claim_port(config: Config) -> socket.socket:
    """Bind the listening socket first, before `serve` touches the database or any file: a port
    already taken is refused with `server.port_in_use` (not uvicorn's raw `[Errno 98]` after the
    start-up work), and the socket is handed to uvicorn, so nothing can take it in between."""
    host, port = config.server.host, config.server.port
    if not config.server.tls and not is_loopback(host):
        raise CertdeskError(
            "config.invalid",
            detail=f"plain HTTP (server.tls = false, --plain-http) listens on loopback "
            f"only, not on {host}; a reverse proxy on this machine terminates TLS",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CertdeskError("server.port_in_use", host=host, port=port) from None
        raise CertdeskError(
            "server.cannot_listen", host=host, port=port, detail=exc.strerror or str(exc)
        ) from None
    return sock


def application(ctx: Context, ocsp: OcspResponder) -> ASGIApp:
    """What a server runs: OCSP answered in front of the FastAPI application, both behind the
    request limits (also the entry point of `bench/stack.py`, which measures server stacks)."""
    return RequestLimits(
        OcspEndpoint(create_app(ctx, ocsp), ocsp, ctx.config.url("ocsp")), ctx.config
    )


def serve(ctx: Context, listener: socket.socket, ocsp: OcspResponder) -> None:
    """Run the application on the socket `claim_port` bound: OCSP answered in front of it, both
    behind the request limits, with no `server` banner.

    With its own TLS, connections get the bounds of `[limits]` (request-head time, how many).
    Behind nginx (plain HTTP on loopback) nginx bounds them (`client_header_timeout`,
    `worker_connections`), uvicorn's faster httptools parser takes the requests, and nginx's
    access log is the log of requests (a line per request here cost ~5 % of a page's CPU)."""
    limits = ctx.config.limits
    common: dict[str, Any] = {
        "app": application(ctx, ocsp),
        "proxy_headers": False,
        "server_header": False,
        "timeout_keep_alive": limits.keepalive_seconds,
        "log_level": "info",
        "access_log": ctx.config.server.tls,
    }
    if not ctx.config.server.tls:
        config = uvicorn.Config(**common)
    else:
        key_path, cert_path = tls_paths(ctx)
        config = uvicorn.Config(
            **common,
            http=bounded(ClientCertProtocol, limits),
            ssl_certfile=str(cert_path),
            ssl_context_factory=context_factory(
                str(cert_path), str(key_path), str(pki_dir(ctx) / "chain.pem")
            ),
        )
    uvicorn.Server(config).run(sockets=[listener])
