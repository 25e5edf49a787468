"""`certdesk-helper`: the native messaging host the portal's extension starts.

Each request is `{"id", "origin", "command", ...}`; `origin` is the page's origin as the
browser gave it to the extension (`sender.origin`), which the page cannot forge. The helper
serves only the portal it is pinned to (`certdesk connect`), talks only to that server, and
knows five narrow commands: `hello`, `status` (no PIN), `renew`, `pickup` and `change_pin`
(every PIN typed in the helper's own pinentry dialog, never in the page). Answers: `progress`
lines, then one `result` or `error` with the same codes and zh-CN/en messages as the CLI.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from pkcs11 import TokenFlag

from certdesk import __version__
from certdesk.client.pin import change_token_pin
from certdesk.client.renewal import RenewalOutcome, TokenRenewal
from certdesk.client.server import Server
from certdesk.client.settings import ClientSettings, client_home, load_settings
from certdesk.client.status import refuse_too_early, server_window, token_row
from certdesk.domain.errors import CertdeskError
from certdesk.helper.framing import EndOfInput, TooLong, read_message, write_message
from certdesk.helper.pinentry import Dialog, Pinentry, pinentry_program
from certdesk.token.device import Device, find_token, module_hint, open_session, tries_left
from certdesk.token.inventory import present_tokens, public_certificates

COMMANDS = ("hello", "status", "renew", "pickup", "change_pin")
HEX = frozenset("0123456789abcdef")
Send = Callable[[dict[str, Any]], None]


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as browsers write an origin (default port left out)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{scheme}://{host}{port}"


def check_origin(settings: ClientSettings, origin: object) -> None:
    """Only the pinned portal's pages may use the helper."""
    pinned = origin_of(settings.server_url)
    if origin != pinned:  # browsers write origins in this form: the exact string
        raise CertdeskError("helper.origin_refused", origin=str(origin)[:200], pinned=pinned)


def validate(message: dict[str, Any]) -> tuple[str, str | None]:
    """The command and the optional certificate serial the page is logged in with."""
    command, serial = message.get("command"), message.get("serial")
    if command not in COMMANDS:
        raise CertdeskError("helper.bad_message", detail=f"unknown command {str(command)[:40]!r}")
    if serial is not None and not (
        isinstance(serial, str)
        and 0 < len(serial) <= 40
        and all(c in "0123456789abcdef" for c in serial)
    ):
        raise CertdeskError("helper.bad_message", detail="serial must be lower-case hex")
    return command, serial


@contextlib.contextmanager
def one_at_a_time() -> Iterator[None]:
    """One operation on the token at a time, across tabs (each port is its own process)."""
    home = client_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "helper.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CertdeskError("helper.busy") from None
        yield


def choose_token(module: str, serial: str | None) -> Device:
    """The token holding the page's certificate, else the only token present."""
    devices = present_tokens(module)
    if not devices:
        en, zh = module_hint(module)
        raise CertdeskError("token.not_present", module=module, hint=en, hint_zh=zh)
    if serial is not None:
        for device in devices:
            if any(
                format(c.certificate.serial_number, "x") == serial
                for c in public_certificates(device)
            ):
                return device
    return devices[0] if len(devices) == 1 else find_token(module)


class Helper:
    """One request at a time for one pinned portal."""

    def __init__(self, settings: ClientSettings, send: Send) -> None:
        self.settings = settings
        self.send = send

    def handle(self, message: dict[str, Any]) -> None:
        ident = message.get("id")
        ident = ident if isinstance(ident, int | str) and len(str(ident)) <= 64 else None
        try:
            check_origin(self.settings, message.get("origin"))
            command, serial = validate(message)
            origin = str(message["origin"])
            if command == "hello":
                result: dict[str, Any] = {"version": __version__, "portal": origin}
            elif command == "status":
                result = self.status(serial)
            elif command == "change_pin":
                with one_at_a_time():
                    result = self.change_pin(origin, serial, ident)
            else:
                with one_at_a_time():
                    result = self.renew(origin, serial, ident, pickup=command == "pickup")
        except CertdeskError as exc:
            self.send(error(ident, exc))
            return
        except Exception as exc:  # never crash on a page's request: answer with a code
            traceback.print_exc(file=sys.stderr)
            self.send(error(ident, CertdeskError("helper.failed", detail=type(exc).__name__)))
            return
        self.send({"id": ident, "type": "result", "result": result})

    def status(self, serial: str | None) -> dict[str, Any]:
        """What the token holds, read without a PIN; the window's length is the server's."""
        device = choose_token(self.settings.module, serial)
        window = server_window(self.settings)
        now = dt.datetime.now(dt.UTC)
        certs = public_certificates(device)
        rows = [token_row(device, c.certificate, now, window) for c in certs]
        return {
            "token": device.label,
            "certificates": rows or [token_row(device, None, now, window)],
        }

    def progress(self, ident: Any) -> Callable[[str, str], None]:
        def say(en: str, zh: str) -> None:
            self.send({"id": ident, "type": "progress", "messages": {"en": en, "zh-CN": zh}})

        return say

    def renew(self, origin: str, serial: str | None, ident: Any, *, pickup: bool) -> dict[str, Any]:
        device = choose_token(self.settings.module, serial)
        if not pickup:
            refuse_too_early(self.settings, device)  # before the PIN is asked for
        flags = unlocked(device)
        say = self.progress(ident)

        with Pinentry(pinentry_program(self.settings.pinentry)) as dialog:
            pin = dialog.get_pin(pin_dialog(origin, device, flags, "pickup" if pickup else "renew"))
            with Server(self.settings) as server, open_session(device, pin) as session:
                flow = TokenRenewal(server, device, session, say)
                if pickup:
                    outcome = flow.pickup()
                else:

                    def confirm(profile: dict[str, Any]) -> None:
                        """The registered data before anything is made (as `certdesk renew`)."""
                        renewal = profile["renewal"]
                        if renewal["allowed"] and not renewal["pending"]:
                            dialog.confirm(data_dialog(origin, profile))

                    outcome = flow.renew(confirm)
        return outcome_dict(outcome)

    def change_pin(self, origin: str, serial: str | None, ident: Any) -> dict[str, Any]:
        """As `certdesk token change-pin`, each PIN in a dialog naming the asking portal."""
        device = choose_token(self.settings.module, serial)
        flags = unlocked(device)
        asks = (
            f"{origin} asks to change the PIN of USB key {device.label}.\n"
            f"{origin} 请求修改 USB Key {device.label} 的 PIN 码。"
        )
        with Pinentry(pinentry_program(self.settings.pinentry)) as dialog:
            old = dialog.get_pin(pin_dialog(origin, device, flags, "change_pin"))

            def ask_new() -> str:
                new = dialog.get_pin(Dialog("certdesk", asks, "New PIN / 新 PIN 码"))
                again = dialog.get_pin(Dialog("certdesk", asks, "Repeat / 再次输入新 PIN 码"))
                if new != again:
                    raise CertdeskError("helper.pin_mismatch", token=device.label)
                return new

            token = change_token_pin(device, old, ask_new, self.settings, self.progress(ident))
        return {"token": device.label, "recorded": token}


def unlocked(device: Device) -> TokenFlag:
    """The token's flags; a locked PIN is said before any dialog opens."""
    flags = device.flags()
    if TokenFlag.USER_PIN_LOCKED in flags:
        raise CertdeskError("pkcs11.pin_locked", token=device.label)
    return flags


ASKS = {  # what the page asks for, as the PIN dialog says it
    "renew": ("renew your certificate", "更新您的证书"),
    "pickup": ("install the renewed certificate", "安装已签发的更新证书"),
    "change_pin": ("change the PIN", "修改 PIN 码"),
}


def pin_dialog(origin: str, device: Device, flags: TokenFlag, command: str) -> Dialog:
    """The PIN (the current one for change_pin) with the asking origin and the token's holders."""
    what, what_zh = ASKS[command]
    holders = ", ".join(c.certificate.subject.rfc4514_string() for c in public_certificates(device))
    error = ""
    if TokenFlag.USER_PIN_COUNT_LOW in flags or TokenFlag.USER_PIN_FINAL_TRY in flags:
        en, zh = tries_left(flags)
        error = f"{en} / {zh}"
    return Dialog(
        title="certdesk",
        description=(
            f"{origin} asks to {what} with USB key {device.label}.\n{holders}\n"
            f"{origin} 请求使用 USB Key {device.label} {what_zh}。"
        ),
        prompt="Current PIN / 当前 PIN 码" if command == "change_pin" else "PIN / PIN 码",
        error=error,
    )


def data_dialog(origin: str, profile: dict[str, Any]) -> Dialog:
    """The registered data, read-only (rule 6): confirm it, or cancel and call the office."""
    return Dialog(
        title="certdesk",
        description=(
            f"{origin}\n"
            f"Name / 姓名: {profile['name']}\nUnit / 单位: {profile['unit']}\n"
            f"Position / 岗位: {profile['position']}\nE-mail / 邮箱: {profile['email']}\n"
            f"Wrong data? Cancel and call the office / 信息有误请取消并联系受理点: "
            f"{profile['support']}"
        ),
        prompt="Renew with this data? / 使用以上信息更新证书？",
    )


def error(ident: Any, exc: CertdeskError) -> dict[str, Any]:
    return {"id": ident, "type": "error", "code": exc.code, "messages": exc.messages()}


def outcome_dict(outcome: RenewalOutcome) -> dict[str, Any]:
    cert = outcome.certificate
    return {
        "serial": outcome.serial,
        "superseded": outcome.superseded,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until the browser closes the port."""

    def send(message: dict[str, Any]) -> None:
        write_message(stdout, message)

    while True:
        try:
            message = read_message(stdin)
        except EndOfInput:
            return
        except TooLong as exc:  # not read: the stream cannot be resynchronised
            send(error(None, exc))
            return
        except CertdeskError as exc:
            send(error(None, exc))
            continue
        try:
            settings = load_settings()
        except CertdeskError as exc:
            send(
                {
                    "id": message.get("id"),
                    "type": "error",
                    "code": exc.code,
                    "messages": exc.messages(),
                }
            )
            continue
        assert settings is not None
        Helper(settings, send).handle(message)


def main() -> None:
    serve(sys.stdin.buffer, sys.stdout.buffer)
