"""The holder's tool settings: which server, which pinned root CA, which PKCS#11 module.

Kept as JSON under `$CERTDESK_CLIENT_HOME` (default `~/.config/certdesk`), separate from the
server's `certdesk.toml`: the holder's machine has no server configuration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from certdesk.domain.errors import CertdeskError

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def client_home() -> Path:
    configured = os.environ.get("CERTDESK_CLIENT_HOME")
    return Path(configured) if configured else Path.home() / ".config" / "certdesk"


@dataclass(frozen=True)
class ClientSettings:
    server_url: str
    root_fingerprint: str  # SHA-256 of the pinned root CA certificate (DER), hex
    module: str = DEFAULT_MODULE
    renewal_window_days: int = 30  # only to show when the window opens; the server decides
    pinentry: str = ""  # the browser helper's PIN dialog program; empty: `pinentry` on the PATH

    @property
    def root_path(self) -> Path:
        return client_home() / "root.pem"

    def save(self, root_pem: bytes) -> None:
        home = client_home()
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / "client.json.tmp"
        (home / "root.pem.tmp").write_bytes(root_pem)
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(home / "root.pem.tmp", self.root_path)
        os.replace(tmp, home / "client.json")


def module_from_env() -> str:
    return os.environ.get("CERTDESK_TOKEN_MODULE", "")


def load_settings(required: bool = True) -> ClientSettings | None:
    path = client_home() / "client.json"
    if not path.exists():
        if required:
            raise CertdeskError("client.not_connected")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = ClientSettings(**data)
    except (ValueError, TypeError) as exc:
        raise CertdeskError("config.invalid", detail=f"{path}: {exc}") from None
    module = module_from_env()
    if module:
        settings = replace(settings, module=module)
    return settings


def token_module() -> str:
    """The PKCS#11 module: `$CERTDESK_TOKEN_MODULE`, else the settings', else SoftHSM."""
    settings = load_settings(required=False)
    return module_from_env() or (settings.module if settings else DEFAULT_MODULE)
