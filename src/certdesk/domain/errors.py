"""Typed errors with stable codes; every refusal says why in zh-CN and en.

A `CertdeskError` carries a code (stable, used as the problem+json `type` and by scripts) and
parameters; the human text comes from the catalog in `certdesk.domain.messages`.
"""

from __future__ import annotations

from typing import Any

from certdesk.domain.messages import CATALOG, Locale, render


class CertdeskError(Exception):
    """Base of all refusals. `code` is stable; `params` fill the message templates."""

    def __init__(self, code: str, /, **params: Any) -> None:
        if code not in CATALOG:
            raise KeyError(f"unknown error code {code!r}")
        self.code = code
        self.params = params
        super().__init__(self.message("en"))

    @property
    def status(self) -> int:
        return CATALOG[self.code].status

    def message(self, locale: Locale) -> str:
        return render(self.code, locale, self.params)

    def messages(self) -> dict[str, str]:
        return {"en": self.message("en"), "zh-CN": self.message("zh-CN")}
