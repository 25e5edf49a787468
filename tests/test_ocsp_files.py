"""The OCSP files nginx serves are this machine's copy of the stored responses: written by the
change feed for what the process published, never replaced by an older response, and brought in
line with the database by `mirror_files` — a crash between commit and file, a refresh another
machine's jobs holder signed, a response no longer stored. Checked with `openssl ocsp`."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from certdesk.ca.ocsp import Question, canonical_question
from certdesk.domain.clock import FixedClock
from certdesk.services.authorities import ISSUING, load_authority
from certdesk.services.context import Context
from certdesk.services.issuance import Issuance, IssuedCertificate
from certdesk.services.ocsp import OcspResponder
from certdesk.services.revocation import revoke
from certdesk.store import ocsp as ocsp_store
from test_ocsp import enrol_filed, openssl_status
from test_shared_state import machine_b  # noqa: F401 (a fixture)


def question_of(ctx: Context, issued: IssuedCertificate) -> Question:
    issuing = load_authority(ctx, ISSUING).certificate
    assert issuing is not None
    return canonical_question(issuing, issued.certificate.serial_number)


def status_on_file(ctx: Context, tmp_path: Path, path: Path, question: Question) -> str:
    return openssl_status(ctx, tmp_path, path.read_bytes(), question.serial)


def test_the_feed_files_what_was_published(ca_ctx: Context, tmp_path: Path) -> None:
    """A renewal's batch does not wait for the file system: the committing thread only keeps
    the answer; the feed (or a server's shutdown) writes the file, its mtime the thisUpdate."""
    responder = OcspResponder(ca_ctx)
    responder.presign()  # the responders
    issued = enrol_filed(ca_ctx, "p-fed", Issuance(ca_ctx, answers=responder.answers_for))
    question = question_of(ca_ctx, issued)
    path = responder.file_path(question)
    assert not path.exists()
    responder.file_published()
    assert ": good" in status_on_file(ca_ctx, tmp_path, path, question)
    with ca_ctx.db.read() as conn:
        (row,) = ocsp_store.responses_of(conn, ISSUING, [issued.serial])
    assert path.stat().st_mtime == row.this_update.timestamp()
    assert path.read_bytes() == bytes(row.der)


def test_an_older_response_never_replaces_a_newer_file(
    ca_ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    """Two processes of one machine share the directory: a late write of the "good" answer
    (published before the revocation) must not undo the "revoked" one."""
    responder = OcspResponder(ca_ctx)
    responder.presign()
    other = OcspResponder(ca_ctx)  # the other process: its feed re-signs the revocation
    issued = enrol_filed(ca_ctx, "p-race", Issuance(ca_ctx, answers=responder.answers_for))
    question = question_of(ca_ctx, issued)
    clock.advance(dt.timedelta(seconds=5))
    revoke(ca_ctx, issued.serial, "keyCompromise")
    assert other.apply_changes() == [issued.serial]
    path = responder.file_path(question)
    assert ": revoked" in status_on_file(ca_ctx, tmp_path, path, question)
    responder.file_published()  # the late "good"
    assert ": revoked" in status_on_file(ca_ctx, tmp_path, path, question)


def test_mirror_repairs_what_a_crash_left(ca_ctx: Context, tmp_path: Path) -> None:
    """Killed between the commit and the file: the revocation is stored, the machine's file
    still says "good" (or there is none); the start-up mirror writes the stored answers, and
    removes a file no stored response wants and a dead writer's temporary file."""
    responder = OcspResponder(ca_ctx)
    responder.presign()
    kept = enrol_filed(ca_ctx, "p-kept")
    lost = enrol_filed(ca_ctx, "p-lost")
    responder.presign()  # both filed "good"
    kept_q, lost_q = question_of(ca_ctx, kept), question_of(ca_ctx, lost)
    good = responder.file_path(kept_q).read_bytes()
    good_mtime = responder.file_path(kept_q).stat().st_mtime
    revoke(ca_ctx, kept.serial, "keyCompromise")
    assert responder.apply_changes() == [kept.serial]
    # the crash: the revoked file never written (the good one back, as it was), the other lost
    stale = responder.file_path(kept_q)
    stale.write_bytes(good)
    os.utime(stale, (good_mtime, good_mtime))
    responder.file_path(lost_q).unlink()
    stray = responder.files.directory / "MFQwUjBQME4wTDAJBgUrDgMCGgUABBQstray"
    stray.write_bytes(b"not ours")
    temporary = responder.files.directory / ".MFQwU.123-abcd-1.tmp"  # a writer's, unfinished
    temporary.write_bytes(b"half")

    after_restart = OcspResponder(ca_ctx)
    report = after_restart.mirror_files()
    assert report.written == 2
    assert ": revoked" in status_on_file(ca_ctx, tmp_path, stale, kept_q)
    assert ": good" in status_on_file(ca_ctx, tmp_path, responder.file_path(lost_q), lost_q)
    assert report.removed == 1 and not stray.exists()
    assert temporary.exists()  # its writer may be about to rename it
    again = after_restart.mirror_files()
    assert (again.written, again.removed) == (0, 0)  # in line: a stat per file, nothing more
    # a minute on, nobody renames it any more: its writer died
    assert after_restart.files.stale({}, since=time.time() + 61)[1] >= 1
    assert not temporary.exists()


def test_mirror_removes_files_no_response_wants(ca_ctx: Context) -> None:
    """Another machine's jobs holder dropped an expired certificate's response: this machine's
    file goes at its next mirror (files written while the mirror reads are kept)."""
    responder = OcspResponder(ca_ctx)
    issued = enrol_filed(ca_ctx, "p-gone")
    responder.presign()
    path = responder.file_path(question_of(ca_ctx, issued))
    assert path.exists()
    with ca_ctx.db.write() as conn:
        conn.execute(
            ocsp_store.ocsp_responses.delete().where(
                ocsp_store.ocsp_responses.c.serial == issued.serial
            )
        )
    assert responder.files.stale({}, since=time.time() - 3600) == ([], 0)  # newer: kept
    assert responder.mirror_files().removed == 1
    assert not path.exists()


def test_a_machine_without_the_lease_gets_the_refreshed_responses(
    ca_ctx: Context,
    machine_b: Context,  # noqa: F811 (the fixture)
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    """Machine B once held the jobs lease and filed its responses; A holds it now and
    re-signs them before their nextUpdate. B's mirror copies the refreshed ones: without it B's
    nginx would serve responses past their nextUpdate."""
    issued = enrol_filed(ca_ctx, "p-refresh")
    on_b = OcspResponder(machine_b)
    on_b.presign()
    question = question_of(ca_ctx, issued)
    on_b_file = on_b.file_path(question)
    before = on_b_file.read_bytes()
    clock.advance(dt.timedelta(hours=ca_ctx.config.ocsp.response_hours - 1))
    on_a = OcspResponder(ca_ctx)
    assert on_a.presign().signed >= 1
    assert on_b_file.read_bytes() == before  # A wrote only its own machine's files
    assert on_b.mirror_files().written >= 1
    assert on_b_file.read_bytes() == on_a.file_path(question).read_bytes() != before
    out = status_on_file(machine_b, tmp_path, on_b_file, question)
    assert ": good" in out
