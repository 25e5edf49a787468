"""The holder changes the token's PIN and the office's registry is told (rule 12).

One path for `certdesk token change-pin` and the browser helper's `change_pin`: the current
PIN is checked first (a wrong one is said with the tries left, before the new PIN is asked
for), the new one must fit the token's length range, then the registry records the change in
a request signed on the token.
"""

from __future__ import annotations

from collections.abc import Callable

from certdesk.client.renewal import Say, TokenRenewal
from certdesk.client.server import Server
from certdesk.client.settings import ClientSettings
from certdesk.token.device import Device, open_session
from certdesk.token.pin import change_pin, check_pin, require_pin_length


def change_token_pin(
    device: Device,
    old_pin: str,
    ask_new: Callable[[], str],
    settings: ClientSettings | None,
    say: Say,
) -> str | None:
    """Change the PIN; the registry's token serial once it recorded it (None: not connected)."""
    check_pin(device, old_pin)
    new_pin = ask_new()
    require_pin_length(device, new_pin)
    change_pin(device, old_pin, new_pin)
    say(f"PIN of token {device.label} changed.", f"USB Key {device.label} 的 PIN 码已修改。")
    if settings is None:
        return None
    with Server(settings) as server, open_session(device, new_pin) as session:
        token = TokenRenewal(server, device, session, say).report_pin_changed()
    say(
        f"The office's registry records the change for token {token}.",
        f"受理点已登记 USB Key {token} 的 PIN 码修改。",
    )
    return token
