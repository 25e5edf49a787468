"""A real portal for whole-process tests: `certdesk init` + `certdesk serve` on a free loopback
port, in a directory of the test's own, plus in-process services on the same database (to set up
what an officer or a renewal would have done)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.config import load_config
from certdesk.domain.clock import SystemClock
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance, IssuedCertificate
from certdesk.services.journal import attach
from certdesk.store.db import Database
from test_web import free_port, wait_for_port

CERTDESK = str(Path(sys.executable).parent / "certdesk")


@dataclass
class LivePortal:
    home: Path
    port: int
    env: dict[str, str]
    ctx: Context  # in-process services on the served database

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def root_pem(self) -> Path:
        return self.home / "var" / "pki" / "root.pem"

    def demo_p12(self, person_id: str) -> Path:
        return self.home / "var" / "demo" / f"{person_id}.p12"

    def certdesk(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CERTDESK, *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"certdesk {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def issue_pem(
        self, person_id: str, folder: Path, issuance: Issuance | None = None
    ) -> tuple[IssuedCertificate, ec.EllipticCurvePrivateKey, Path, Path]:
        """A certificate for `person_id` with a file key: (issued, key, cert.pem, key.pem)."""
        key = ec.generate_private_key(ec.SECP256R1())
        issued = (issuance or Issuance(self.ctx)).issue(
            OfficerEnrolment(self.ctx, person_id, key.public_key())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_path = folder / f"{person_id}-{issued.serial[:8]}.crt"
        key_path = folder / f"{person_id}-{issued.serial[:8]}.key"
        cert_path.write_bytes(issued.pem)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued, key, cert_path, key_path


@contextlib.contextmanager
def live_portal(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[LivePortal]:
    """`certdesk init` then `certdesk serve` in `home`; stopped (and waited for) on exit."""
    port = free_port()
    env = {
        **os.environ,
        "CERTDESK_CONFIG": str(home / "certdesk.toml"),  # none: defaults + these variables
        "CERTDESK_PATHS_DATA_DIR": str(home / "var"),
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_URLS_BASE": f"https://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    home.mkdir(parents=True, exist_ok=True)
    init = subprocess.run(
        [CERTDESK, "init"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    cfg = load_config(env=env)
    db = Database(cfg.database_url)
    attach(cfg, db, SystemClock(), "test")  # the test's own writes go into the desk's journal
    with (home / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [CERTDESK, "serve"],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(proc, port)
        yield LivePortal(home, port, env, Context(cfg, db, actor="test"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        db.dispose()
