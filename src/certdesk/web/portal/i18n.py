"""zh-CN and en for every page: Babel catalogs (English is the source language)."""

from __future__ import annotations

import functools
import gettext
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from fastapi import Request

from certdesk.domain.messages import Locale

LOCALES = Path(__file__).parent / "locales"
COOKIE = "lang"


@functools.cache
def translations(locale: Locale) -> gettext.NullTranslations:
    """Compiled from the .po catalogs at first use (no build step, nothing generated in git).

    Each part of the portal keeps its own catalog (`portal.po`, `console.po`, …)."""
    chain: gettext.NullTranslations = gettext.NullTranslations()
    if locale == "en":
        return chain
    folder = LOCALES / locale.replace("-", "_") / "LC_MESSAGES"
    for po in sorted(folder.glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=locale.replace("-", "_"))
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        part = gettext.GNUTranslations(buffer)
        part.add_fallback(chain)
        chain = part
    return chain


def chosen_locale(request: Request) -> Locale:
    """`?lang=` (the switch), else the cookie it set, else Accept-Language."""
    for value in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if value in ("en", "zh-CN"):
            return "zh-CN" if value == "zh-CN" else "en"
    accept = request.headers.get("accept-language", "").lower()
    return "zh-CN" if accept.startswith("zh") else "en"
