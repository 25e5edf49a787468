"""PKCS#11 URIs (RFC 7512): how certdesk names tokens and the keys and certificates on them.

Pure parsing, no PKCS#11 library: both the CA (HSM keys) and the holder's tool use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from urllib.parse import quote, unquote_to_bytes

from certdesk.domain.errors import CertdeskError

_PATH_ATTRS = ("token", "manufacturer", "serial", "model", "object", "type", "id")
_QUERY_ATTRS = ("pin-value", "pin-source", "module-path", "module-name")
_TYPES = {"cert", "data", "private", "public", "secret-key"}


@dataclass(frozen=True)
class Pkcs11Uri:
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    pin_value: str | None = field(default=None, repr=False)  # never shown in logs
    pin_source: str | None = None
    module_path: str | None = None
    module_name: str | None = None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """Parse `pkcs11:path-attrs[?query-attrs]`; vendor and unknown attributes are refused.

        Libraries such as libp11 also accept query attributes in the path (`;pin-value=`);
        certdesk accepts that form too so URIs from those tools work unchanged.
        """
        if not uri.startswith("pkcs11:"):
            raise CertdeskError(
                "pkcs11.bad_uri", uri=_redact(uri), detail="must start with pkcs11:"
            )
        body = uri[len("pkcs11:") :]
        path, _, query = body.partition("?")
        values: dict[str, str | bytes] = {}
        for part, sep in ((path, ";"), (query, "&")):
            for item in filter(None, part.split(sep)):
                name, eq, raw = item.partition("=")
                if not eq:
                    raise CertdeskError(
                        "pkcs11.bad_uri", uri=_redact(uri), detail=f"{name!r} has no value"
                    )
                if name not in _PATH_ATTRS + _QUERY_ATTRS:
                    raise CertdeskError(
                        "pkcs11.bad_uri", uri=_redact(uri), detail=f"unknown attribute {name!r}"
                    )
                if name in values:
                    raise CertdeskError(
                        "pkcs11.bad_uri", uri=_redact(uri), detail=f"{name!r} given twice"
                    )
                decoded = unquote_to_bytes(raw)
                try:
                    values[name] = decoded if name == "id" else decoded.decode("utf-8")
                except UnicodeDecodeError:
                    raise CertdeskError(
                        "pkcs11.bad_uri", uri=_redact(uri), detail=f"{name!r} is not UTF-8"
                    ) from None
        if "type" in values and values["type"] not in _TYPES:
            raise CertdeskError(
                "pkcs11.bad_uri", uri=_redact(uri), detail=f"type {values['type']!r} unknown"
            )
        return cls(**{k.replace("-", "_"): v for k, v in values.items()})  # type: ignore[arg-type]

    def __str__(self) -> str:
        path: list[str] = []
        query: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            name = f.name.replace("_", "-")
            text = (
                "".join(f"%{b:02x}" for b in value)
                if isinstance(value, bytes)
                else quote(value, safe="")
            )
            (path if name in _PATH_ATTRS else query).append(f"{name}={text}")
        return "pkcs11:" + ";".join(path) + ("?" + "&".join(query) if query else "")

    def without_pin(self) -> Pkcs11Uri:
        """The same URI minus the PIN, for storing and showing."""
        return Pkcs11Uri(**{**self.__dict__, "pin_value": None})


def _redact(uri: str) -> str:
    """Error messages never echo a PIN."""
    out = []
    for part in uri.replace("?", ";?;").split(";"):
        out.append("pin-value=***" if part.startswith("pin-value=") else part)
    return ";".join(out).replace(";?;", "?")
