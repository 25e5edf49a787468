"""Serving HTTPS from the process itself (the embedded default)."""

from __future__ import annotations

import uvicorn

from certdesk.services.context import Context
from certdesk.services.demo import tls_paths
from certdesk.web.app import create_app


def serve(ctx: Context, host: str | None = None, port: int | None = None) -> None:
    key_path, cert_path = tls_paths(ctx)
    uvicorn.run(
        create_app(ctx),
        host=host or ctx.config.server.host,
        port=port or ctx.config.server.port,
        ssl_keyfile=str(key_path),
        ssl_certfile=str(cert_path),
        log_level="info",
    )
