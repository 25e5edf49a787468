"""The journal in segments: a tiny `journal.segment_bytes` over many writes gives several
segments; start-up reads only the last one (older ones cut short or archived away do not stop
it), and a restore replays across segments and says which one may be missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.domain.clock import FixedClock
from certdesk.domain.states import CertState, PersonState
from certdesk.services import registry
from certdesk.services.audit_log import verify_chain
from certdesk.services.backup import restore, take_backup
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.certificates import get_certificate
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.revocation import revoke
from certdesk.store import audit
from certdesk.store.journal import segments
from test_backup_restore import journalled

SMALL = 2048


def head(ctx: Context) -> tuple[int, str]:
    with ctx.db.read() as conn:
        return audit.head(conn)


def opening(path: Path) -> dict[str, object]:
    """A segment's first line: the audit head it continues from."""
    first = path.read_bytes().split(b"\n", 1)[0]
    entry: dict[str, object] = json.loads(first.split(b" ", 1)[1])
    return entry


def units(ctx: Context) -> set[str]:
    return {u.code for u in registry.list_units(ctx)}


def test_segments_follow_each_other_and_start_up_reads_the_last(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    backup = take_backup(ctx, tmp_path / "before.db")
    for n in range(40):
        registry.add_unit(ctx, f"U{n:02}", f"Unit {n} " + "x" * 50)
    ctx.db.dispose()

    found = segments(ctx.config.journal_dir)
    assert len(found) >= 4
    assert found == sorted(found) and all(p.name.startswith("journal-") for p in found)
    assert opening(found[0])["k"] == "start"
    for path in found[1:]:  # named by the first record after the head it opens with
        header = opening(path)
        assert header["k"] == "segment"
        assert path.name == f"journal-{int(str(header['base'])) + 1:012d}.log"
        assert header["journal"] == opening(found[0])["journal"]
    assert all(p.stat().st_size < 2 * SMALL for p in found[:-1])

    # an old segment cut short: start-up does not read it, writes go on
    middle = found[1]
    middle.write_bytes(b"")
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert ctx.db.refusal is None
    registry.add_unit(ctx, "OPS", "Operations")
    ctx.db.dispose()

    # ... but a restore from a backup older than it needs it, and says it may be missing
    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is not None and done.refusal.code == "journal.unreadable"
    message = done.refusal.message("en")
    assert middle.name in message and "may be missing" in message
    assert done.replayed.transactions == 0
    refused = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert refused.db.refusal is not None and units(refused) == {"FIN"}
    refused.db.dispose()


def test_archived_segments_are_needed_only_by_an_older_backup(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    """The operator moves old segments away: start-up does not miss them; a restore from a
    backup they cover refuses (a gap) until they are put back, then brings everything back."""
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    backup = take_backup(ctx, tmp_path / "before.db")
    for n in range(30):
        registry.add_unit(ctx, f"U{n:02}", f"Unit {n} " + "x" * 50)
    expected = units(ctx)
    last = head(ctx)
    ctx.db.dispose()

    archive = tmp_path / "archive"
    archive.mkdir()
    old = segments(ctx.config.journal_dir)[:-1]
    assert len(old) >= 2
    for path in old:
        shutil.move(path, archive / path.name)
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert ctx.db.refusal is None and head(ctx) == last
    ctx.db.dispose()

    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is not None and done.refusal.code == "journal.gap"
    for path in old:  # brought back from the archive
        shutil.move(archive / path.name, path)
    done = restore(ctx.config, None, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    back = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert units(back) == expected and head(back) == last
    back.db.dispose()


def test_restore_replays_across_segments(tmp_path: Path, db_url: str, clock: FixedClock) -> None:
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    init_hierarchy(ctx)
    registry.add_unit(ctx, "FIN", "Finance Bureau", "Li Contact", "it@fin.example", "0771-1")
    for n in range(8):
        registry.add_person(ctx, f"p-{n}", f"Person {n}", "FIN", f"p{n}@fin.example")
    backup = take_backup(ctx, tmp_path / "backups")
    before = len(segments(ctx.config.journal_dir))

    issuance = Issuance(ctx)
    serials = [
        issuance.issue(
            OfficerEnrolment(ctx, f"p-{n}", ec.generate_private_key(ec.SECP256R1()).public_key())
        ).serial
        for n in range(8)
    ]
    for serial in serials[:3]:
        revoke(ctx, serial, "keyCompromise")
    registry.mark_departed(ctx, "p-7")
    assert len(segments(ctx.config.journal_dir)) >= before + 3
    known = {s: get_certificate(ctx, s).state for s in serials}
    assert sum(state is CertState.REVOKED for state in known.values()) == 4
    ctx.db.dispose()

    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    assert done.replayed.actions["certificate.issue"] == 8
    assert done.replayed.actions["certificate.revoke"] == 4
    back = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert back.db.refusal is None
    assert {s: get_certificate(back, s).state for s in serials} == known
    assert registry.find_person(back, "p-7").state is PersonState.DEPARTED
    assert verify_chain(back).ok
    back.db.dispose()


def test_a_journal_of_one_file_goes_on_in_segments(tmp_path: Path, clock: FixedClock) -> None:
    """A journal written before segments (`journal.log`) is the first segment."""
    db_url = f"sqlite:///{tmp_path / 'certdesk.db'}"
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    backup = take_backup(ctx, tmp_path / "before.db")
    ctx.db.dispose()
    (only,) = segments(ctx.config.journal_dir)
    only.rename(only.with_name("journal.log"))

    ctx = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert ctx.db.refusal is None
    for n in range(20):
        registry.add_unit(ctx, f"U{n:02}", f"Unit {n} " + "x" * 50)
    expected = units(ctx)
    ctx.db.dispose()
    found = segments(ctx.config.journal_dir)
    assert found[0].name == "journal.log" and len(found) >= 2
    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    back = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert units(back) == expected
    back.db.dispose()


def test_two_writers_follow_each_others_segments(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    """Two processes' worth of writers on one journal (as `serve --workers`): a segment started
    by one is where the other writes next, so the journal stays one history."""
    one = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    registry.add_unit(one, "FIN", "Finance Bureau")
    backup = take_backup(one, tmp_path / "before.db")
    two = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    for n in range(24):
        registry.add_unit(one if n % 2 else two, f"U{n:02}", f"Unit {n} " + "x" * 50)
    expected = units(one)
    one.db.dispose()
    two.db.dispose()
    assert len(segments(one.config.journal_dir)) >= 3

    again = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert again.db.refusal is None
    again.db.dispose()
    done = restore(one.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    back = journalled(tmp_path, db_url, clock, segment_bytes=SMALL)
    assert units(back) == expected
    back.db.dispose()
