"""A PKCS#12 file for a person without a token, from a script: the passphrase from a file or
standard input (no terminal, not on the command line), 8 characters or more; openssl reads it."""

from __future__ import annotations

import subprocess

import test_cli
from conftest import openssl
from test_cli import CERTDESK, PASSPHRASE, Desk, assert_refused

ca_desk, desk, registry_desk = test_cli.ca_desk, test_cli.desk, test_cli.registry_desk  # fixtures


def _enroll_from_stdin(office: Desk, target: str, secret: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CERTDESK), "enroll", "p-002", "--p12", target, "--p12-passphrase-file", "-"],
        cwd=office.home, env=office.env("C.UTF-8", PASSPHRASE, {}), input=secret + "\n",
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_passphrase_from_a_file_or_stdin_without_a_terminal(ca_desk: Desk) -> None:
    home = ca_desk.home
    (home / "short").write_text("seven77\n")
    short = ca_desk.run("enroll", "p-001", "--p12", "a.p12", "--p12-passphrase-file", "short")
    assert_refused(short, 2, "input.invalid", "8 characters or more")
    assert not (home / "a.p12").exists()

    no_terminal = ca_desk.run("enroll", "p-001", "--p12", "a.p12")
    assert_refused(no_terminal, 2, "input.invalid", "no terminal")
    assert "8+" in no_terminal.stderr

    (home / "secret").write_text("file-pass-1\nsecond line ignored\n")
    ca_desk.ok("enroll", "p-001", "--p12", "a.p12", "--p12-passphrase-file", "secret")
    read = openssl("pkcs12", "-in", home / "a.p12", "-nokeys", "-passin", "pass:file-pass-1")
    assert read.returncode == 0 and "Zhang San" in read.stdout, read.stderr
    ca_desk.ok(
        "person", "add", "p-002", "--name", "Li Si", "--unit", "FIN", "--email", "li@x.example"
    )

    piped = _enroll_from_stdin(ca_desk, "b.p12", "stdin-pass-2")
    assert piped.returncode == 0, piped.stderr
    read = openssl("pkcs12", "-in", home / "b.p12", "-nokeys", "-passin", "pass:stdin-pass-2")
    assert read.returncode == 0, read.stderr
