"""What is on the tokens present, read without a PIN (certificates are public objects).

Also the initial-PIN marker: a public data object the office writes when it hands a token out
with an initial PIN; changing the PIN removes it, so the holder's tool can warn until then
(the notice, rule 12) without asking the server.
"""

from __future__ import annotations

from typing import Any

import pkcs11
from pkcs11 import Attribute, ObjectClass, TokenFlag

from certdesk.domain.errors import CertdeskError
from certdesk.token.device import Device, load_module
from certdesk.token.objects import TokenCertificate, list_certificates

INITIAL_PIN_LABEL = "certdesk-initial-pin"


def present_tokens(module: str) -> list[Device]:
    """Every initialised token present now (the module is re-scanned for inserted tokens)."""
    lib = load_module(module)
    try:
        lib.reinitialize()
        slots = lib.get_slots(token_present=True)
        tokens = [slot.get_token() for slot in slots]
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError("pkcs11.error", detail=type(exc).__name__) from None
    return [Device(module, t) for t in tokens if TokenFlag.TOKEN_INITIALIZED in t.flags]


def public_certificates(device: Device) -> list[TokenCertificate]:
    try:
        with device.token.open() as session:
            return list_certificates(session)
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError("pkcs11.error", detail=type(exc).__name__) from None


def initial_pin_pending(device: Device) -> bool:
    """True while the token still has the PIN the office set (marker present)."""
    try:
        with device.token.open() as session:
            return any(True for _ in _markers(session))
    except pkcs11.PKCS11Error:
        return False


def mark_initial_pin(session: Any) -> None:
    """Called by the office when it sets a PIN the holder must change (logged-in session)."""
    if not any(True for _ in _markers(session)):
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
                Attribute.LABEL: INITIAL_PIN_LABEL,
                Attribute.APPLICATION: "certdesk",
                Attribute.VALUE: b"initial PIN not yet changed",
            }
        )


def clear_initial_pin(session: Any) -> None:
    for obj in list(_markers(session)):
        obj.destroy()


def _markers(session: Any) -> Any:
    return session.get_objects(
        {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: INITIAL_PIN_LABEL}
    )
