"""Certificate fingerprints as people compare them: SHA-256 of the DER certificate in
colon-separated upper-case hex, exactly as `openssl x509 -noout -fingerprint -sha256` prints it.

The one place certdesk formats a fingerprint: `certdesk ca show`, the portal's status and
no-certificate pages (through `services/authorities.py`) and the holder's `certdesk connect`.
"""

from __future__ import annotations

import hashlib


def sha256_hex(der: bytes) -> str:
    """Plain lower-case hex (what the holder's settings pin)."""
    return hashlib.sha256(der).hexdigest()


def colon_hex(hexdigest: str) -> str:
    """`ab12…` → `AB:12:…`."""
    return ":".join(hexdigest[i : i + 2] for i in range(0, len(hexdigest), 2)).upper()


def sha256_fingerprint(der: bytes) -> str:
    return colon_hex(sha256_hex(der))
