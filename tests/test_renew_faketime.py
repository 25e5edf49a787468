"""Whole-process renewal under libfaketime: `certdesk serve` and the holder's `certdesk renew`
with a SoftHSM token, at day 0, 300, 340 and 366 of a certificate's life."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import openssl
from softhsm import SO_PIN, USER_PIN, SoftHSM
from test_cli import assert_refused, flat
from test_web import free_port, serving

CERTDESK = str(Path(sys.executable).parent / "certdesk")
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DAY0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _libfaketime() -> Path:
    if LIBFAKETIME.exists():
        return LIBFAKETIME
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("libfaketime is required in CI (apt-get install libfaketime)")
    pytest.skip("libfaketime is not installed")


class FakeTimeDesk:
    """A server and a holder machine, both run at a chosen fake date."""

    def __init__(self, home: Path, softhsm: SoftHSM, start: dt.datetime = DAY0) -> None:
        self.home = home
        self.start = start
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "COLUMNS": "200",
            "SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"],
            "CERTDESK_PATHS_DATA_DIR": str(home / "var"),
            "CERTDESK_CA_PASSPHRASE": "faketime passphrase",
            "CERTDESK_SERVER_PORT": str(self.port),
            "CERTDESK_URLS_BASE": self.url,
            "CERTDESK_ISSUANCE_LINT": "true",  # pkilint checks every certificate before signing
            "CERTDESK_CLIENT_HOME": str(home / "holder"),
            "LD_PRELOAD": str(_libfaketime()),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        self.day = 0

    def at(self, day: int) -> dict[str, str]:
        moment = self.start + dt.timedelta(days=day)
        return {**self.env, "FAKETIME": f"@{moment:%Y-%m-%d %H:%M:%S}"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTDESK, *args],
            cwd=self.home,
            env=self.at(self.day),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args)
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        return result

    @contextlib.contextmanager
    def serving(self, day: int) -> Iterator[None]:
        self.day = day
        with serving(self.home, self.at(day), self.port):
            yield

    def renew(self, label: str, pin: str = USER_PIN) -> subprocess.CompletedProcess[str]:
        return self.run("renew", "--label", label, "--pin", pin, "--yes", "--json")

    def cert(self, serial: str) -> dict[str, str]:
        shown = json.loads(self.ok("cert", "show", serial, "--json").stdout)
        assert isinstance(shown, dict)
        return shown


def token_certificates(softhsm: SoftHSM, label: str) -> list[dict[str, str]]:
    return [o for o in softhsm.objects(label) if o["kind"] == "Certificate"]


@pytest.mark.slow
def test_renewal_through_a_year(tmp_path: Path, softhsm: SoftHSM) -> None:
    desk = FakeTimeDesk(tmp_path, softhsm)
    desk.ok("init")
    desk.ok(
        "person", "add", "p-002", "--name", "Li Si", "--unit", "DEMO", "--email", "li@demo.example"
    )
    for label, person in (("alice", "demo-0001"), ("bob", "p-002")):
        softhsm.init_token(label)
        desk.ok("enroll", person, "--token-label", label, "--pin", USER_PIN)
    first = token_certificates(softhsm, "alice")
    assert len(first) == 1
    listed = json.loads(desk.ok("cert", "list", "--person", "demo-0001", "--json").stdout)
    old_serial = listed[0]["serial"]

    with desk.serving(0):
        connected = desk.ok("connect", desk.url, "--yes")
        assert "SHA-256" in connected.stdout
        shown = json.loads(desk.ok("token", "list", "--json").stdout)
        alice = next(t for t in shown if t["label"] == "alice")
        assert alice["holder"] == "Demo Holder" and alice["initial_pin"] is True
        assert alice["renewal"] == "opens 2027-11-01"

    with desk.serving(300):
        early = desk.renew("alice")
        assert_refused(early, 6, "renewal.too_early", "2027-11-01")
        assert len(token_certificates(softhsm, "alice")) == 1  # nothing made on the token

    with desk.serving(340):
        renewed = desk.renew("alice")
        assert renewed.returncode == 0, renewed.stderr
        result = json.loads(renewed.stdout)
        assert result["superseded"] == old_serial
        assert result["not_before"].startswith("2027-11-06T10:00")
        assert result["not_after"].startswith("2028-11-06T10:00")
        for step in ("1/7", "3/7", "5/7", "7/7"):
            assert step in renewed.stderr
        # the token holds exactly one certificate and its key, under one ID
        objects = softhsm.objects("alice")
        certs = [o for o in objects if o["kind"] == "Certificate"]
        keys = [o for o in objects if o["kind"] == "Private Key"]
        assert len(certs) == 1 and len(keys) == 1
        assert certs[0]["ID"] == keys[0]["ID"]
        assert "sensitive" in keys[0]["Access"] and "never extractable" in keys[0]["Access"]
        # the old one is superseded and listed in the CRL
        assert desk.cert(old_serial)["state"] == "superseded"
        desk.ok("crl", "publish")
        crl_text = openssl(
            "crl", "-inform", "DER", "-in", tmp_path / "var/pki/issuing.crl", "-noout", "-text"
        ).stdout
        assert old_serial.upper().zfill(2) in crl_text.replace(":", "").upper()
        assert "Superseded" in crl_text
        # the new certificate passes openssl verify (at the fake date)
        new_pem = tmp_path / "new.pem"
        new_pem.write_text(desk.ok("cert", "show", result["serial"], "--pem").stdout)
        verified = openssl(
            "verify",
            "-attime",
            str(int((DAY0 + dt.timedelta(days=341)).timestamp())),
            "-CAfile",
            tmp_path / "var/pki/root.pem",
            "-untrusted",
            tmp_path / "var/pki/issuing.pem",
            new_pem,
        )
        assert verified.returncode == 0, verified.stderr
        # a second renewal now is refused: the new one is far from its window
        again = desk.renew("alice")
        assert_refused(again, 6, "renewal.too_early", "2028-10-07")

    with desk.serving(366):
        expired = desk.renew("bob")
        assert_refused(expired, 6, "renewal.expired", "re-enrol")
        assert "ra@demo.example" in flat(expired.stderr)


@pytest.mark.slow
def test_leap_day_certificate_and_the_pin(tmp_path: Path, softhsm: SoftHSM) -> None:
    leap = dt.datetime(2028, 2, 29, 10, 0, tzinfo=dt.UTC)
    desk = FakeTimeDesk(tmp_path, softhsm, start=leap)
    desk.ok("init")
    assert_refused(desk.run("token", "list"), 4, "token.not_present", "insert your USB key")
    softhsm.init_token("alice")
    desk.ok("enroll", "demo-0001", "--token-label", "alice", "--pin", USER_PIN)
    with desk.serving(0):
        desk.ok("connect", desk.url, "--yes")
        (row,) = json.loads(desk.ok("token", "list", "--json").stdout)
        assert row["not_after"].startswith("2029-02-28T10:00")  # 29 Feb -> 28 Feb
        assert row["renewal"] == "opens 2029-01-29" and row["initial_pin"] is True
        assert "initial PIN" in desk.ok("token", "list").stderr
        # the holder changes the office's PIN; the registry hears of it
        desk.ok(
            "token", "change-pin", "--label", "alice", "--old-pin", USER_PIN, "--new-pin", "246810"
        )
        (row,) = json.loads(desk.ok("token", "list", "--json").stdout)
        assert row["initial_pin"] is False
        (stock,) = json.loads(desk.ok("token", "stock", "--json").stdout)
        assert stock["pin_changed"] is True
    # forgotten PIN: wrong tries are reported, the office unblocks with the SO PIN
    with desk.serving(340):
        wrong = desk.renew("alice", pin="000000")
        assert_refused(wrong, 5, "pkcs11.wrong_pin")
        desk.ok("token", "unblock", "--label", "alice", "--so-pin", SO_PIN, "--new-pin", "135790")
        (row,) = json.loads(desk.ok("token", "list", "--json").stdout)
        assert row["initial_pin"] is True  # the office's PIN again: must be changed
        renewed = desk.renew("alice", pin="135790")
        assert renewed.returncode == 0, renewed.stderr
        result = json.loads(renewed.stdout)
        assert result["not_before"].startswith("2029-02-03T10:00")
        assert result["not_after"].startswith("2030-02-03T10:00")
