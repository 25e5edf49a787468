"""Who a personal certificate names: always taken from the registry, never from a request."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from certdesk.domain.errors import CertdeskError

# Upper bounds of X.520 attributes (RFC 5280 appendix A, checked by pkilint), in characters
UB_NAME = 64  # ub-common-name, ub-organizational-unit-name, ub-organization-name
UB_SERIAL_NUMBER = 64  # ub-serial-number: person ids are the subject's serialNumber
UB_EMAIL = 255  # ub-emailaddress-length
UB_PHONE = 32  # ub-telephone-number
# Person ids are a PrintableString (serialNumber) and unit codes end up in paths and URLs:
# letters and digits, with single dots or hyphens between them (no "../", no "/", no spaces)
CODE = re.compile(r"[A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*")
# Codes of positions and roles, and permissions (`ra.people.manage`, `it_contact`): also in
# console paths, so the same letters plus single underscores
KEY = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
# control, format (bidi overrides, zero-width), surrogate, private-use, unassigned, line and
# paragraph separators: nothing a reader of a certificate subject or a log could see or trust
FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def checked_text(field: str, value: str, limit: int, *, required: bool = True) -> str:
    """`value` stripped and in Unicode NFC, or a refusal: empty when required, a character that
    must not appear in a name (CR, LF, ESC, bidi overrides…), longer than `limit` characters.
    Chinese names (张三, 广西财政厅预算处) are ordinary letters."""
    text = unicodedata.normalize("NFC", value.strip())
    if required and not text:
        raise CertdeskError("input.invalid", detail=f"{field} must not be empty")
    if any(unicodedata.category(ch) in FORBIDDEN for ch in text):
        raise CertdeskError("input.bad_characters", field=field)
    if len(text) > limit:
        raise CertdeskError("input.too_long", field=field, limit=limit)
    return text


def checked_code(field: str, value: str) -> str:
    """A person id or unit code: the pattern `CODE`, at most 64 characters."""
    if len(value) > UB_SERIAL_NUMBER or not CODE.fullmatch(value):
        raise CertdeskError("input.bad_code", field=field, value=value[:80])
    return value


def checked_key(field: str, value: str) -> str:
    """A position or role code, or a permission: the pattern `KEY`, at most 64 characters."""
    key = value.strip()
    if len(key) > UB_NAME or not KEY.fullmatch(key):
        raise CertdeskError("input.bad_key", field=field, value=value[:80])
    return key


def checked_email(value: str) -> str:
    """An e-mail address as it can go into a certificate (IA5String): printable ASCII, no
    spaces, one @ with something on both sides."""
    email = value.strip()
    local, at, domain = email.partition("@")
    printable = all("!" <= ch <= "~" for ch in email)
    if not (at and local and domain and "@" not in domain and printable):
        raise CertdeskError("input.invalid", detail=f"e-mail address {value[:80]!r}")
    if len(email) > UB_EMAIL:
        raise CertdeskError("input.too_long", field="e-mail", limit=UB_EMAIL)
    return email


@dataclass(frozen=True)
class PersonIdentity:
    person_id: str
    name: str
    unit_name: str
    organisation: str
    country: str
    email: str

    def subject_attributes(self) -> tuple[tuple[str, str], ...]:
        """Subject as (attribute, value) pairs, most significant first (C O OU CN serialNumber)."""
        return (
            ("C", self.country),
            ("O", self.organisation),
            ("OU", self.unit_name),
            ("CN", self.name),
            ("serialNumber", self.person_id),
        )


@dataclass(frozen=True)
class Mismatch:
    field: str
    asked: str
    registered: str


def identity_mismatch(
    identity: PersonIdentity, attributes: list[tuple[str, str]], emails: list[str]
) -> Mismatch | None:
    """The first thing a request asks for that the registry does not say (None: nothing).

    A request may leave its subject empty or repeat the registry's data; anything else is an
    attempt to change the identity, which only the office may do (the notice, rule 6).
    """
    registered = dict(identity.subject_attributes())
    registered["emailAddress"] = identity.email
    for name, value in attributes:
        if registered.get(name, "") != value:
            return Mismatch(name, value, registered.get(name, ""))
    for email in emails:
        if email.lower() != identity.email.lower():
            return Mismatch("email", email, identity.email)
    return None
