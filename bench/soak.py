"""Soak: a bounded mixed load against `certdesk serve` killed by SIGKILL at random moments and
restarted each time (issue 13).

Two client lanes walk a pool of people through EST enrolment with a one-time code, a renewal
(JWS signed with the current key, then confirmed with the new key), sometimes a revocation by
the RA officer over the REST API, and logins (`/api/v1/me`), over TLS with httpx. When the
server dies under them they retry the same step once it is back (every step is safe to repeat:
that is what is being checked). Meanwhile the main thread lets the server run for a random
0.2-1.5 s, kills it with SIGKILL, and starts it again.

At the end, read from the database: every issuance and revocation that got an answer is there
(records lost), no person holds two active certificates and no serial was answered with two
different certificates (duplicates), and `certdesk audit verify`.

    python bench/soak.py [--kills 20] [--people 8×kills] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7, pkcs12
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from certdesk.client.signed import sign_request
from certdesk.config import load_config
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE
from certdesk.services.enrolment_codes import create_code
from certdesk.services.registry import add_person
from certdesk.store.tables import certificates
from request_keys import FileRequestKey

CERTDESK = str(Path(sys.executable).parent / "certdesk")


class TryAgain(Exception):
    """The server said "try again in a moment"."""


RETRIED = (httpx.TransportError, TryAgain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Desk:
    """The server under test: started, killed and restarted by the main thread."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CERTDESK_PATHS_DATA_DIR": str(home / "var"),
            "CERTDESK_SERVER_PORT": str(self.port),
            "CERTDESK_URLS_BASE": self.url,
            "CERTDESK_POLICY_RENEWAL_WINDOW_DAYS": "400",  # renewal open from the first day
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.up = threading.Event()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CERTDESK, *args], cwd=self.home, env=self.env, capture_output=True, text=True
        )

    def start(self) -> float:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [CERTDESK, "serve"],
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"certdesk serve exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        self.up.set()
        return time.perf_counter() - started

    def kill(self) -> None:
        assert self.proc is not None
        self.up.clear()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        assert self.proc is not None
        self.up.clear()
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Ledger:
    """What the server answered: issuances (serial → DER) and revocations."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.issued: dict[str, bytes] = {}
        self.duplicates = 0
        self.revoked: set[str] = set()
        self.counts: dict[str, int] = {}

    def issue(self, certificate: x509.Certificate) -> str:
        serial = format(certificate.serial_number, "x")
        der = certificate.public_bytes(Encoding.DER)
        with self.lock:
            if self.issued.setdefault(serial, der) != der:
                self.duplicates += 1
        return serial

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1


def _csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


class Lane(threading.Thread):
    """One client walking its people through enrol → renew → confirm → (revoke), logging in
    between; each step retried until the server answers it."""

    def __init__(
        self,
        desk: Desk,
        ledger: Ledger,
        people: list[tuple[str, str]],
        ra: tuple[Path, Path],
        rng: random.Random,
        done: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self.desk, self.ledger, self.people, self.ra, self.rng = desk, ledger, people, ra, rng
        self.done = done
        self.error: BaseException | None = None

    def client(self) -> httpx.Client:
        tls = ssl.create_default_context(cafile=str(self.desk.home / "var" / "pki" / "root.pem"))
        cert, key = self.ra
        tls.load_cert_chain(str(cert), str(key))
        return httpx.Client(base_url=self.desk.url, verify=tls, timeout=30)

    def step(self, name: str, call: Any) -> Any:
        """Run `call(client)` until the server answers (a kill in between: retry once up)."""
        while not self.done.is_set():
            self.desk.up.wait()
            try:
                with self.client() as client:
                    answer = call(client)
            except RETRIED:
                self.ledger.count("retried")
                time.sleep(0.05)
                continue
            self.ledger.count(name)
            return answer
        raise SystemExit  # the run is over

    def run(self) -> None:
        try:
            for person_id, code in self.people:
                self.walk(person_id, code)
        except SystemExit:
            return
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def walk(self, person_id: str, code: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        body = base64.encodebytes(_csr(key))

        def enrol(client: httpx.Client) -> x509.Certificate:
            answer = client.post(
                "/.well-known/est/simpleenroll",
                content=body,
                auth=(person_id, code),
                headers={"Content-Type": "application/pkcs10"},
            )
            assert answer.status_code == 200, answer.text
            (certificate,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(answer.content))
            return certificate

        current = self.ledger.issue(self.step("issuance", enrol))
        self.step("login", lambda c: c.get("/api/v1/me").raise_for_status())
        new_key = ec.generate_private_key(ec.SECP256R1())
        csr = base64.urlsafe_b64encode(_csr(new_key)).rstrip(b"=").decode()

        def signed(client: httpx.Client, path: str, action: str, kid: str, k: Any, p: Any) -> Any:
            nonce = client.get("/api/v1/renewal/nonce").json()["nonce"]
            token = sign_request(
                FileRequestKey(k), serial=kid, nonce=nonce, action=action, payload=p
            )
            answer = client.post(path, content=token, headers={"Content-Type": "application/jose"})
            if answer.status_code == 409 and answer.json()["code"] == "renewal.in_progress":
                raise TryAgain  # a renewal cut off by a kill is being closed: ask again
            assert answer.status_code in (200, 201), answer.text
            return answer.json()

        renewed = self.step(
            "renewal",
            lambda c: signed(c, "/api/v1/renewal", "renew", current, key, {"csr": csr}),
        )
        serial = self.ledger.issue(x509.load_pem_x509_certificate(renewed["certificate"].encode()))
        self.step(
            "confirm",
            lambda c: signed(c, "/api/v1/renewal/confirm", "confirm", serial, new_key, {}),
        )
        if self.rng.random() < 0.5:

            def revoke(client: httpx.Client) -> None:
                csrf = client.get("/api/v1/me").json()["csrf_token"]
                answer = client.post(
                    f"/api/v1/certificates/{serial}/revoke",
                    json={"reason": "cessationOfOperation"},
                    headers={"X-CSRF-Token": csrf},
                )
                # answered before the kill and asked again after it: already revoked
                assert answer.status_code == 200 or "revoked" in answer.text, answer.text

            self.step("revocation", revoke)
            with self.ledger.lock:
                self.ledger.revoked.add(serial)


def prepare(desk: Desk, count: int) -> tuple[list[tuple[str, str]], tuple[Path, Path]]:
    """`certdesk init`, then people with codes (written through the journal, as the server
    would) and the RA officer's certificate and key as PEM files for httpx."""
    init = desk.cli("init")
    assert init.returncode == 0, init.stderr
    os.environ.update({k: v for k, v in desk.env.items() if k.startswith("CERTDESK_")})
    ctx = Context.open(load_config(), "bench")
    people = []
    for i in range(count):
        person_id = f"soak-{i:04d}"
        add_person(ctx, person_id, f"Soak {i}", "DEMO", f"{person_id}@demo.example")
        code, _ = create_code(ctx, person_id, 720)
        people.append((person_id, code))
    ctx.db.dispose()
    p12 = pkcs12.load_pkcs12(
        (desk.home / "var" / "demo" / "demo-ra.p12").read_bytes(), DEMO_PASSPHRASE.encode()
    )
    assert p12.key is not None and p12.cert is not None
    cert, key = desk.home / "ra.pem", desk.home / "ra.key"
    cert.write_bytes(p12.cert.certificate.public_bytes(Encoding.PEM))
    key.write_bytes(
        p12.key.private_bytes(
            Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return people, (cert, key)


def check(desk: Desk, ledger: Ledger) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{desk.home / 'var' / 'certdesk.db'}")
    with engine.connect() as conn:
        rows = {
            r.serial: r for r in conn.execute(select(certificates.c.serial, certificates.c.state))
        }
        two_active = conn.execute(
            select(certificates.c.person_id)
            .where(certificates.c.state == "active", certificates.c.profile == "personal")
            .group_by(certificates.c.person_id)
            .having(func.count() > 1)
        ).all()
    engine.dispose()
    signed = {"active", "pending_install", "superseded", "revoked"}
    lost_issued = [s for s in ledger.issued if s not in rows or rows[s].state not in signed]
    lost_revoked = [s for s in ledger.revoked if rows.get(s) is None or rows[s].state != "revoked"]
    verify = desk.cli("audit", "verify")
    return {
        "records_lost": len(lost_issued) + len(lost_revoked),
        "lost": (lost_issued + lost_revoked)[:10],
        "duplicate_serials": ledger.duplicates,
        "people_with_two_active": len(two_active),
        "audit_verify": verify.stdout.strip().splitlines()[-1] if verify.stdout else verify.stderr,
        "audit_verify_exit": verify.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--people", type=int, default=0, help="bounds the load (default 8 × kills)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.people = args.people or 8 * args.kills
    with tempfile.TemporaryDirectory() as tmp:
        desk = Desk(Path(tmp))
        people, ra = prepare(desk, args.people)
        ledger = Ledger()
        done = threading.Event()
        half = len(people) // 2
        lanes = [
            Lane(desk, ledger, part, ra, random.Random(rng.random()), done)
            for part in (people[:half], people[half:])
        ]
        started = time.perf_counter()
        starts: list[float] = [desk.start()]
        for lane in lanes:
            lane.start()
        kills = 0
        while kills < args.kills and any(lane.is_alive() for lane in lanes):
            time.sleep(rng.uniform(0.2, 1.5))  # load runs for a random while, then SIGKILL
            desk.kill()
            kills += 1
            starts.append(desk.start())
        for lane in lanes:  # finish the walk with the server up
            lane.join(timeout=600)
        done.set()
        desk.stop()
        errors = [repr(lane.error) for lane in lanes if lane.error is not None]
        figures = {
            "kills_survived": kills,
            "seconds": round(time.perf_counter() - started, 1),
            "answered": dict(sorted(ledger.counts.items())),
            "issued": len(ledger.issued),
            "revoked": len(ledger.revoked),
            **check(desk, ledger),
            "client_errors": errors,
            "restart_seconds_max": round(max(starts), 2),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
