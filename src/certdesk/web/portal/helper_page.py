"""The browser helper's installation page (`/helper`) and the extension as a zip, its content
script limited to this portal's origin (the extension's id stays: it comes from the `key`)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from certdesk.services.access import Principal
from certdesk.web.portal.guard import logged_in
from certdesk.web.portal.render import render

router = APIRouter(include_in_schema=False)
Me = Annotated[Principal, Depends(logged_in)]
EXTENSION = Path(__file__).parent / "extension"  # the repository's extension/ (a link)
ZIP_NAME = "certdesk-extension.zip"


def extension_zip(origin: str) -> bytes:
    """extension/ with `matches` set to this portal, so the script runs on its pages only."""
    manifest = json.loads((EXTENSION / "manifest.json").read_text(encoding="utf-8"))
    for script in manifest["content_scripts"]:
        script["matches"] = [f"{origin}/*"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("certdesk-extension/manifest.json", json.dumps(manifest, indent=2))
        for path in sorted(EXTENSION.glob("*.js")):
            archive.write(path, f"certdesk-extension/{path.name}")
    return out.getvalue()


@router.get("/helper", response_class=HTMLResponse)
def helper(request: Request, me: Me) -> Response:
    base = request.app.state.ctx.config.base_url
    return render(request, "helper.html", zip_name=ZIP_NAME, base=base)


@router.get(f"/helper/{ZIP_NAME}")
def helper_zip(request: Request, me: Me) -> Response:
    origin = request.app.state.ctx.config.base_url.rstrip("/")
    return Response(
        extension_zip(origin),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{ZIP_NAME}"'},
    )
