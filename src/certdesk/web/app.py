"""The FastAPI application: health, CA certificates and CRLs (the portal comes later)."""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from certdesk import __version__
from certdesk.domain.errors import CertdeskError
from certdesk.services.authorities import ISSUING, ROOT, pki_dir, require_authority
from certdesk.services.context import Context
from certdesk.services.renewal import Renewals
from certdesk.web import est, renewal_api
from certdesk.web.problems import problem_response

MEDIA = {
    ".crt": "application/pkix-cert",
    ".crl": "application/pkix-crl",
    ".pem": "application/x-pem-file",
}
DOWNLOADS = [
    "root.crt",
    "root.pem",
    "issuing.crt",
    "issuing.pem",
    "chain.pem",
    "root.crl",
    "root.crl.pem",
    "issuing.crl",
    "issuing.crl.pem",
]


class Services:
    """The use cases one server process keeps (CA key loaded once, one group committer)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @functools.cached_property
    def renewals(self) -> Renewals:
        from certdesk.services.group_commit import GroupCommitter
        from certdesk.services.issuance import Issuance

        issuance = Issuance(self.ctx)
        return Renewals(self.ctx, issuance, issue=GroupCommitter(issuance).issue)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(title="certdesk", version=__version__, docs_url="/api/docs")
    app.state.ctx = ctx
    app.state.services = Services(ctx)
    app.include_router(renewal_api.router)
    app.include_router(est.router)

    @app.exception_handler(CertdeskError)
    async def _problem(request: Request, exc: CertdeskError) -> Response:
        return problem_response(request, exc)

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        with ctx.db.read() as conn:
            issuing = require_authority(conn, ISSUING)
            root = require_authority(conn, ROOT)
        return {
            "status": "ok",
            "version": __version__,
            "root": root.subject,
            "issuing": issuing.subject,
            "crl_number": issuing.crl_number,
        }

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        state = health()
        links = "".join(
            f'<li><a href="/pki/{name}">{name}</a></li>'
            for name in DOWNLOADS
            if (pki_dir(ctx) / name).exists()
        )
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>certdesk</title></head><body>"
            f"<h1>certdesk {html.escape(state['version'])}</h1>"
            f"<p>Status 状态: {html.escape(state['status'])}</p>"
            f"<p>Root CA 根证书: {html.escape(state['root'])}<br>"
            f"Issuing CA 签发证书: {html.escape(state['issuing'])}<br>"
            f"CRL number 证书吊销列表编号: {state['crl_number']}</p>"
            f"<h2>Downloads 下载</h2><ul>{links}</ul></body></html>"
        )

    @app.get("/pki/{name}")
    def download(name: str) -> Response:
        if name not in DOWNLOADS:
            raise CertdeskError("input.invalid", detail=f"no download named {name!r}")
        path: Path = pki_dir(ctx) / name
        if not path.exists():
            raise CertdeskError("ca.not_initialised")
        media = MEDIA[".pem" if name.endswith(".pem") else path.suffix]
        return Response(path.read_bytes(), media_type=media)

    return app
