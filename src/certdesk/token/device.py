"""Finding a token and logging in, with refusals a holder can act on.

SoftHSM 2.6 never locks a PIN; it sets USER_PIN_COUNT_LOW after a wrong PIN. Real tokens set
USER_PIN_FINAL_TRY and USER_PIN_LOCKED too: certdesk reports whatever the token reports and
checks the locked flag before trying (a try on a locked token may count against the SO PIN on
some models).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11 import TokenFlag

from certdesk.domain.errors import CertdeskError

_LIBS: dict[str, Any] = {}


def load_module(module: str) -> Any:
    """Load (once per process) a PKCS#11 module; a missing or broken one is a clear refusal."""
    if module not in _LIBS:
        try:
            _LIBS[module] = pkcs11.lib(module)
        except (RuntimeError, OSError, pkcs11.PKCS11Error) as exc:
            raise CertdeskError("pkcs11.module_missing", module=module, detail=str(exc)) from None
    return _LIBS[module]


def rescan() -> None:
    """Initialise every loaded module again so that newly inserted tokens are seen.

    Sessions opened before are closed by this; signers that keep one log in again.
    """
    for lib in _LIBS.values():
        lib.reinitialize()


@dataclass(frozen=True)
class Device:
    """A token found through a module; `token` is python-pkcs11's Token."""

    module: str
    token: Any

    @property
    def label(self) -> str:
        return str(self.token.label)

    @property
    def serial(self) -> str:
        raw = self.token.serial
        return (raw.decode() if isinstance(raw, bytes) else str(raw)).strip()

    @property
    def model(self) -> str:
        return str(self.token.model).strip()

    def flags(self) -> TokenFlag:
        """The token's flags as of now (PIN counters change after each try)."""
        return TokenFlag(find_token(self.module, label=self.label).token.flags)


def find_token(module: str, label: str | None = None, serial: str | None = None) -> Device:
    """The token with this label and/or serial, or the only token present."""
    wanted = label or serial or "(any)"
    try:
        found = _matching(module, label, serial)
    except CertdeskError:  # e.g. the token store went away under a loaded module
        found = []
    if not found:
        # A token inserted (or created) after the module was loaded is only seen after the
        # library is initialised again.
        load_module(module).reinitialize()
        found = _matching(module, label, serial)
    if not found:
        raise CertdeskError("pkcs11.no_token", token=wanted)
    if len(found) > 1:
        raise CertdeskError(
            "pkcs11.error", detail=f"{len(found)} tokens match {wanted!r}; name one by its label"
        )
    return found[0]


def _matching(module: str, label: str | None, serial: str | None) -> list[Device]:
    try:
        tokens = [s.get_token() for s in load_module(module).get_slots(token_present=True)]
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError("pkcs11.error", detail=type(exc).__name__) from None
    return [
        Device(module, t)
        for t in tokens
        if TokenFlag.TOKEN_INITIALIZED in t.flags
        and (label is None or t.label == label)
        and (serial is None or Device(module, t).serial == serial)
    ]


def tries_left(flags: TokenFlag) -> tuple[str, str]:
    """What the token says about the remaining PIN tries (en, zh-CN)."""
    if TokenFlag.USER_PIN_FINAL_TRY in flags:
        return "One try left before the token locks.", "仅剩最后一次机会，再错将锁定 USB Key。"
    if TokenFlag.USER_PIN_COUNT_LOW in flags:
        return "Few tries are left before the token locks.", "剩余尝试次数不多，USB Key 即将锁定。"
    return (
        "This token does not report how many tries remain.",
        "该 USB Key 不提供剩余尝试次数。",
    )


def login(device: Device, pin: str, *, so: bool = False) -> Any:
    """A logged-in read-write session (user PIN, or the SO PIN with `so=True`); caller closes."""
    locked = TokenFlag.SO_PIN_LOCKED if so else TokenFlag.USER_PIN_LOCKED
    if locked in device.flags():
        raise CertdeskError("pkcs11.pin_locked", token=device.label)
    try:
        if so:
            session = device.token.open(rw=True, so_pin=pin)
        else:
            session = device.token.open(rw=True, user_pin=pin)
    except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid):
        flags = device.flags()
        if locked in flags:
            raise CertdeskError("pkcs11.pin_locked", token=device.label) from None
        en, zh = tries_left(flags)
        raise CertdeskError("pkcs11.wrong_pin", token=device.label, tries=en, tries_zh=zh) from None
    except pkcs11.PinLocked:
        raise CertdeskError("pkcs11.pin_locked", token=device.label) from None
    except pkcs11.UserAlreadyLoggedIn:
        # PKCS#11 login is per application and token: another session of this process (e.g.
        # the root and the issuing key on one HSM token) already logged in; share that login.
        session = device.token.open(rw=True)
    except (pkcs11.TokenNotPresent, pkcs11.DeviceRemoved):
        raise CertdeskError("pkcs11.no_token", token=device.label) from None
    except pkcs11.PKCS11Error as exc:
        raise CertdeskError("pkcs11.error", detail=type(exc).__name__) from None
    return session


@contextmanager
def open_session(device: Device, pin: str, *, so: bool = False) -> Iterator[Any]:
    session = login(device, pin, so=so)
    try:
        yield session
    finally:
        session.close()
