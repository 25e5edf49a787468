"""`/api/docs`: Swagger UI for `/openapi.json`, from files shipped in a PyPI package.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script; the portal's
Content-Security-Policy (`web/portal/security.py`: scripts and styles from 'self' only) blocks
both, and a CDN is not there offline. Here the page is plain HTML that names three files of our
origin: Swagger UI's bundle and stylesheet as the `fastapi-offline` wheel ships them (installed
with certdesk; nothing is downloaded at run time), and `static/api-docs.js`, which starts it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from certdesk import __version__
from certdesk.domain.errors import CertdeskError

router = APIRouter(include_in_schema=False)
ASSETS = Path(str(files("fastapi_offline") / "static"))
SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>certdesk {__version__} — API</title>
<link rel="icon" href="/api/docs/favicon.png">
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


@router.get("/api/docs", response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/api/docs/{name}")
def docs_asset(name: str) -> FileResponse:
    if name not in SERVED:
        raise CertdeskError("input.invalid", detail=f"no file named {name!r}")
    return FileResponse(
        ASSETS / name, media_type=SERVED[name], headers={"Cache-Control": "max-age=86400"}
    )
