"""The browser's native helper without a browser: the framing on real pipes, the origin check,
the Assuan dialog with a scripted pinentry, and `certdesk-helper` as a process answering
malformed and foreign requests with codes (it never crashes)."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import scripted_pinentry
from certdesk.client.settings import ClientSettings
from certdesk.domain.errors import CertdeskError
from certdesk.helper.framing import MAX_REQUEST, EndOfInput, read_message, write_message
from certdesk.helper.host import check_origin, origin_of
from certdesk.helper.install import EXTENSION_ID, FIREFOX_ID, HOST_NAME, install
from certdesk.helper.pinentry import Dialog, Pinentry
from conftest import openssl
from softhsm import USER_PIN, SoftHSM

HELPER = str(Path(sys.executable).parent / "certdesk-helper")
EXTENSION = Path(__file__).resolve().parent.parent / "extension"
PINNED = ClientSettings("https://portal.example:8443", root_fingerprint="")


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def test_framing_round_trip_and_bounds() -> None:
    out = io.BytesIO()
    write_message(out, {"id": 1, "text": "证书"})
    raw = out.getvalue()
    assert struct.unpack("<I", raw[:4])[0] == len(raw) - 4
    assert read_message(io.BytesIO(raw)) == {"id": 1, "text": "证书"}
    with pytest.raises(EndOfInput):
        read_message(io.BytesIO(b""))
    with pytest.raises(EndOfInput):
        read_message(io.BytesIO(frame(b'{"id": 1}')[:-2]))  # cut short
    for bad in (frame(b"[1, 2]"), frame(b"\xff\xfe"), frame(b"{nope")):
        with pytest.raises(CertdeskError) as refused:
            read_message(io.BytesIO(bad))
        assert refused.value.code == "helper.bad_message"
    too_long = struct.pack("<I", MAX_REQUEST + 1)  # refused before anything is read
    with pytest.raises(CertdeskError, match="at most"):
        read_message(io.BytesIO(too_long))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://portal.example:8443", True),
        ("https://portal.example", False),
        ("http://portal.example:8443", False),
        ("https://portal.example.evil:8443", False),
        ("https://evil.example", False),
        ("https://PORTAL.example:8443", False),  # browsers give origins lower-case: exact match
        (None, False),
        (["https://portal.example:8443"], False),
    ],
)
def test_only_the_pinned_portal_origin(origin: object, allowed: bool) -> None:
    if allowed:
        check_origin(PINNED, origin)
        return
    with pytest.raises(CertdeskError) as refused:
        check_origin(PINNED, origin)
    assert refused.value.code == "helper.origin_refused"
    assert "https://portal.example:8443" in refused.value.message("en")


def test_origin_of_drops_the_default_port() -> None:
    assert origin_of("https://Portal.Example:443/path") == "https://portal.example"
    assert origin_of("https://[::1]:8443/") == "https://[::1]:8443"


def test_pinentry_dialog_over_assuan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = scripted_pinentry.write(tmp_path)
    pin_file, log = tmp_path / "pin", tmp_path / "log"
    pin_file.write_text("12%34\n")
    monkeypatch.setenv("PINENTRY_PIN_FILE", str(pin_file))
    monkeypatch.setenv("PINENTRY_LOG", str(log))
    with Pinentry(str(program)) as dialog:
        pin = dialog.get_pin(Dialog("certdesk", "https://portal.example\nline two", error="低"))
        dialog.confirm(Dialog("certdesk", "data"))
    assert pin == "12%34"  # escaped on the wire, unescaped here
    lines = log.read_text().splitlines()
    assert "SETDESC https://portal.example" in lines and "line two" in lines
    assert "SETERROR 低" in lines and "GETPIN" in lines and lines[-1] == "BYE"
    (tmp_path / "pin.cancel").touch()
    with Pinentry(str(program)) as dialog, pytest.raises(CertdeskError) as cancelled:
        dialog.confirm(Dialog("certdesk", "data"))
    assert cancelled.value.code == "helper.pin_cancelled"
    with pytest.raises(CertdeskError) as missing, Pinentry(str(tmp_path / "nothing")):
        pass
    assert missing.value.code == "helper.pinentry_failed"


def helper_run(home: Path, *payloads: bytes, **extra: str) -> list[dict[str, object]]:
    env = {**os.environ, "CERTDESK_CLIENT_HOME": str(home), **extra}
    done = subprocess.run(
        [HELPER, "chrome-extension://x/"],
        input=b"".join(payloads),
        capture_output=True,
        env=env,
        timeout=30,
        check=True,
    )
    out, answers = io.BytesIO(done.stdout), []
    while True:
        try:
            answers.append(read_message(out))
        except EndOfInput:
            return answers


def test_helper_process_refuses_with_codes(tmp_path: Path) -> None:
    home = tmp_path / "holder"
    home.mkdir()
    (home / "client.json").write_text(
        json.dumps({"server_url": "https://127.0.0.1:1", "root_fingerprint": ""})
    )

    def ask(**request: object) -> bytes:
        return frame(json.dumps(request).encode())

    answers = helper_run(
        home,
        ask(id=1, origin="https://127.0.0.1:1", command="hello"),
        ask(id=2, origin="https://evil.example", command="renew"),
        ask(id=3, origin="https://127.0.0.1:1", command="sign", data="AAAA"),
        ask(id=4, origin="https://127.0.0.1:1", command="status", serial="../../x"),
        ask(id=5, origin="https://127.0.0.1:1", command="status"),  # server and token absent
        frame(b"not json"),  # answered, and the helper reads on
        ask(id=6, origin="https://127.0.0.1:1", command="hello"),
        struct.pack("<I", 10_000_000),  # over the bound: answered once, then the helper stops
        ask(id=7, origin="https://127.0.0.1:1", command="hello"),
    )
    codes = [(a["id"], a["type"], a.get("code")) for a in answers]
    assert codes[0] == (1, "result", None)
    assert codes[1:5] == [
        (2, "error", "helper.origin_refused"),
        (3, "error", "helper.bad_message"),
        (4, "error", "helper.bad_message"),
        (5, "error", codes[4][2]),
    ]
    assert codes[4][2] in ("token.not_present", "client.server_unreachable", "pkcs11.error")
    bad = (None, "error", "helper.bad_message")
    assert codes[5:] == [bad, (6, "result", None), bad]  # nothing after the over-long one
    assert "zh-CN" in answers[1]["messages"]  # type: ignore[operator]


def test_one_operation_at_a_time(tmp_path: Path) -> None:
    """A second tab's renewal while one runs is refused (each port is its own helper process)."""
    home = tmp_path / "holder"
    home.mkdir()
    pinned = {"server_url": "https://127.0.0.1:1", "root_fingerprint": ""}
    (home / "client.json").write_text(json.dumps(pinned))
    request = {"id": 1, "origin": "https://127.0.0.1:1", "command": "renew"}
    with (home / "helper.lock").open("w") as running:
        fcntl.flock(running, fcntl.LOCK_EX)
        (busy,) = helper_run(home, frame(json.dumps(request).encode()))
    assert busy["code"] == "helper.busy"
    (after,) = helper_run(home, frame(json.dumps(request).encode()))
    assert after["code"] != "helper.busy"  # the lock went with the other process


def test_change_pin_through_the_helper(tmp_path: Path, softhsm: SoftHSM) -> None:
    """`change_pin` as the page sends it: every PIN in the (scripted) pinentry, the current one
    checked first, the new one typed twice; the token changes only when all is right."""
    softhsm.init_token("alice")
    home = tmp_path / "holder"
    home.mkdir()
    portal = "https://127.0.0.1:1"  # pinned; no server is needed to change the PIN
    (home / "client.json").write_text(json.dumps({"server_url": portal, "root_fingerprint": ""}))
    root = openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-keyout", tmp_path / "root.key", "-out", home / "root.pem"),
        *("-days", "1", "-subj", "/CN=pinned root"),
    )
    assert root.returncode == 0, root.stderr
    pins, log = tmp_path / "pins", tmp_path / "pinentry.log"
    dialogs = {
        "CERTDESK_PINENTRY": str(scripted_pinentry.write(tmp_path)),
        "PINENTRY_PIN_FILE": str(pins),
        "PINENTRY_LOG": str(log),
    }
    request = frame(json.dumps({"id": 9, "origin": portal, "command": "change_pin"}).encode())

    def change(*typed: str) -> list[dict[str, object]]:
        pins.write_text("\n".join(typed))
        log.unlink(missing_ok=True)
        return helper_run(home, request, **dialogs)

    def logs_in(pin: str) -> bool:
        try:
            softhsm.list_objects("alice", pin)
        except subprocess.CalledProcessError:
            return False
        return True

    (wrong,) = change("000000", "24681357", "24681357")
    assert wrong["code"] == "pkcs11.wrong_pin", wrong
    assert "does not say how many are left" in wrong["messages"]["en"]  # type: ignore[index]
    said = log.read_text()
    assert f"SETDESC {portal} asks to change the PIN with USB key alice." in said
    assert "SETPROMPT Current PIN / 当前 PIN 码" in said and "New PIN" not in said
    (differ,) = change(USER_PIN, "24681357", "24681358")
    assert differ["code"] == "helper.pin_mismatch" and "zh-CN" in differ["messages"]  # type: ignore[operator]
    (short,) = change(USER_PIN, "12", "12")
    assert short["code"] == "pkcs11.pin_length"
    assert "4 to 255" in short["messages"]["en"]  # type: ignore[index]
    assert logs_in(USER_PIN) and not logs_in("24681357")  # nothing changed

    changed, unrecorded = change(USER_PIN, "24681357", "24681357")
    assert changed["type"] == "progress"
    assert changed["messages"]["en"] == "PIN of token alice changed."  # type: ignore[index]
    # the registry is told in a request signed with the token's certificate: a blank token has
    # none, and that is said, not hidden (the recorded change: tests/test_browser_renewal.py)
    assert unrecorded["code"] == "token.no_certificate"
    assert logs_in("24681357") and not logs_in(USER_PIN)
    assert "SETPROMPT Repeat / 再次输入新 PIN 码" in log.read_text()


def test_install_writes_host_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    chromium = install("chromium", tmp_path / "profile", program="/opt/certdesk-helper")
    assert chromium == tmp_path / "profile" / "NativeMessagingHosts" / f"{HOST_NAME}.json"
    manifest = json.loads(chromium.read_text())
    assert manifest["allowed_origins"] == [f"chrome-extension://{EXTENSION_ID}/"]
    assert manifest["path"] == "/opt/certdesk-helper" and manifest["type"] == "stdio"
    firefox = json.loads(install("firefox", program="/opt/certdesk-helper").read_text())
    assert firefox["allowed_extensions"] == [FIREFOX_ID]
    assert (tmp_path / ".mozilla/native-messaging-hosts" / f"{HOST_NAME}.json").exists()


def test_extension_id_comes_from_its_key() -> None:
    """Chromium's id: sha256 of the DER public key in `key`, 32 hex digits written a-p."""
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    digest = hashlib.sha256(base64.b64decode(manifest["key"])).hexdigest()[:32]
    assert "".join(chr(ord("a") + int(c, 16)) for c in digest) == EXTENSION_ID
    assert manifest["permissions"] == ["nativeMessaging"]  # nothing more
