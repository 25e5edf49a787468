"""PIN management: the holder changes the initial PIN; an officer unblocks with the SO PIN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pkcs11

from certdesk.domain.errors import CertdeskError
from certdesk.token.device import Device, open_session
from certdesk.token.inventory import clear_initial_pin, mark_initial_pin


@contextmanager
def _new_pin_checked() -> Iterator[None]:
    try:
        yield
    except (pkcs11.PinLenRange, pkcs11.PinInvalid, pkcs11.PinTooWeak) as exc:
        detail = f"the token refuses the new PIN ({type(exc).__name__})"
        raise CertdeskError("input.invalid", detail=detail) from None


def change_pin(device: Device, old_pin: str, new_pin: str) -> None:
    """The holder replaces the PIN the office set; the initial-PIN marker goes with it."""
    if new_pin == old_pin:
        raise CertdeskError("input.invalid", detail="the new PIN must differ from the old one")
    with open_session(device, old_pin) as session, _new_pin_checked():
        session.set_pin(old_pin, new_pin)
        clear_initial_pin(session)


def unblock(device: Device, so_pin: str, new_user_pin: str) -> None:
    """Reset the user PIN with the SO PIN (C_InitPIN), e.g. after the holder locked the token."""
    with open_session(device, so_pin, so=True) as session, _new_pin_checked():
        session.init_pin(new_user_pin)
    with open_session(device, new_user_pin) as session:
        mark_initial_pin(session)  # the office chose this PIN: the holder must change it
