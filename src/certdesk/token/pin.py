"""PIN management: the holder changes the initial PIN; an officer unblocks with the SO PIN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pkcs11

from certdesk.domain.errors import CertdeskError
from certdesk.token.device import Device, open_session, pin_length
from certdesk.token.inventory import clear_initial_pin, mark_initial_pin


def check_pin(device: Device, pin: str, *, so: bool = False) -> None:
    """Log in and out: a wrong PIN is refused now (with what the token says of the tries left),
    before the holder is asked for anything else."""
    with open_session(device, pin, so=so):
        pass


def _length_refusal(device: Device, pin: str, allowed: tuple[int, int]) -> CertdeskError:
    return CertdeskError(
        "pkcs11.pin_length",
        token=device.label,
        minimum=allowed[0],
        maximum=allowed[1],
        length=len(pin),
    )


def require_pin_length(device: Device, pin: str) -> None:
    """Refuse a new PIN outside the token's range (ulMinPinLen..ulMaxPinLen) before trying it."""
    allowed = pin_length(device)
    if allowed is not None and not allowed[0] <= len(pin) <= allowed[1]:
        raise _length_refusal(device, pin, allowed)


@contextmanager
def _new_pin_checked(device: Device, new_pin: str) -> Iterator[None]:
    require_pin_length(device, new_pin)
    try:
        yield
    except pkcs11.PinLenRange:
        allowed = pin_length(device)
        if allowed is None:
            raise CertdeskError(
                "pkcs11.pin_refused", token=device.label, detail="PIN length out of range"
            ) from None
        raise _length_refusal(device, new_pin, allowed) from None
    except (pkcs11.PinInvalid, pkcs11.PinTooWeak) as exc:
        raise CertdeskError(
            "pkcs11.pin_refused", token=device.label, detail=type(exc).__name__
        ) from None


def change_pin(device: Device, old_pin: str, new_pin: str) -> None:
    """The holder replaces the PIN the office set; the initial-PIN marker goes with it."""
    if new_pin == old_pin:
        raise CertdeskError("input.invalid", detail="the new PIN must differ from the old one")
    with open_session(device, old_pin) as session, _new_pin_checked(device, new_pin):
        session.set_pin(old_pin, new_pin)
        clear_initial_pin(session)


def unblock(device: Device, so_pin: str, new_user_pin: str) -> None:
    """Reset the user PIN with the SO PIN (C_InitPIN), e.g. after the holder locked the token."""
    with open_session(device, so_pin, so=True) as session, _new_pin_checked(device, new_user_pin):
        session.init_pin(new_user_pin)
    with open_session(device, new_user_pin) as session:
        mark_initial_pin(session)  # the office chose this PIN: the holder must change it
