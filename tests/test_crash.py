"""Crash safety: kill -9 at any point of issuance or revocation, many times, then check.

A worker process (tests/crash_worker.py) issues and revokes against a prepared CA until it is
SIGKILLed, either by this test after a seeded number of journal lines plus a seeded delay (a
random point), or by itself at a seeded protocol point (each window for sure: before/after each
COMMIT, between reserve, sign and record). Its journal says what it signed and what came back.

After all rounds, on SQLite and on PostgreSQL:

1. every certificate the CA key signed has its database row; a certificate returned to the
   caller is recorded with the same DER; a signed one that never came back is either recorded
   (the crash came after the commit) or its row is still `reserved` without DER; no DER in the
   database differs from what was signed under that serial;
2. no serial is used twice (rows, journal, certificates' own serial numbers);
3. only reserved/abandoned rows lack DER, and `abandon_stale_reservations` closes every
   reservation the crashes left;
4. the audit chain verifies;
5. the audit log tells the same story as the table: one `certificate.reserve` per row of the
   issuing CA, one `certificate.issue` per signed row (same fingerprint), one
   `certificate.abandon` per abandoned row, one `certificate.revoke` per revoked row;
6. every revocation that returned is in the database; one that was interrupted is all or nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select

from certdesk.domain.clock import SystemClock
from certdesk.domain.states import CertState
from certdesk.services import registry
from certdesk.services.audit_log import verify_chain
from certdesk.services.authorities import ISSUING, load_authority
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.context import Context
from certdesk.services.issuance import abandon_stale_reservations
from certdesk.store.db import Database
from certdesk.store.migrate import upgrade
from certdesk.store.tables import audit_log, certificates, people
from conftest import make_config
from crash_worker import POINTS

WORKER = Path(__file__).with_name("crash_worker.py")
PASSPHRASE = "crash test passphrase"
ROUNDS = {"sqlite": 24, "postgresql": 12}  # each protocol point once, the rest random kills
ROUND_TIMEOUT = 30.0  # seconds for one worker to reach its kill point (normally well under 1)
SIGNED_STATES = {CertState.ACTIVE, CertState.REVOKED, CertState.SUPERSEDED}


@dataclass
class Journal:
    """What the workers wrote, all rounds together."""

    signed: dict[str, str] = field(default_factory=dict)  # serial -> fingerprint
    issued: dict[str, str] = field(default_factory=dict)
    revoking: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def add(self, line: str) -> None:
        kind, *words = line.split()
        if kind in ("signed", "issued"):
            serial, fp = words
            table = self.signed if kind == "signed" else self.issued
            assert serial not in table, f"serial {serial} {kind} twice"
            table[serial] = fp
        elif kind == "revoking":
            self.revoking.append(words[0])
        elif kind == "revoked":
            self.revoked.add(words[0])
        else:
            assert kind in ("ready", "person", "enrol"), line


def journal_lines(path: Path) -> list[str]:
    """Complete lines only (a line is one write(2); a partial one cannot be, but be strict)."""
    if not path.exists():
        return []
    data = path.read_text()
    lines = data.split("\n")
    assert lines[-1] == "", f"{path.name} ends with a partial line {lines[-1]!r}"
    return lines[:-1]


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, Path]]:
    """A CA hierarchy and unit FIN, and a certdesk.toml for the worker (no lint: fast)."""
    db = Database(db_url)
    upgrade(db)
    config = make_config(tmp_path, db_url).replace(
        ca={"passphrase": PASSPHRASE}, issuance={"lint": False}
    )
    ctx = Context(config, db, SystemClock(), actor="crash-test")
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    toml = tmp_path / "certdesk.toml"
    toml.write_text(
        f"[paths]\ndata_dir = {json.dumps(config.paths.data_dir)}\n"
        f"[database]\nurl = {json.dumps(db_url)}\n"
        f"[ca]\npassphrase = {json.dumps(PASSPHRASE)}\n"
        "[issuance]\nlint = false\n"
    )
    yield ctx, toml
    db.dispose()


def run_round(
    toml: Path, journals: Path, round_no: int, mode: str, rng: random.Random
) -> list[str]:
    """One worker life, ended by SIGKILL; returns the round's journal lines."""
    path = journals / f"round-{round_no}.log"
    stderr = journals / f"round-{round_no}.err"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTDESK_")}
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(toml), str(journals), str(round_no), mode],
            cwd=toml.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + ROUND_TIMEOUT
        if mode == "run":
            # After `ready`, let it do k events, then kill it somewhere in what it does next.
            lines_wanted = 1 + rng.randint(1, 8)
            delay = rng.uniform(0.0, 0.02)
            while len(journal_lines(path)) < lines_wanted and proc.poll() is None:
                assert time.monotonic() < deadline, f"round {round_no}: worker makes no progress"
                time.sleep(0.001)
            time.sleep(delay)
            assert proc.poll() is None, (
                f"round {round_no}: worker exited on its own ({proc.returncode}):\n"
                + stderr.read_text()
            )
            proc.send_signal(signal.SIGKILL)
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert returncode == -signal.SIGKILL, (
        f"round {round_no} ({mode}): worker ended with {returncode}, not SIGKILL:\n"
        + stderr.read_text()
    )
    return journal_lines(path)


def check_point(ctx: Context, point: str, lines: list[str]) -> None:
    """What a kill at a known protocol point must leave behind."""
    words = [line.split() for line in lines]
    with ctx.db.read() as conn:
        if point == "person_commit":
            # The person being added at the kill is not there, everybody before is.
            wanted = [w[1] for w in words if w[0] == "person"]
            found = set(
                conn.execute(
                    select(people.c.person_id).where(people.c.person_id.in_(wanted))
                ).scalars()
            )
            assert words[-1][0] == "person" and found == set(wanted[:-1]), (wanted, found)
            return
        if point in ("revoke_commit", "after_revoke"):
            assert words[-1][0] == "revoking", lines[-1]
            state = conn.execute(
                select(certificates.c.state).where(certificates.c.serial == words[-1][1])
            ).scalar_one()
            expected = CertState.REVOKED if point == "after_revoke" else CertState.ACTIVE
            assert CertState(state) is expected, (point, lines[-1], state)
            return
        last = max(i for i, w in enumerate(words) if w[0] == "enrol")
        enrolled = words[last][1:]
        signed = [w[1] for w in words[last:] if w[0] == "signed"]
        rows = {
            r.person_id: r
            for r in conn.execute(
                select(certificates).where(certificates.c.person_id.in_(enrolled))
            )
        }
    assert not any(w[0] == "issued" for w in words[last:]), lines[last:]
    if point == "reserve_commit":
        assert rows == {} and signed == [], f"a rolled-back reservation left {rows} {signed}"
        return
    assert set(rows) == set(enrolled)
    if point == "after_record":
        assert all(CertState(r.state) is CertState.ACTIVE and r.der for r in rows.values())
        assert sorted(signed) == sorted(r.serial for r in rows.values())
        return
    assert point in ("before_sign", "after_sign", "record_commit"), point
    assert all(CertState(r.state) is CertState.RESERVED and r.der is None for r in rows.values())
    # (in a batch, the n-th signature may be the batch's second or third)
    if point == "before_sign":
        assert len(signed) < len(enrolled), (signed, enrolled)
    elif point == "after_sign":
        assert 1 <= len(signed) <= len(enrolled), (signed, enrolled)
    else:
        assert len(signed) == len(enrolled), (signed, enrolled)
    assert set(signed) <= {r.serial for r in rows.values()}


@pytest.mark.slow
def test_kill_at_any_point(desk: tuple[Context, Path], tmp_path: Path) -> None:
    ctx, toml = desk
    dialect = ctx.db.engine.dialect.name
    rng = random.Random(f"certdesk crash {dialect}")
    modes = [f"{point}:{rng.randint(1, 3)}" for point in POINTS]
    modes += ["run"] * (ROUNDS[dialect] - len(modes))
    rng.shuffle(modes)
    journals = tmp_path / "journals"
    journals.mkdir()

    journal = Journal()
    for round_no, mode in enumerate(modes):
        lines = run_round(toml, journals, round_no, mode, rng)
        assert lines and lines[0].startswith("ready"), lines
        for line in lines:
            journal.add(line)
        if mode != "run":
            check_point(ctx, mode.split(":")[0], lines)
        print(f"round {round_no:2} {mode:16} killed after {lines[-1].split()[0]!r}")

    check_invariants(ctx, journal)


def check_invariants(ctx: Context, journal: Journal) -> None:
    issuing = load_authority(ctx, ISSUING).certificate
    with ctx.db.read() as conn:
        rows = {r.serial: r for r in conn.execute(select(certificates))}
        n_rows = conn.execute(select(func.count()).select_from(certificates)).scalar_one()
    ours = {s: r for s, r in rows.items() if r.issuer == ISSUING}

    # 2. one row per serial; the journal never saw a serial signed twice (Journal.add checks)
    assert n_rows == len(rows)
    for serial, row in rows.items():
        if row.der is not None:
            cert = x509.load_der_x509_certificate(row.der)
            assert format(cert.serial_number, "x") == serial
            assert row.fingerprint == fingerprint(row.der)
    for serial in journal.signed:
        assert rows[serial].issuer == ISSUING

    # 1. nothing signed without its row; the row holds exactly what was signed
    assert set(journal.issued) <= set(journal.signed)
    for serial, fp in journal.signed.items():
        row = rows.get(serial)
        assert row is not None, f"certificate {serial} was signed and has no database row"
        if serial in journal.issued or row.der is not None:
            assert CertState(row.state) in SIGNED_STATES, (serial, row.state)
            assert row.fingerprint == fp and fingerprint(row.der) == fp, serial
        else:
            assert CertState(row.state) is CertState.RESERVED, (serial, row.state)
    for serial, row in ours.items():
        if row.der is not None:
            assert serial in journal.signed, f"{serial} has DER the CA key never signed"
            cert = x509.load_der_x509_certificate(row.der)
            cert.verify_directly_issued_by(issuing)

    # 3. only reservations lack DER; after the clean-up no reservation is left
    for serial, row in rows.items():
        if row.der is None:
            assert CertState(row.state) in {CertState.RESERVED, CertState.ABANDONED}, serial
    reserved = {s for s, r in rows.items() if CertState(r.state) is CertState.RESERVED}
    closed = abandon_stale_reservations(ctx, older_than=dt.timedelta(0))
    assert set(closed) == reserved
    with ctx.db.read() as conn:
        rows = {r.serial: r for r in conn.execute(select(certificates))}
        records = conn.execute(
            select(audit_log.c.action, audit_log.c.object_id, audit_log.c.after).where(
                audit_log.c.object_type == "certificate"
            )
        ).all()
    ours = {s: r for s, r in rows.items() if r.issuer == ISSUING}
    assert not any(CertState(r.state) is CertState.RESERVED for r in rows.values())

    # 4. the audit chain is intact
    report = verify_chain(ctx)
    assert report.ok, report.problems

    # 5. the audit log matches the table, record for record
    by_action: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    issue_fp: dict[str, str] = {}
    for action, object_id, after in records:
        by_action[action][object_id] += 1
        if action == "certificate.issue":
            issue_fp[object_id] = json.loads(after)["fingerprint"]
    assert sum(by_action["certificate.reserve"].values()) == len(ours)
    assert by_action["certificate.reserve"] == collections.Counter(ours.keys())
    with_der = {s for s, r in ours.items() if r.der is not None}
    assert by_action["certificate.issue"] == collections.Counter(with_der)
    assert issue_fp == {s: ours[s].fingerprint for s in with_der}
    abandoned = {s for s, r in ours.items() if CertState(r.state) is CertState.ABANDONED}
    assert by_action["certificate.abandon"] == collections.Counter(abandoned)
    revoked = {s for s, r in rows.items() if CertState(r.state) is CertState.REVOKED}
    assert by_action["certificate.revoke"] == collections.Counter(revoked)

    # 6. returned revocations are in the database; interrupted ones are all or nothing
    assert journal.revoked <= revoked
    for serial in journal.revoking:
        assert CertState(rows[serial].state) in {CertState.REVOKED, CertState.ACTIVE}, serial
        assert (rows[serial].revoked_at is None) == (serial not in revoked), serial

    print(
        f"{ctx.db.engine.dialect.name}: {len(journal.signed)} signed, {len(journal.issued)} "
        f"returned, {len(with_der)} recorded, {len(abandoned)} abandoned after a crash, "
        f"{len(revoked)} revoked ({len(set(journal.revoking) - journal.revoked)} interrupted)"
    )
    # the rounds did real work and the crashes landed inside it
    assert len(journal.issued) >= 20 and journal.revoked
    assert abandoned and len(journal.signed) > len(journal.issued)
