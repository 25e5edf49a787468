"""`certdesk helper install`: the native messaging host manifest, so the browser may start
`certdesk-helper` for the certdesk extension, and only for it.

The Chromium family lists the extension's origin (`allowed_origins`); its id is fixed by the
public key in extension/manifest.json (`key`): the first 32 hex digits of the SHA-256 of that
DER key, each digit 0-f written as a letter a-p. Firefox lists the extension's own id
(`allowed_extensions`, from browser_specific_settings.gecko.id).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HOST_NAME = "org.certdesk.helper"
EXTENSION_ID = "phnkcambhpmjmaeajihmafnfmnnmbjab"
FIREFOX_ID = "renewal@certdesk.invalid"

# Where each browser looks on Linux for the user (NativeMessagingHosts in its config folder).
LINUX_USER_DIRS = {
    "chromium": ".config/chromium/NativeMessagingHosts",
    "chrome": ".config/google-chrome/NativeMessagingHosts",
    "edge": ".config/microsoft-edge/NativeMessagingHosts",
    "firefox": ".mozilla/native-messaging-hosts",
}
BROWSERS = tuple(LINUX_USER_DIRS)
WINDOWS_KEYS = {
    "chromium": r"HKCU\Software\Chromium\NativeMessagingHosts",
    "chrome": r"HKCU\Software\Google\Chrome\NativeMessagingHosts",
    "edge": r"HKCU\Software\Microsoft\Edge\NativeMessagingHosts",
    "firefox": r"HKCU\Software\Mozilla\NativeMessagingHosts",
}


def helper_path() -> str:
    """The absolute path of `certdesk-helper` (next to this Python, else on the PATH)."""
    beside = Path(sys.executable).parent / "certdesk-helper"
    if beside.exists():
        return str(beside)
    found = shutil.which("certdesk-helper")
    return found or str(beside)


def host_manifest(browser: str, program: str) -> dict[str, object]:
    manifest: dict[str, object] = {
        "name": HOST_NAME,
        "description": "certdesk: renew the certificate on your USB key from the portal",
        "path": program,
        "type": "stdio",
    }
    if browser == "firefox":
        manifest["allowed_extensions"] = [FIREFOX_ID]
    else:
        manifest["allowed_origins"] = [f"chrome-extension://{EXTENSION_ID}/"]
    return manifest


def manifest_dir(browser: str, user_data_dir: Path | None) -> Path:
    """A profile's own folder when given (as in the tests), else the browser's user folder."""
    if user_data_dir is not None and browser != "firefox":
        return user_data_dir / "NativeMessagingHosts"
    return Path.home() / LINUX_USER_DIRS[browser]


def install(browser: str, user_data_dir: Path | None = None, program: str | None = None) -> Path:
    folder = manifest_dir(browser, user_data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{HOST_NAME}.json"
    manifest = host_manifest(browser, program or helper_path())
    target.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target


def windows_step(browser: str) -> str:
    """On Windows the browser finds the manifest through a registry key (not tested here)."""
    return (
        f'reg add "{WINDOWS_KEYS[browser]}\\{HOST_NAME}" /ve /t REG_SZ '
        f'/d "C:\\path\\to\\{HOST_NAME}.json" /f'
    )
