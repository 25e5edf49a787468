"""Server-rendered pages (Jinja2, autoescaped), in the visitor's language."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, Template, select_autoescape
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream

from certdesk.domain.messages import Locale
from certdesk.services.access import Principal
from certdesk.web.portal.display import change_rows, reason_label, short_dn
from certdesk.web.portal.i18n import COOKIE, chosen_locale, translations
from certdesk.web.portal.identity import who

TEMPLATES = Path(__file__).parent / "templates"


class TranslatedLiterals(Extension):
    """`_("a literal")` becomes its translation when the template is compiled, so Jinja writes
    it (escaped once) into the compiled page as static text: a page holds ~45 of them, and the
    call, the catalog lookup and the escaping at every render were ~15 % of its CPU.
    `_(a_variable)` is left to the `_` given at render time."""

    def filter_stream(self, stream: TokenStream) -> list[Token]:
        gettext: Callable[[str], str] = self.environment.literal_gettext  # type: ignore[attr-defined]
        tokens, out = list(stream), list[Token]()
        i = 0
        while i < len(tokens):
            call = [t.type for t in tokens[i : i + 4]]
            if (
                tokens[i].test("name:_")
                and call[1:] == ["lparen", "string", "rparen"]
                and not (out and out[-1].type == "dot")
            ):
                out.append(Token(tokens[i].lineno, "string", gettext(tokens[i + 2].value)))
                i += 4
            else:
                out.append(tokens[i])
                i += 1
        return out


@functools.cache  # one environment per language, its templates compiled with it
def environment(locale: Locale) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are part of the package: no stat() of each file per page
        extensions=[TranslatedLiterals],
    )
    env.extend(literal_gettext=translations(locale).gettext)
    env.filters["dn"] = short_dn
    env.filters["changes"] = change_rows
    env.filters["reason_label"] = reason_label
    return env


# The navigation in two groups: the holder's own pages (every one logged in; the finance demo
# pages by permission) and the office's console, shown only to those with a permission for it.
HOLDER_PAGES: list[tuple[str, str, str | None]] = [
    ("/", "Home", None),
    ("/announcements", "Announcements", None),
    ("/forms", "Forms", None),
    ("/support", "Support", None),
    ("/finance/budget", "Budget", "budget.view"),
    ("/finance/payments", "Payments", "payment.approve"),
]
# (path, label, permission): the console sections a person sees follow their permissions.
SECTIONS: list[tuple[str, str, str | None]] = [
    ("/console/people", "People", "ra.people.manage"),
    ("/console/units", "Units", "ra.units.manage"),
    ("/console/positions", "Positions and roles", "ra.positions.manage"),
    ("/console/tokens", "Tokens", "ra.tokens.manage"),
    ("/console/certificates", "Certificates", "ra.certs.manage"),
    ("/console/codes", "Enrolment codes", "ra.codes.manage"),
    ("/console/content", "Announcements and forms", "ra.content.manage"),
    ("/console/unit", "My unit", "unit.people.view"),
    ("/console/campaign", "Renewal campaign", "ra.campaign.view"),
    ("/console/unit/campaign", "Unit campaign", "unit.expiry.view"),
    ("/console/requests", "Requests", "unit.requests.file"),
    ("/console/ca", "CA", "ca.view"),
    ("/console/audit", "Audit log", "audit.view"),
]


def term_of(gettext: Callable[[str], str]) -> Callable[[str], str]:
    """A stored machine value (`carried_out`) in words: the catalog's translation, or in
    English the value spelt out ("Carried out"), so no page shows an identifier."""

    def term(value: str) -> str:
        shown = gettext(value)
        return shown if shown != value else value.replace("_", " ").capitalize()

    return term


@functools.lru_cache(maxsize=1024)  # a few sets of permissions, each on a few dozen pages
def navigation(
    locale: Locale, here: str, permissions: frozenset[str]
) -> tuple[tuple[str, tuple[tuple[str, str, bool], ...]], ...]:
    """The navigation's groups for someone with `permissions` on page `here`: (title, links),
    each link (path, label, whether the page shown is that section's)."""
    gettext = translations(locale).gettext
    groups = []
    for title, entries in (("My certificate", HOLDER_PAGES), ("Office console", SECTIONS)):
        links = tuple(
            (path, gettext(label), here == path or (path != "/" and here.startswith(path + "/")))
            for path, label, perm in entries
            if perm is None or perm in permissions
        )
        if links:
            groups.append((gettext(title), links))
    return tuple(groups)


@functools.cache  # the package's templates, compiled once (Jinja's own lookup costs ~3 %)
def _template(locale: Locale, name: str) -> Template:
    return environment(locale).get_template(name)


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    locale = chosen_locale(request)
    gettext = translations(locale).gettext
    identity = who(request)
    principal = identity if isinstance(identity, Principal) else None
    here = request.scope["path"]
    groups = navigation(locale, here, principal.permissions) if principal else ()
    csrf = request.app.state.services.access.csrf_token(principal) if principal else ""
    html = _template(locale, template).render(
        _=gettext,
        term=term_of(gettext),
        locale=locale,
        me=principal,
        nav=groups,
        csrf=csrf,
        path=here,
        **values,
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in ("en", "zh-CN"):
        response.set_cookie(COOKIE, locale, secure=True, httponly=True, samesite="strict")
    return response
