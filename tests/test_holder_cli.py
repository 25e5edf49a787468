"""The holder's commands as a person meets them: the real `certdesk` in subprocesses, a SoftHSM
token, a real `certdesk serve` where a server is needed, and a pseudo-terminal for the prompts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from softhsm import SO_PIN, USER_PIN, SoftHSM
from test_cli import CERTDESK, PASSPHRASE, Desk, assert_refused, flat
from test_web import free_port, serving


class HolderDesk(Desk):
    """The office and the holder's machine in one directory, the token in SoftHSM."""

    def __init__(self, home: Path, **server_env: str) -> None:
        super().__init__(home)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.server_env = server_env

    def env(self, lang: str, passphrase: str, extra: dict[str, str]) -> dict[str, str]:
        base = {
            "SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"],
            "CERTDESK_SERVER_PORT": str(self.port),
            "CERTDESK_URLS_BASE": self.url,
            "CERTDESK_CLIENT_HOME": str(self.home / "holder"),
            **self.server_env,
        }
        return super().env(lang, passphrase, {**base, **extra})

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with serving(self.home, self.env("C.UTF-8", PASSPHRASE, {}), self.port):
            yield


class Terminal:
    """`certdesk` on a pseudo-terminal: read what it prints, type when it asks."""

    def __init__(self, desk: Desk, *args: str) -> None:
        self.controller, terminal = os.openpty()
        self.proc = subprocess.Popen(
            [str(CERTDESK), *args],
            cwd=desk.home,
            env=desk.env("C.UTF-8", PASSPHRASE, {}),
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,  # no controlling terminal: getpass uses this one
        )
        os.close(terminal)
        self.seen = ""
        self.read_to = 0  # what `expect` has already matched

    def expect(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` is printed after what was matched before (a prompt asked again
        must be awaited again: getpass flushes what was typed before it asks)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.read_to :]:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; the terminal shows:\n{self.seen}"
            ready, _, _ = select.select([self.controller], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.controller, 4096)
                except OSError:  # the command exited and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"exited before {text!r}:\n{self.seen}")
                self.seen += chunk.decode(errors="replace")
        self.read_to = self.seen.index(text, self.read_to) + len(text)
        return self.seen

    # Click prints a hidden prompt, then getpass turns echo off (flushing what was typed) and
    # prints the final ": " — so tests wait for "Prompt: " before they type.

    def type(self, line: str) -> None:
        os.write(self.controller, line.encode() + b"\n")

    def finish(self) -> tuple[int, str]:
        with contextlib.suppress(AssertionError):
            self.expect("\0", timeout=60)  # read to the end
        code = self.proc.wait(timeout=60)
        os.close(self.controller)
        return code, flat(self.seen)


@pytest.fixture
def holder(tmp_path: Path, softhsm: SoftHSM) -> HolderDesk:
    softhsm.init_token("alice")
    return HolderDesk(tmp_path)


# -- no server needed ---------------------------------------------------------------------------


def test_connect_needs_https_and_says_when_the_server_is_unreachable(holder: HolderDesk) -> None:
    plain = holder.run("connect", f"http://127.0.0.1:{holder.port}/")
    assert_refused(plain, 2, "client.not_https", "HTTPS only", f"https://127.0.0.1:{holder.port}")
    dead = holder.run("connect", holder.url, "--yes")  # nothing listens on the port
    assert_refused(
        dead, 7, "client.connect_failed", f"The certdesk server at {holder.url} is unreachable"
    )
    assert "--pickup" not in dead.stderr
    zh = holder.run("connect", holder.url, "--yes", lang="zh_CN.UTF-8")
    assert_refused(zh, 7, "client.connect_failed", f"无法连接 certdesk 服务器 {holder.url}")
    assert not (holder.home / "holder" / "client.json").exists()


def test_no_token_names_the_module_and_softhsm2_conf(holder: HolderDesk, tmp_path: Path) -> None:
    empty = tmp_path / "no-tokens"
    empty.mkdir()
    conf = tmp_path / "empty-softhsm2.conf"
    conf.write_text(f"directories.tokendir = {empty}\n", encoding="utf-8")
    listed = holder.run("token", "list", SOFTHSM2_CONF=str(conf))
    assert_refused(
        listed,
        4,
        "token.not_present",
        "/usr/lib/softhsm/libsofthsm2.so",
        f"SOFTHSM2_CONF={conf}",
        "token directory",
    )
    named = holder.run("token", "change-pin", "--label", "bob", SOFTHSM2_CONF=str(conf))
    assert_refused(named, 4, "pkcs11.no_token", "'bob'", f"SOFTHSM2_CONF={conf}")
    zh = holder.run("token", "list", SOFTHSM2_CONF=str(conf), lang="zh_CN.UTF-8")
    assert_refused(zh, 4, "token.not_present", "未检测到 USB Key", f"SOFTHSM2_CONF={conf}")


def test_change_pin_checks_the_old_pin_first_and_the_new_pins_length(holder: HolderDesk) -> None:
    # wrong current PIN and no new PIN given: the wrong PIN is what is said (not "give the new
    # PIN"), with what SoftHSM's flags say about the tries (it gives no number)
    wrong = holder.run("token", "change-pin", "--label", "alice", "--old-pin", "000000")
    assert_refused(wrong, 5, "pkcs11.wrong_pin", "Wrong PIN for token 'alice'")
    assert "it does not say how many are left" in flat(wrong.stderr)
    assert "Few tries are left" not in wrong.stderr
    # a new PIN outside the token's range: the range the token gives (SoftHSM: 4 to 255)
    short = holder.run(
        "token", "change-pin", "--label", "alice", "--old-pin", USER_PIN, "--new-pin", "12"
    )
    assert_refused(short, 2, "pkcs11.pin_length", "PINs of 4 to 255 characters", "has 2")
    assert "PinLenRange" not in short.stderr
    long = holder.run(
        "token", "change-pin", "--label", "alice", "--old-pin", USER_PIN, "--new-pin", "9" * 256
    )
    assert_refused(long, 2, "pkcs11.pin_length", "4 to 255", "has 256")
    zh = holder.run(
        "token",
        "change-pin",
        "--label",
        "alice",
        "--old-pin",
        USER_PIN,
        "--new-pin",
        "12",
        lang="zh_CN.UTF-8",
    )
    assert_refused(zh, 2, "pkcs11.pin_length", "长度须为 4 至 255 位")
    # nothing changed: the old PIN still works, the SO's unblock refuses a short PIN too
    unblock = holder.run(
        "token", "unblock", "--label", "alice", "--so-pin", SO_PIN, "--new-pin", "1"
    )
    assert_refused(unblock, 2, "pkcs11.pin_length", "4 to 255")
    holder.ok(
        "token", "change-pin", "--label", "alice", "--old-pin", USER_PIN, "--new-pin", "24681357"
    )


def test_change_pin_at_a_terminal(holder: HolderDesk) -> None:
    # a wrong current PIN is refused before the new PIN is asked for
    term = Terminal(holder, "token", "change-pin", "--label", "alice")
    term.expect("Current PIN / 当前 PIN 码: ")
    term.type("999999")
    code, seen = term.finish()
    assert code == 5 and "pkcs11.wrong_pin" in seen, seen
    assert "New PIN" not in seen
    # the right one: the new PIN twice, both prompts in both languages; a mismatch is said
    term = Terminal(holder, "token", "change-pin", "--label", "alice")
    term.expect("Current PIN / 当前 PIN 码: ")
    term.type(USER_PIN)
    term.expect("New PIN / 新 PIN 码: ")
    term.type("11112222")
    term.expect("Repeat for confirmation / 请再次输入以确认: ")
    term.type("11113333")
    term.expect("The two entries differ; try again.")
    term.expect("New PIN / 新 PIN 码: ")
    term.type("11112222")
    term.expect("Repeat for confirmation / 请再次输入以确认: ")
    term.type("11112222")
    code, seen = term.finish()
    assert code == 0, seen
    assert "PIN of token alice changed." in seen
    assert "Repeat for confirmation:" not in seen  # Click's English-only prompt is not used
    holder.ok(
        "token", "change-pin", "--label", "alice", "--old-pin", "11112222", "--new-pin", "5678"
    )


# -- with the server --------------------------------------------------------------------------


def test_renew_says_too_early_before_asking_for_the_pin(holder: HolderDesk) -> None:
    holder.ok("init")
    holder.ok("enroll", "demo-0001", "--token-label", "alice", "--pin", USER_PIN)
    with holder.serving():
        holder.ok("connect", holder.url, "--yes")
        # no --pin and no terminal: if the PIN came first this would ask for it and fail so
        early = holder.run("renew", "--label", "alice")
        assert_refused(early, 6, "renewal.too_early", "last 30 days", "renewal opens on")
        assert "PIN" not in early.stderr
        (row,) = json.loads(holder.ok("token", "list", "--json").stdout)
        assert row["renewal"] == f"opens {row['renewal_opens'][:10]}"
        assert row["renewal_opens"][:10] in flat(early.stderr)


def test_token_list_does_not_promise_renewal_of_a_revoked_certificate(
    tmp_path: Path, softhsm: SoftHSM
) -> None:
    softhsm.init_token("alice")
    holder = HolderDesk(tmp_path, CERTDESK_POLICY_RENEWAL_WINDOW_DAYS="400")  # open at once
    holder.ok("init")
    holder.ok("enroll", "demo-0001", "--token-label", "alice", "--pin", USER_PIN)
    (cert,) = holder.json("cert", "list", "--person", "demo-0001", "--state", "active")  # type: ignore[misc]
    with holder.serving():
        holder.ok("connect", holder.url, "--yes")
        listed = holder.ok("token", "list", COLUMNS="200")
        (row,) = json.loads(holder.ok("token", "list", "--json").stdout)
        assert row["renewal"].startswith("window open since ")
        assert "(state checked at renew)" in row["renewal"]
        assert "open now" not in listed.stdout
        assert "asks the office whether the certificate is still active" in flat(listed.stderr)
        holder.ok("cert", "revoke", cert["serial"], "--reason", "keyCompromise", "--yes")
        # the token still holds it; the tool says what it knows and renew asks the server
        (after,) = json.loads(holder.ok("token", "list", "--json").stdout)
        assert after["renewal"] == row["renewal"] and after["serial"] == cert["serial"]
        refused = holder.run("renew", "--label", "alice", "--pin", USER_PIN, "--yes")
        assert_refused(refused, 6, "renewal.revoked", "keyCompromise")


def test_tries_left_says_only_what_the_flags_say() -> None:
    """SoftHSM only ever sets COUNT_LOW; the other flags of real tokens are read the same way."""
    from pkcs11 import TokenFlag

    from certdesk.token.device import tries_left

    final_en, final_zh = tries_left(TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY)
    assert final_en.startswith("1 try left") and "仅剩 1 次" in final_zh
    low_en, low_zh = tries_left(TokenFlag.USER_PIN_COUNT_LOW)
    assert "does not say how many" in low_en and "未提供具体次数" in low_zh
    none_en, _ = tries_left(TokenFlag.TOKEN_INITIALIZED)
    assert none_en == "The token does not report how many tries remain."
    for text in (final_en, low_en, none_en):
        assert not re.search(r"\b[2-9]\b", text)  # never a made-up count
