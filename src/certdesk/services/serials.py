"""Certificate serials as people type them: hex with or without colons/0x, or (where one is
asked on the command line) a unique prefix of at least `MIN_PREFIX` hex digits, as git accepts
an abbreviated commit id."""

from __future__ import annotations

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.store import certificates as cert_store

MIN_PREFIX = 6
SHOWN_CANDIDATES = 10


def normalise_serial(serial: str) -> str:
    """Serials are accepted as hex with or without colons/0x; stored lowercase without zeros."""
    cleaned = serial.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return format(int(cleaned, 16), "x")
    except ValueError:
        raise CertdeskError(
            "input.invalid", detail=f"serial {serial!r} is not hexadecimal"
        ) from None


def resolve_serial(conn: Connection, serial: str) -> str:
    """The full serial of the one certificate whose serial is `serial` or starts with it.

    An exact serial always wins; a prefix must have `MIN_PREFIX` hex digits and match one
    certificate, else the refusal lists the candidates (ambiguous) or says none matches.
    """
    wanted = normalise_serial(serial)
    if cert_store.get(conn, wanted) is not None:
        return wanted
    if len(wanted) < MIN_PREFIX:
        raise CertdeskError(
            "cert.serial_too_short", serial=wanted, digits=len(wanted), minimum=MIN_PREFIX
        )
    found = cert_store.serials_starting(conn, wanted, SHOWN_CANDIDATES + 1)
    if not found:
        raise CertdeskError("cert.not_found", serial=wanted)
    if len(found) > 1:
        shown = found[:SHOWN_CANDIDATES] + (["…"] if len(found) > SHOWN_CANDIDATES else [])
        raise CertdeskError("cert.ambiguous_serial", serial=wanted, candidates=", ".join(shown))
    return found[0]
