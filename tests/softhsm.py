"""SoftHSM2 as the token and the HSM: a private token directory per test.

Loaded by conftest (`pytest_plugins`). With CI=true a missing SoftHSM is a failure, not a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from certdesk.token.device import rescan

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
USER_PIN = "123456"
SO_PIN = "12345678"


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{tool} is required in CI (apt-get install softhsm2 opensc)")
        pytest.skip(f"{tool} is not installed")


@dataclass
class SoftHSM:
    directory: Path
    module: str = MODULE

    def init_token(self, label: str, pin: str = USER_PIN, so_pin: str = SO_PIN) -> None:
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
            ],
            check=True,
            capture_output=True,
        )
        rescan()  # this process's SoftHSM sees the new token (and this test's directory)

    def list_objects(self, label: str, pin: str = USER_PIN) -> str:
        """`pkcs11-tool --list-objects` output, logged in (shows private keys and their flags)."""
        _require("pkcs11-tool")
        out = subprocess.run(
            [
                "pkcs11-tool",
                "--module",
                self.module,
                "--token-label",
                label,
                "--login",
                "--pin",
                pin,
                "--list-objects",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def objects(self, label: str, pin: str = USER_PIN) -> list[dict[str, str]]:
        """The listing parsed into one dict per object (kind, label, ID, Usage, Access …)."""
        objects: list[dict[str, str]] = []
        for line in self.list_objects(label, pin).splitlines():
            head = re.match(r"^(\S.*?) [Oo]bject(?:;|$|\s)(.*)", line)
            if head:
                objects.append({"kind": head.group(1), "rest": head.group(2).strip()})
                continue
            field = re.match(r"^\s+([^:]+):\s*(.*)$", line)
            if field and objects:
                objects[-1][field.group(1).strip()] = field.group(2).strip()
        return objects


def softhsm_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHSM:
    """A token directory of its own under `folder` (SOFTHSM2_CONF set through `monkeypatch`)."""
    _require("softhsm2-util")
    if not Path(MODULE).exists():
        _require("/nonexistent-softhsm-module")
    tokens = folder / "softhsm-tokens"
    tokens.mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    return SoftHSM(tokens)


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHSM:
    return softhsm_in(tmp_path, monkeypatch)
