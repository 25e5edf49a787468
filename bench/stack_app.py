"""The application exactly as `certdesk serve --plain-http` runs it, as a factory that other
ASGI servers import (`bench/stack.py`); configured from the environment (CERTDESK_*)."""

from __future__ import annotations

from starlette.types import ASGIApp

from certdesk.config import load_config
from certdesk.services.context import Context
from certdesk.services.ocsp import OcspResponder
from certdesk.web.server import application


def make() -> ASGIApp:
    ctx = Context.open(load_config(None), actor="bench")
    return application(ctx, OcspResponder(ctx))
