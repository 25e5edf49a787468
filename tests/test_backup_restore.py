"""Backup, then life goes on, then the database is lost: restore from the backup and the journal
forgets nothing (issuances, renewals, revocations, a departure, CRL numbers), on SQLite and
PostgreSQL; a log cut at its end is caught by the signed checkpoints."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import delete, update

from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState, PersonState
from certdesk.services import registry
from certdesk.services.audit_log import verify_chain
from certdesk.services.backup import hold_server_lock, restore, take_backup
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.certificates import get_certificate
from certdesk.services.checkpoints import write_checkpoint
from certdesk.services.context import Context
from certdesk.services.crl_publish import publish_crl
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.journal import attach
from certdesk.services.maintenance import run_maintenance
from certdesk.services.ocsp import OcspResponder
from certdesk.services.ocsp_responders import ensure_responders
from certdesk.services.renewal import Renewals
from certdesk.services.revocation import revoke
from certdesk.store.db import Database
from certdesk.store.journal import segments
from certdesk.store.migrate import upgrade
from certdesk.store.ocsp import certificate_and_response
from certdesk.store.tables import audit_head, audit_log
from conftest import make_config, openssl
from test_renewal import DAY, Holder

PEOPLE = 51


def journalled(
    config_dir: Path, db_url: str, clock: FixedClock, segment_bytes: int | None = None
) -> Context:
    """A context as `Context.open` makes one: migrated, with its journal attached."""
    db = Database(db_url)
    upgrade(db)
    config = make_config(config_dir, db_url).replace(issuance={"lint": False})
    if segment_bytes is not None:
        config = config.replace(journal={"segment_bytes": segment_bytes})
    attach(config, db, clock, "test")
    return Context(config, db, clock, actor="test")


def test_restore_forgets_nothing(tmp_path: Path, db_url: str, clock: FixedClock) -> None:
    ctx = journalled(tmp_path, db_url, clock)
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    for n in range(PEOPLE):
        registry.add_person(ctx, f"p-{n:03}", f"Person {n}", "FIN", f"p{n}@fin.example")
    before_crl = publish_crl(ctx)
    backup = take_backup(ctx, tmp_path / "backups")
    assert backup.path.is_file() and backup.seq > 0

    # after the backup: 50 issuances, 20 renewals, 10 revocations, a departure, two CRLs
    issuance = Issuance(ctx)
    renewals = Renewals(ctx, issuance)
    holders = []
    for n in range(50):
        key = ec.generate_private_key(ec.SECP256R1())
        issued = issuance.issue(OfficerEnrolment(ctx, f"p-{n:03}", key.public_key()))
        holders.append(Holder(renewals, key, issued.serial))
    first_crl = publish_crl(ctx)
    clock.advance(340 * DAY)  # in the renewal window
    renewed = []
    for holder in holders[:20]:
        new_key = ec.generate_private_key(ec.SECP256R1())
        pending = holder.renew(new_key)
        holder.confirm(pending.serial, new_key)
        renewed.append(pending.serial)
    revoked = [h.serial for h in holders[20:30]]
    for serial in revoked:
        revoke(ctx, serial, "keyCompromise")
    departure = registry.mark_departed(ctx, "p-030")
    assert departure.revoked == [holders[30].serial]
    last_crl = publish_crl(ctx)
    assert first_crl.number > before_crl.number and last_crl.number > first_crl.number
    run_maintenance(ctx)  # signs a checkpoint of the audit head
    known = {s: get_certificate(ctx, s).state for s in [h.serial for h in holders] + renewed}
    assert sum(state is CertState.REVOKED for state in known.values()) == 11
    assert sum(state is CertState.SUPERSEDED for state in known.values()) == 20
    ctx.db.dispose()

    # the database is lost; the backup is put back and the journal replayed
    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    assert done.seq == backup.seq
    assert done.replayed.actions["certificate.issue"] == 70
    assert done.replayed.actions["certificate.revoke"] == 11
    assert done.replayed.actions["person.depart"] == 1

    back = journalled(tmp_path, db_url, clock)
    assert back.db.refusal is None
    assert {s: get_certificate(back, s).state for s in known} == known
    assert registry.find_person(back, "p-030").state is PersonState.DEPARTED
    report = verify_chain(back)
    assert report.ok, report.problems
    assert report.checkpoint is not None and report.checkpoint.seq == done.replayed.last

    clock.advance(DAY)
    crl = publish_crl(back)
    assert crl.number > last_crl.number
    text = openssl("crl", "-inform", "DER", "-in", crl.der_path, "-noout", "-text").stdout
    listed = {
        int(line.split(":", 1)[1], 16) for line in text.splitlines() if "Serial Number:" in line
    }
    superseded = [h.serial for h in holders[:20]]
    expected = {int(s, 16) for s in [*revoked, holders[30].serial, *superseded]}
    assert listed == expected, "a revocation was forgotten"
    number = re.search(r"X509v3 CRL Number:\s*\n\s*(\d+)", text)
    assert number is not None and int(number.group(1)) == crl.number
    # the restored server goes on: a new issuance is journalled and replayable again
    key = ec.generate_private_key(ec.SECP256R1())
    Issuance(back).issue(OfficerEnrolment(back, "p-050", key.public_key()))
    assert verify_chain(back).ok
    back.db.dispose()


def test_copied_back_database_is_refused_until_restore(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    """The issue's scenario, SQLite file copied back: writes are refused (the old copy would
    forget revocations); `restore` without a backup replays the journal into it."""
    if not db_url.startswith("sqlite"):
        pytest.skip("copying the database file back is the SQLite case")
    ctx = journalled(tmp_path, db_url, clock)
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    registry.add_person(ctx, "p-001", "Zhang San", "FIN", "zhang@fin.example")
    backup = take_backup(ctx, tmp_path / "copy.db")
    issued = Issuance(ctx).issue(
        OfficerEnrolment(ctx, "p-001", ec.generate_private_key(ec.SECP256R1()).public_key())
    )
    revoke(ctx, issued.serial, "keyCompromise")
    ctx.db.dispose()
    live = Path(ctx.db.url.removeprefix("sqlite:///"))
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    live.write_bytes(backup.path.read_bytes())

    copied = journalled(tmp_path, db_url, clock)
    assert copied.db.refusal is not None
    assert copied.db.refusal.code == "journal.ahead_of_database"
    with pytest.raises(CertdeskError) as refused:
        registry.add_unit(copied, "HR", "Human Resources", "x", "x@hr.example", "1")
    assert refused.value.code == "journal.ahead_of_database"
    assert "certdesk restore" in refused.value.message("en")
    copied.db.dispose()

    done = restore(ctx.config, None, "test", accept_loss=False, clock=clock)
    assert done.refusal is None and done.replayed.transactions >= 2
    back = journalled(tmp_path, db_url, clock)
    assert get_certificate(back, issued.serial).state is CertState.REVOKED
    back.db.dispose()


def test_checkpoint_catches_a_truncated_log(tmp_path: Path, db_url: str, clock: FixedClock) -> None:
    ctx = journalled(tmp_path, db_url, clock)
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    for n in range(3):
        registry.add_person(ctx, f"p-{n}", f"Person {n}", "FIN", f"p{n}@fin.example")
    point = write_checkpoint(ctx)
    assert point is not None and write_checkpoint(ctx) is None  # nothing new to sign
    ctx.db.journal = None  # the intruder bypasses certdesk: SQL straight at the database
    with ctx.db.write() as conn:
        kept = point.seq - 2
        keep_hash = conn.execute(audit_log.select().where(audit_log.c.seq == kept)).one().hash
        conn.execute(delete(audit_log).where(audit_log.c.seq > kept))
        conn.execute(update(audit_head).values(seq=kept, hash=keep_hash))
    report = verify_chain(ctx)
    assert [p.kind for p in report.problems] == ["truncated"]
    assert str(point.seq) in report.problems[0].detail

    # the log grows again past the checkpoint, with another history: a rollback
    for n in range(3, 6):
        registry.add_person(ctx, f"p-{n}", f"Person {n}", "FIN", f"p{n}@fin.example")
    report = verify_chain(ctx)
    assert [p.kind for p in report.problems] == ["rolled back"]
    # a checkpoint edited to match is refused by its signature
    points = ctx.config.journal_dir / "checkpoints.log"
    forged = points.read_text().replace(point.hash, audit_hash(ctx, point.seq))
    points.write_text(forged)
    assert [p.kind for p in verify_chain(ctx).problems] == ["checkpoint"]

    # the same log without the checkpoint looks intact: the checkpoint is what catches it
    points.unlink()
    assert verify_chain(ctx).ok
    ctx.db.dispose()


def audit_hash(ctx: Context, seq: int) -> str:
    with ctx.db.read() as conn:
        return str(conn.execute(audit_log.select().where(audit_log.c.seq == seq)).one().hash)


def test_crl_numbers_follow_time_and_never_go_back(ca_ctx: Context) -> None:
    first = publish_crl(ca_ctx)
    second = publish_crl(ca_ctx)  # the same second: one more
    assert second.number == first.number + 1
    assert isinstance(ca_ctx.clock, FixedClock)
    ca_ctx.clock.advance(dt.timedelta(hours=1))
    assert publish_crl(ca_ctx).number >= first.number + 3600


def test_restore_refuses_while_a_server_runs(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    ctx = journalled(tmp_path, db_url, clock)
    backup = take_backup(ctx, tmp_path / "b.db")
    ctx.db.dispose()
    held = hold_server_lock(ctx.config)  # what `certdesk serve` holds for its life
    try:
        with pytest.raises(CertdeskError) as refused:
            restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
        assert refused.value.code == "server.already_running"
    finally:
        held.release()
    assert restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock).refusal is None


def test_first_ocsp_answers_stay_out_of_the_journal(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    """What `serve` issues is recorded with its OCSP response; the journal keeps the certificate
    and not the response (derived: signed again from the certificates after a restore)."""
    ctx = journalled(tmp_path, db_url, clock)
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    registry.add_person(ctx, "p-000", "Person 0", "FIN", "p0@fin.example")
    ensure_responders(ctx)
    responder = OcspResponder(ctx)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issuance = Issuance(ctx, answers=responder.answers_for)
    issued = issuance.issue(OfficerEnrolment(ctx, "p-000", key))
    with ctx.db.read() as conn:
        _row, stored = certificate_and_response(conn, issued.issuer, issued.serial)
    assert stored is not None and stored.status == "good"
    journal = "".join(p.read_text() for p in segments(ctx.config.journal_dir))
    assert issued.serial in journal and "ocsp_responses" not in journal
