"""Worker for tests/test_crash.py: issues and revokes until it is killed with SIGKILL.

    python tests/crash_worker.py CONFIG JOURNAL_DIR ROUND MODE

CONFIG is a certdesk.toml for a database where the CA hierarchy and unit FIN exist. The worker
loops forever: registers fresh people, enrols a key for them (one at a time or as a group-commit
batch) and now and then revokes a certificate issued earlier (in this round or a previous one).

What it did goes to JOURNAL_DIR/round-<ROUND>.log, one line per event, each written with one
`write` on an O_APPEND descriptor and fsynced before the worker goes on:

    ready <pid>
    person <person_id>                    before registering a person
    enrol <person_id> [<person_id> ...]   before calling the issuance path
    signed <serial> <sha256 of DER>       right after the CA key signed, before the record step
    issued <serial> <sha256 of DER>       after the issuance path returned the certificate
    revoking <serial>                     before calling revoke
    revoked <serial>                      after revoke returned

The `signed` line comes from a wrapper around this worker's own `Authority.issue` (the one
signing path), so every certificate the CA key ever signs is journaled, recorded or not.

MODE `run` loops until the test kills it. MODE `<point>:<n>` makes the worker SIGKILL itself the
n-th time it reaches a point (see POINTS), so every window of the protocol is hit for sure.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection, event

from certdesk.ca.issuer import CertificateOrder
from certdesk.config import load_config
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import RevocationReason
from certdesk.services import registry
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.revocation import revoke
from certdesk.store.db import Database

POINTS = (
    "person_commit",  # the person's write transaction, just before COMMIT
    "reserve_commit",  # the reservation's write transaction, just before COMMIT
    "before_sign",  # reservation committed, CA key not used yet
    "after_sign",  # signed (and journaled), record step not started
    "record_commit",  # the record transaction, just before COMMIT
    "after_record",  # issuance returned, `issued` not journaled yet
    "revoke_commit",  # the revocation's write transaction, just before COMMIT
    "after_revoke",  # revoke returned, `revoked` not journaled yet
)
REASONS = (
    RevocationReason.KEY_COMPROMISE,
    RevocationReason.AFFILIATION_CHANGED,
    RevocationReason.CESSATION_OF_OPERATION,
    RevocationReason.SUPERSEDED,
)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


class Journal:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, *words: str) -> None:
        line = (" ".join(words) + "\n").encode()
        assert os.write(self.fd, line) == len(line)
        os.fsync(self.fd)


class Crasher:
    """SIGKILLs this process the n-th time `point` is reached (never, in mode `run`)."""

    def __init__(self, mode: str) -> None:
        self.point, self.left = None, 0
        if mode != "run":
            point, n = mode.split(":")
            assert point in POINTS, point
            self.point, self.left = point, int(n)
        self.phase = "idle"  # which write transaction a COMMIT belongs to

    def at(self, point: str) -> None:
        if point != self.point:
            return
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_commit(self, conn: Connection) -> None:
        if conn.get_execution_options().get("certdesk_write", False):
            self.at(f"{self.phase}_commit")


def previously_issued(journal_dir: Path) -> list[str]:
    """Serials of earlier rounds that came back issued and nobody tried to revoke."""
    issued: list[str] = []
    touched: set[str] = set()
    for path in sorted(journal_dir.glob("round-*.log")):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[0] == "issued":
                issued.append(words[1])
            elif words[0] == "revoking":
                touched.add(words[1])
    return [s for s in issued if s not in touched]


def main(config_path: str, journal_dir: str, round_no: str, mode: str) -> None:
    config = load_config(config_path)
    db = Database(config.database_url)
    ctx = Context(config, db, actor="crash-worker")
    crasher = Crasher(mode)
    event.listen(db.engine, "commit", crasher.on_commit)
    rng = random.Random(int(round_no))
    pool = previously_issued(Path(journal_dir))
    journal = Journal(Path(journal_dir) / f"round-{round_no}.log")

    issuance = Issuance(ctx)
    authority = issuance.authority
    sign = authority.issue

    def journaled_sign(order: CertificateOrder) -> Any:
        crasher.at("before_sign")
        crasher.phase = "sign"
        cert = sign(order)
        journal.write(
            "signed", format(order.serial, "x"), fingerprint(cert.public_bytes(Encoding.DER))
        )
        crasher.at("after_sign")
        crasher.phase = "record"
        return cert

    authority.issue = journaled_sign  # type: ignore[method-assign]

    journal.write("ready", str(os.getpid()))
    n = 0
    while True:
        people = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            n += 1
            person_id = f"r{round_no}-{n}"
            journal.write("person", person_id)
            crasher.phase = "person"
            registry.add_person(
                ctx, person_id, f"Crash {round_no} {n}", "FIN", f"{person_id}@x.example"
            )
            people.append(person_id)
        keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in people]
        journal.write("enrol", *people)
        crasher.phase = "reserve"
        if len(people) == 1:
            outcomes: list[Any] = [issuance.issue(OfficerEnrolment(ctx, people[0], keys[0]))]
        else:
            outcomes = issuance.issue_batch(
                [OfficerEnrolment(ctx, p, k) for p, k in zip(people, keys, strict=True)]
            )
        crasher.phase = "idle"
        crasher.at("after_record")
        for outcome in outcomes:
            if isinstance(outcome, CertdeskError):
                raise outcome
            journal.write("issued", outcome.serial, fingerprint(outcome.der))
            pool.append(outcome.serial)
        if pool and rng.random() < 0.4:
            serial = pool.pop(rng.randrange(len(pool)))
            journal.write("revoking", serial)
            crasher.phase = "revoke"
            revoke(ctx, serial, rng.choice(REASONS))
            crasher.phase = "idle"
            crasher.at("after_revoke")
            journal.write("revoked", serial)


if __name__ == "__main__":
    main(*sys.argv[1:])
