"""Finding a token and logging in, with refusals a holder can act on.

SoftHSM 2.6 never locks a PIN; it sets USER_PIN_COUNT_LOW after a wrong PIN. Real tokens set
USER_PIN_FINAL_TRY and USER_PIN_LOCKED too: certdesk reports whatever the token reports and
checks the locked flag before trying (a try on a locked token may count against the SO PIN on
some models).
"""

from __future__ import annotations

import ctypes
import os
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
        en, zh = module_hint(module)
        raise CertdeskError("pkcs11.no_token", token=wanted, module=module, hint=en, hint_zh=zh)
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
    """What the token says about the remaining PIN tries (en, zh-CN).

    PKCS#11 has no field for the number of tries left, only flags: FINAL_TRY (one left),
    COUNT_LOW (some wrong tries were made; how many remain is not said) and LOCKED. The
    message says exactly what the flags say and never invents a number."""
    if TokenFlag.USER_PIN_FINAL_TRY in flags:
        return (
            "1 try left: the next wrong PIN locks the token.",
            "仅剩 1 次机会：再输错一次 USB Key 将被锁定。",
        )
    if TokenFlag.USER_PIN_COUNT_LOW in flags:
        return (
            "The token reports that its count of tries is low (it does not say how many are "
            "left); take care with the next try.",
            "USB Key 提示剩余尝试次数不多（未提供具体次数），请谨慎输入。",
        )
    return (
        "The token does not report how many tries remain.",
        "该 USB Key 不提供剩余尝试次数。",
    )


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class _TokenInfo(ctypes.Structure):
    """CK_TOKEN_INFO (PKCS#11 2.40 §3.2), which python-pkcs11 reads but does not expose whole."""

    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", ctypes.c_ulong),
        ("ulMaxSessionCount", ctypes.c_ulong),
        ("ulSessionCount", ctypes.c_ulong),
        ("ulMaxRwSessionCount", ctypes.c_ulong),
        ("ulRwSessionCount", ctypes.c_ulong),
        ("ulMaxPinLen", ctypes.c_ulong),
        ("ulMinPinLen", ctypes.c_ulong),
        ("ulTotalPublicMemory", ctypes.c_ulong),
        ("ulFreePublicMemory", ctypes.c_ulong),
        ("ulTotalPrivateMemory", ctypes.c_ulong),
        ("ulFreePrivateMemory", ctypes.c_ulong),
        ("hardwareVersion", _Version),
        ("firmwareVersion", _Version),
        ("utcTime", ctypes.c_char * 16),
    ]


def pin_length(device: Device) -> tuple[int, int] | None:
    """The token's allowed PIN length (ulMinPinLen, ulMaxPinLen), or None if not known.

    Read with C_GetTokenInfo from the module python-pkcs11 already initialised (the same
    library handle); any failure only means the range is not shown.
    """
    try:
        info = _TokenInfo()
        get_info = ctypes.CDLL(device.module).C_GetTokenInfo
        if get_info(ctypes.c_ulong(device.token.slot.slot_id), ctypes.byref(info)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(info.ulMinPinLen), int(info.ulMaxPinLen)


def module_hint(module: str) -> tuple[str, str]:
    """Where to look when a module shows no token (en, zh-CN): for SoftHSM its configuration
    file (SOFTHSM2_CONF), else the module path."""
    if "softhsm" in module.lower():
        conf = os.environ.get("SOFTHSM2_CONF")
        shown = f"SOFTHSM2_CONF={conf}" if conf else "SOFTHSM2_CONF is not set"
        shown_zh = f"SOFTHSM2_CONF={conf}" if conf else "未设置 SOFTHSM2_CONF"
        return (
            f"SoftHSM finds its tokens through the file in SOFTHSM2_CONF ({shown}; default "
            "/etc/softhsm/softhsm2.conf): check that it names the token directory.",
            f"SoftHSM 通过 SOFTHSM2_CONF 指定的配置文件查找 USB Key（{shown_zh}；默认 "
            "/etc/softhsm/softhsm2.conf），请确认其中的令牌目录正确。",
        )
    return (
        "Check that this is your token's driver (CERTDESK_TOKEN_MODULE or "
        "`certdesk connect --module`).",
        "请确认这是您 USB Key 的驱动（CERTDESK_TOKEN_MODULE 或 `certdesk connect --module`）。",
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
