"""Serving the application: HTTPS from the process itself (the embedded default, asking for
client certificates), or plain HTTP on loopback for a reverse proxy (nginx) in front.

uvicorn's proxy-header rewriting is off in both shapes: `X-Forwarded-For` from a loopback peer
would otherwise change `request.client`, the address `server.trusted_proxies` is checked against.
"""

from __future__ import annotations

import ipaddress

import uvicorn

from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import pki_dir
from certdesk.services.context import Context
from certdesk.services.server_tls import tls_paths
from certdesk.web.app import create_app
from certdesk.web.tls import ClientCertProtocol, context_factory


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: Context, host: str | None = None, port: int | None = None, tls: bool | None = None
) -> None:
    host = host or ctx.config.server.host
    port = port or ctx.config.server.port
    if not (ctx.config.server.tls if tls is None else tls):
        if not is_loopback(host):
            raise CertdeskError(
                "config.invalid",
                detail=f"plain HTTP (server.tls = false, --plain-http) listens on loopback "
                f"only, not on {host}; a reverse proxy on this machine terminates TLS",
            )
        uvicorn.run(create_app(ctx), host=host, port=port, proxy_headers=False, log_level="info")
        return
    key_path, cert_path = tls_paths(ctx)
    uvicorn.run(
        create_app(ctx),
        host=host,
        port=port,
        http=ClientCertProtocol,
        ssl_certfile=str(cert_path),
        ssl_context_factory=context_factory(
            str(cert_path), str(key_path), str(pki_dir(ctx) / "chain.pem")
        ),
        proxy_headers=False,
        log_level="info",
    )
