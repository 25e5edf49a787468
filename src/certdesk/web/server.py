"""Serving HTTPS from the process itself (the embedded default), asking for client certificates."""

from __future__ import annotations

import uvicorn

from certdesk.services.authorities import pki_dir
from certdesk.services.context import Context
from certdesk.services.demo import tls_paths
from certdesk.web.app import create_app
from certdesk.web.tls import ClientCertProtocol, context_factory


def serve(ctx: Context, host: str | None = None, port: int | None = None) -> None:
    key_path, cert_path = tls_paths(ctx)
    uvicorn.run(
        create_app(ctx),
        host=host or ctx.config.server.host,
        port=port or ctx.config.server.port,
        http=ClientCertProtocol,
        ssl_certfile=str(cert_path),
        ssl_context_factory=context_factory(
            str(cert_path), str(key_path), str(pki_dir(ctx) / "chain.pem")
        ),
        log_level="info",
    )
