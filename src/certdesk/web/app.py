"""The FastAPI application: portal pages, renewal API, EST, CA certificates and CRLs."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from certdesk import __version__
from certdesk.domain.errors import CertdeskError
from certdesk.services import pki_files
from certdesk.services.access import Access
from certdesk.services.authorities import (
    ISSUING,
    ROOT,
    require_authority,
    root_fingerprint,
)
from certdesk.services.content import RecentAnnouncements
from certdesk.services.context import Context
from certdesk.services.enrolment import Enrolment, Issue, IssuedCertificate
from certdesk.services.group_commit import Pipeline
from certdesk.services.issuance import InFlight, Issuance
from certdesk.services.ocsp import OcspResponder
from certdesk.services.renewal import Renewals
from certdesk.web import api, api_docs, est, renewal_api
from certdesk.web.portal import (
    console_campaign,
    console_certs,
    console_content,
    console_oversight,
    console_positions,
    console_registry,
    console_requests,
    console_tokens,
    helper_page,
    pages,
)
from certdesk.web.portal.i18n import chosen_locale, translations
from certdesk.web.portal.render import render
from certdesk.web.portal.security import SecurityHeaders
from certdesk.web.problems import http_error, problem_response, validation_error
from certdesk.web.threads import Threads

MEDIA = {
    ".crt": "application/pkix-cert",
    ".crl": "application/pkix-crl",
    ".pem": "application/x-pem-file",
}
STATIC = Path(__file__).parent / "portal" / "static"
HEADINGS = {
    "login": "You are not logged in",
    "access": "Not allowed",
    "input": "The request was not accepted",
    "request": "The request was not accepted",
}


class Services:
    """The use cases one server process keeps (CA key loaded once, one group committer).

    With the process's OCSP responder (`serve`), what is issued is recorded with its first OCSP
    response."""

    def __init__(self, ctx: Context, ocsp: OcspResponder | None = None) -> None:
        self.ctx = ctx
        self.ocsp = ocsp

    @functools.cached_property
    def issuance(self) -> Issuance:
        return Issuance(self.ctx, answers=self.ocsp.answers_for if self.ocsp else None)

    @functools.cached_property
    def pipeline(self) -> Pipeline[Enrolment, IssuedCertificate, InFlight]:
        """Every route that issues goes through this one group committer."""
        return Pipeline(self.issuance.advance, self.issuance.sign)

    @property
    def issue(self) -> Issue:
        return self.pipeline.run

    @functools.cached_property
    def renewals(self) -> Renewals:
        return Renewals(
            self.ctx,
            self.issuance,
            issue=self.issue,
            submit=self.pipeline.submit,
            group_confirmations=True,
            answers=self.ocsp.answers_for if self.ocsp else None,
        )

    @functools.cached_property
    def access(self) -> Access:
        return Access(self.ctx)

    @functools.cached_property
    def announcements(self) -> RecentAnnouncements:
        return RecentAnnouncements(self.ctx)

    def stop(self) -> None:
        """On shutdown: write the refusals counted in the current window and the OCSP files
        not written yet."""
        if "renewals" in self.__dict__:  # made on first use
            self.renewals.refusals.flush()
        if self.ocsp is not None:
            self.ocsp.file_published()


def wants_html(request: Request) -> bool:
    """Pages answer refusals with a page; the API, EST and scripts get problem+json."""
    if request.url.path.startswith(("/api/", "/.well-known/", "/healthz", "/livez", "/pki/")):
        return False
    return "text/html" in request.headers.get("accept", "")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At start, the thread budget for FastAPI's own blocking routes: a few threads (40, anyio's
    default, made them contend for the interpreter lock: 1.4–1.8× the CPU per page of 4 under
    load), as many as `web/threads.py` keeps for requests, and the event loop's own database
    connections (the logins'). At shutdown, the work under way ends, the services stop (the
    refusals counted so far are written) and those connections close."""
    to_thread.current_default_thread_limiter().total_tokens = app.state.ctx.config.server.threads
    await app.state.ctx.db.open_async()
    yield
    app.state.threads.stop()
    app.state.services.stop()
    await app.state.ctx.db.close_async()  # the logins' connections of this event loop


def create_app(ctx: Context, ocsp: OcspResponder | None = None) -> FastAPI:
    # The API docs are served by web/api_docs.py from files in the package (no CDN, no inline
    # script), within the portal's Content-Security-Policy; FastAPI's own pages are off.
    app = FastAPI(
        title="certdesk", version=__version__, docs_url=None, redoc_url=None, lifespan=_lifespan
    )
    app.state.ctx = ctx
    app.state.services = Services(ctx, ocsp)
    app.state.threads = Threads(ctx.config)  # lifespan or not

    @app.exception_handler(CertdeskError)
    async def _problem(request: Request, exc: CertdeskError) -> Response:
        return answer_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        answer = answer_problem(request, http_error(request, exc), status=exc.status_code)
        answer.headers.update(exc.headers or {})  # e.g. Allow on 405
        return answer

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> Response:
        error, errors = validation_error(exc)
        return answer_problem(request, error, status=422, extra={"errors": errors})

    def answer_problem(
        request: Request,
        exc: CertdeskError,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        if not wants_html(request):
            return problem_response(request, exc, status, extra)
        locale = chosen_locale(request)
        return render(
            request,
            "problem.html",
            status=status or exc.status,
            code=exc.code,
            heading=translations(locale).gettext(HEADINGS.get(exc.code.split(".")[0], "Error")),
            message=exc.message(locale),
            serial=exc.params.get("serial"),
            by=exc.params.get("by"),
            # the page that says "install the root" gives what to check it against
            root_fingerprint=root_fingerprint(ctx) if exc.code == "login.no_certificate" else None,
        )

    @app.get("/livez")
    async def live() -> dict[str, str]:
        """The process answers (a load balancer's liveness probe): no database, no thread."""
        return {"status": "ok"}

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        with ctx.db.read() as conn:
            issuing = require_authority(conn, ISSUING)
            root = require_authority(conn, ROOT)
        return {
            "status": "ok",
            "version": __version__,
            "root": root.subject,
            "root_fingerprint": root.fingerprint,
            "issuing": issuing.subject,
            "crl_number": issuing.crl_number,
            # the holder's tool checks the window before it asks for the PIN
            "renewal_window_days": ctx.config.policy.renewal_window_days,
        }

    @app.get("/status", response_class=HTMLResponse)
    def status(request: Request) -> Response:
        """No login needed: the CA, its CRL number and the downloads."""
        links = pki_files.downloads(ctx)
        return render(request, "status.html", state=health(), downloads=links)

    @app.get("/pki/{name}")
    def download(name: str) -> Response:
        data = pki_files.download(ctx, name)
        if data is None:
            raise CertdeskError("input.invalid", detail=f"no download named {name!r}")
        media = MEDIA[".pem" if name.endswith(".pem") else Path(name).suffix]
        return Response(data, media_type=media)

    # Routes are matched in order, each at some cost: the application's own few first.
    app.include_router(renewal_api.router)
    app.include_router(est.router)
    app.include_router(pages.router)
    app.include_router(helper_page.router)
    app.include_router(api.router)
    app.include_router(api_docs.router)
    for console in (
        console_registry,
        console_tokens,
        console_certs,
        console_content,
        console_oversight,
        console_campaign,
        console_requests,
        console_positions,
    ):
        app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
    return app
