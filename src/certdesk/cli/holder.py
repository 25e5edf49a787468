"""The holder's commands: `connect`, `token list|change-pin|unblock`, `renew`.

They run on the holder's machine: they import the token and client sides and the pure domain,
never the server's store or services.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.cli.output import ask_secret, ask_yes, emit_json, progress, say, table, warn
from certdesk.client.pin import change_token_pin
from certdesk.client.renewal import TokenRenewal
from certdesk.client.server import Server, fetch_root_unverified, fingerprint
from certdesk.client.settings import ClientSettings, load_settings, module_from_env, token_module
from certdesk.client.status import refuse_too_early, token_row
from certdesk.domain.errors import CertdeskError
from certdesk.domain.fingerprints import colon_hex
from certdesk.helper.install import BROWSERS, install, windows_step
from certdesk.token.device import find_token, module_hint, open_session
from certdesk.token.inventory import present_tokens, public_certificates
from certdesk.token.pin import check_pin, require_pin_length, unblock

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
LabelOpt = Annotated[
    str | None, typer.Option("--label", help="Token label (default: the only token present)")
]
PinOpt = Annotated[str | None, typer.Option(help="Token PIN (asked for if missing)")]


CONNECT_HELP = (
    "Pin the server's root CA after showing its name and fingerprint (the trust prompt).\n\n"
    "The server's URL, the pinned root (root.pem) and the token's module (client.json) are "
    "kept in $CERTDESK_CLIENT_HOME, default ~/.config/certdesk. Connecting again replaces "
    "them: give a second server or checkout its own CERTDESK_CLIENT_HOME. "
    "See docs/holder-tool.md."
)


def connect(
    url: Annotated[str, typer.Argument(help="The certdesk server, e.g. https://127.0.0.1:8443")],
    yes: Annotated[bool, typer.Option("--yes", help="Trust the root CA without asking")] = False,
    expect: Annotated[
        str | None,
        typer.Option("--fingerprint", help="Trust only a root with this SHA-256 fingerprint"),
    ] = None,
    module: Annotated[str | None, typer.Option(help="PKCS#11 module of your token")] = None,
) -> None:
    """Pin the server's root CA after showing its name and fingerprint (the trust prompt)."""
    url = url.strip().rstrip("/")
    if not url.lower().startswith("https://"):
        rest = url.split("://", 1)[-1]
        raise CertdeskError("client.not_https", url=url, suggestion=f"https://{rest}")
    root = fetch_root_unverified(url)
    got = fingerprint(root)
    say(
        f"Root CA: {root.subject.rfc4514_string()}\nSHA-256 fingerprint: {colon_hex(got)}",
        f"根证书：{root.subject.rfc4514_string()}\nSHA-256 指纹：{colon_hex(got)}",
    )
    if expect is not None:
        wanted = expect.replace(":", "").lower()
        if wanted != got:
            raise CertdeskError("client.fingerprint_mismatch", got=got, expected=wanted)
    elif not yes and not ask_yes(
        "Trust this root CA? / 是否信任此根证书？", "--yes", "certdesk connect"
    ):
        raise CertdeskError("client.untrusted")
    old = load_settings(required=False)
    settings = ClientSettings(
        url,
        got,
        module or module_from_env() or (old.module if old else token_module()),
    )
    settings.save(root.public_bytes(Encoding.PEM))
    with Server(settings) as server:
        health = server.health()  # the TLS chain now verifies against the pinned root
    window = health.get("renewal_window_days")
    if isinstance(window, int) and window != settings.renewal_window_days:
        settings = dataclasses.replace(settings, renewal_window_days=window)
        settings.save(root.public_bytes(Encoding.PEM))
    say(f"Connected to {settings.server_url}.", f"已连接到 {settings.server_url}。")


def token_list(as_json: JsonOpt = False) -> None:
    """Every token present, the certificates on it and when each one's renewal window opens."""
    module = token_module()
    settings = load_settings(required=False)
    window = dt.timedelta(days=settings.renewal_window_days if settings else 30)
    now = dt.datetime.now(dt.UTC)
    devices = present_tokens(module)
    if not devices:
        en, zh = module_hint(module)
        raise CertdeskError("token.not_present", module=module, hint=en, hint_zh=zh)
    rows: list[dict[str, Any]] = []
    for device in devices:
        certs = public_certificates(device)
        if not certs:
            rows.append(token_row(device, None, now, window))
        rows.extend(token_row(device, c.certificate, now, window) for c in certs)
    if as_json:
        emit_json(rows)
        return
    table(
        "Tokens present / 当前 USB Key",
        ["token", "holder", "unit", "serial", "valid until", "days left", "renewal", "PIN"],
        [
            [
                f"{r['label']} ({r['token_serial']})",
                r["holder"],
                r["unit"],
                r["serial"],
                r["not_after"][:16] if r["not_after"] else "",
                r["days_left"],
                r["renewal"],
                "initial: change it!" if r["initial_pin"] else "changed",
            ]
            for r in rows
        ],
    )
    if any(r["renewal"].startswith("window open") for r in rows):
        progress(
            "Only the dates on the token are read here; `certdesk renew` asks the office "
            "whether the certificate is still active (not revoked).",
            "此处仅读取 USB Key 中证书的日期；证书是否仍有效（未被吊销）由 `certdesk renew` "
            "向受理点查询。",
        )
    if any(r["initial_pin"] for r in rows):
        warn(
            "A token still has its initial PIN: run `certdesk token change-pin`.",
            "USB Key 仍在使用初始 PIN 码，请运行 `certdesk token change-pin` 修改。",
        )


def token_change_pin(
    label: LabelOpt = None,
    old_pin: Annotated[str | None, typer.Option(help="Current PIN")] = None,
    new_pin: Annotated[str | None, typer.Option(help="New PIN")] = None,
) -> None:
    """Replace the initial PIN; the registry is told (in a request signed on the token)."""
    device = find_token(token_module(), label=label)
    old = old_pin or ask_secret("Current PIN / 当前 PIN 码")
    settings = load_settings(required=False)

    def ask_new() -> str:
        return new_pin or ask_secret("New PIN / 新 PIN 码", confirm=True)

    if change_token_pin(device, old, ask_new, settings, say) is None:
        warn(
            "Not connected to a server: run `certdesk connect URL`, then change the PIN again "
            "so the office records it.",
            "尚未连接服务器：请运行 `certdesk connect URL` 后再次修改 PIN 码，以便受理点登记。",
        )


def token_unblock(
    label: LabelOpt = None,
    so_pin: Annotated[str | None, typer.Option(help="Security officer PIN")] = None,
    new_pin: Annotated[str | None, typer.Option(help="New user PIN")] = None,
) -> None:
    """Officer: reset a locked user PIN with the SO PIN (the holder must change it after)."""
    device = find_token(token_module(), label=label)
    so = so_pin or ask_secret("SO PIN / 管理员 PIN 码")
    check_pin(device, so, so=True)
    new = new_pin or ask_secret("New user PIN / 新用户 PIN 码", confirm=True)
    require_pin_length(device, new)
    unblock(device, so, new)
    say(
        f"Token {device.label} unblocked; the holder must change the PIN.",
        f"USB Key {device.label} 已解锁，持有人须修改 PIN 码。",
    )


def _show_profile(yes: bool) -> Any:
    def show(profile: dict[str, Any]) -> None:
        cert = profile["certificate"]
        table(
            "Your registered data (read-only) / 您的登记信息（只读）",
            ["field / 项目", "value / 内容"],
            [
                ["name / 姓名", profile["name"]],
                ["unit / 单位", profile["unit"]],
                ["position / 岗位", profile["position"]],
                ["e-mail / 邮箱", profile["email"]],
                ["certificate / 证书", cert["serial"]],
                ["valid until / 有效期至", cert["not_after"][:16]],
            ],
            to_stderr=True,
        )
        progress(
            f"If anything is wrong, do not renew: the office corrects it ({profile['support']}).",
            f"如信息有误，请勿更新，并联系证书受理点更正（{profile['support']}）。",
        )
        if profile["token"]["pin_changed"] is False:
            warn(
                "Your token still has its initial PIN: run `certdesk token change-pin`.",
                "您的 USB Key 仍在使用初始 PIN 码，请运行 `certdesk token change-pin` 修改。",
            )
        allowed = profile["renewal"]["allowed"]
        if (
            allowed
            and not yes
            and not ask_yes(
                "Renew now with this data? / 使用以上信息更新证书？", "--yes", "certdesk renew"
            )
        ):
            raise CertdeskError("client.untrusted")

    return show


def renew(
    label: LabelOpt = None,
    pin: PinOpt = None,
    pickup: Annotated[
        bool, typer.Option("--pickup", help="Install a certificate already issued, do not renew")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before renewing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Renew the certificate on your token (only in the last month of its validity)."""
    settings = load_settings()
    assert settings is not None
    device = find_token(settings.module, label=label)
    if not pickup:
        refuse_too_early(settings, device)  # before the PIN is asked for
    secret = pin or ask_secret("Token PIN / USB Key PIN 码")
    with Server(settings) as server, open_session(device, secret) as session:
        flow = TokenRenewal(server, device, session, progress)
        outcome = flow.pickup() if pickup else flow.renew(_show_profile(yes))
    cert = outcome.certificate
    if as_json:
        emit_json(
            {
                "serial": outcome.serial,
                "superseded": outcome.superseded,
                "not_before": cert.not_valid_before_utc.isoformat(),
                "not_after": cert.not_valid_after_utc.isoformat(),
            }
        )
        return
    start, end = f"{cert.not_valid_before_utc:%Y-%m-%d}", f"{cert.not_valid_after_utc:%Y-%m-%d}"
    say(
        f"Renewed: certificate {outcome.serial}, valid {start} – {end}. "
        "Remove the old certificate from your browser if it kept a copy.",
        f"更新成功：证书 {outcome.serial}，有效期 {start} 至 {end}。"
        "如浏览器中保存了旧证书，请将其删除。",
    )


def helper_install(
    browser: Annotated[
        str, typer.Option("--browser", help="chromium, chrome, edge or firefox")
    ] = "chromium",
    user_data_dir: Annotated[
        Path | None,
        typer.Option(
            "--user-data-dir", help="A browser profile folder of its own (Chromium family)"
        ),
    ] = None,
) -> None:
    """Let the browser start `certdesk-helper` for the certdesk extension (Renew now)."""
    if browser not in BROWSERS:
        raise typer.BadParameter(f"one of {', '.join(BROWSERS)}", param_hint="--browser")
    target = install(browser, user_data_dir)
    say(f"Wrote {target}.", f"已写入 {target}。")
    progress(
        f"On Windows, register the manifest instead: {windows_step(browser)}",
        f"Windows 上请改为注册该清单：{windows_step(browser)}",
    )


def register(app: typer.Typer, token_app: typer.Typer) -> None:
    helper_app = typer.Typer(help="The browser's helper for renewing from the portal.")
    helper_app.command("install")(helper_install)
    app.add_typer(helper_app, name="helper")
    app.command("connect", help=CONNECT_HELP)(connect)
    app.command("renew")(renew)
    token_app.command("list")(token_list)
    token_app.command("change-pin")(token_change_pin)
    token_app.command("unblock")(token_unblock)
