"""The journal's crash windows, with a real kill -9 of a writing process at each of them:

- after the journal line is fsynced, before the database commits: the change never happened,
  and neither the next start nor a restore brings it back;
- after the commit, before the `ok` marker: the next start settles it as committed, and a
  restore from an older backup replays it;
- the same, but the database is lost before any restart: after a restore nobody can know, so
  writes are refused (`journal.in_doubt`) until the operator accepts.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from certdesk.domain.clock import FixedClock
from certdesk.services import registry
from certdesk.services.backup import restore, take_backup
from certdesk.services.context import Context
from certdesk.services.journal import accept_loss
from certdesk.store import journal
from test_backup_restore import journalled

# A writer that adds one unit and is SIGKILLed inside the journal's window named by argv[3]:
# a method of `Journal`, or a point of starting a new segment (every line starts one).
WORKER = """
import os, signal, sys
from pathlib import Path
from certdesk.domain.clock import FixedClock
from certdesk.services import registry
from certdesk.store import journal
sys.path.insert(0, sys.argv[4])
from test_backup_restore import journalled
from conftest import START

window = sys.argv[3]
rotating = window.startswith("rotate")
ctx = journalled(Path(sys.argv[1]), sys.argv[2], FixedClock(START), 1 if rotating else None)

def die(*_args):
    os.kill(os.getpid(), signal.SIGKILL)

if window == "rotate_before_rename":  # the new segment is written under its temporary name
    os.rename = die
elif window == "rotate_created":  # the new segment is durable, the line is not in it yet
    create = journal.Journal._create
    journal.Journal._create = lambda self, name, header: die(create(self, name, header))
else:
    original = getattr(journal.Journal, window)

    def then_die(self, capture):
        if window == "before_commit":
            original(self, capture)  # the line is durable; the commit never comes
        die()  # committed: the marker never comes

    setattr(journal.Journal, window, then_die)
registry.add_unit(ctx, sys.argv[5], "Unit " + sys.argv[5])
"""


def killed_while_adding(tmp_path: Path, db_url: str, window: str, code: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER,
            str(tmp_path),
            db_url,
            window,
            str(Path(__file__).parent),
            code,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def units(ctx: Context) -> set[str]:
    return {u.code for u in registry.list_units(ctx)}


def test_kill_in_each_window(tmp_path: Path, db_url: str, clock: FixedClock) -> None:
    ctx = journalled(tmp_path, db_url, clock)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    backup = take_backup(ctx, tmp_path / "before.db")
    ctx.db.dispose()

    killed_while_adding(tmp_path, db_url, "before_commit", "LOST")
    ctx = journalled(tmp_path, db_url, clock)
    assert ctx.db.refusal is None and units(ctx) == {"FIN"}  # settled: void
    registry.add_unit(ctx, "KEPT", "Kept")
    ctx.db.dispose()

    killed_while_adding(tmp_path, db_url, "committed", "COMMITTED")
    ctx = journalled(tmp_path, db_url, clock)
    assert ctx.db.refusal is None and units(ctx) == {"FIN", "KEPT", "COMMITTED"}  # settled: ok
    ctx.db.dispose()

    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None
    ctx = journalled(tmp_path, db_url, clock)
    assert units(ctx) == {"FIN", "KEPT", "COMMITTED"}  # LOST never comes back
    ctx.db.dispose()

    # committed, then the database is lost before anything restarted
    killed_while_adding(tmp_path, db_url, "committed", "DOUBT")
    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is not None and done.refusal.code == "journal.in_doubt"
    assert "--accept-loss" in done.refusal.message("en")
    assert "无法确认" in done.refusal.message("zh-CN")
    ctx = journalled(tmp_path, db_url, clock)
    assert ctx.db.refusal is not None and units(ctx) == {"FIN", "KEPT", "COMMITTED"}
    assert accept_loss(ctx.config, ctx.db, clock, "test") is not None
    registry.add_unit(ctx, "AFTER", "After")
    ctx.db.dispose()
    again = journalled(tmp_path, db_url, clock)
    assert again.db.refusal is None and "AFTER" in units(again)
    again.db.dispose()


def test_damage_in_the_middle_refuses_a_torn_tail_does_not(
    tmp_path: Path, db_url: str, clock: FixedClock
) -> None:
    ctx = journalled(tmp_path, db_url, clock)
    for code in ("FIN", "HR", "EDU"):
        registry.add_unit(ctx, code, f"Unit {code}")
    ctx.db.dispose()
    path = journal.segments(ctx.config.journal_dir)[-1]
    path.write_bytes(path.read_bytes() + b'0123 {"k":"tx","first":')  # torn by a crash
    ctx = journalled(tmp_path, db_url, clock)
    assert ctx.db.refusal is None
    registry.add_unit(ctx, "OPS", "Operations")  # appended after cutting the torn line
    ctx.db.dispose()
    assert b'"first":\n' not in path.read_bytes()
    reopened = journalled(tmp_path, db_url, clock)
    assert reopened.db.refusal is None
    reopened.db.dispose()

    lines = path.read_bytes().split(b"\n")
    (index,) = [i for i, line in enumerate(lines) if b"Unit HR" in line]
    lines[index] = lines[index].replace(b"Unit HR", b"Unit XX")  # its hash no longer matches
    path.write_bytes(b"\n".join(lines))
    ctx = journalled(tmp_path, db_url, clock)
    assert ctx.db.refusal is not None and ctx.db.refusal.code == "journal.unreadable"
    message = ctx.db.refusal.message("en")
    assert f"line {index + 1}" in message and "may be missing" in message
    ctx.db.dispose()


def test_kill_while_starting_a_segment(tmp_path: Path, db_url: str, clock: FixedClock) -> None:
    """Every line starts a new segment (`segment_bytes` 1); killed before the new segment is
    renamed into place, and after it is durable but before the line is in it: neither change
    happened, the journal goes on, and a restore replays across all the segments."""
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=1)
    registry.add_unit(ctx, "FIN", "Finance Bureau")
    backup = take_backup(ctx, tmp_path / "before.db")
    registry.add_unit(ctx, "HR", "Human Resources")
    ctx.db.dispose()

    killed_while_adding(tmp_path, db_url, "rotate_before_rename", "LOST")
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=1)
    assert ctx.db.refusal is None and units(ctx) == {"FIN", "HR"}
    registry.add_unit(ctx, "KEPT", "Kept")  # the same segment name: the left-over is replaced
    ctx.db.dispose()

    killed_while_adding(tmp_path, db_url, "rotate_created", "LOST2")
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=1)
    assert ctx.db.refusal is None and units(ctx) == {"FIN", "HR", "KEPT"}
    active = journal.segments(ctx.config.journal_dir)[-1]
    assert active.read_bytes().count(b"\n") == 1  # only its opening line: the head it continues
    registry.add_unit(ctx, "AFTER", "After")  # goes into that segment, named for its first record
    assert journal.segments(ctx.config.journal_dir)[-1] == active
    ctx.db.dispose()

    assert len(journal.segments(ctx.config.journal_dir)) >= 5
    done = restore(ctx.config, backup.path, "test", accept_loss=False, clock=clock)
    assert done.refusal is None, done.refusal
    assert done.replayed.transactions >= 3
    ctx = journalled(tmp_path, db_url, clock, segment_bytes=1)
    assert units(ctx) == {"FIN", "HR", "KEPT", "AFTER"}
    ctx.db.dispose()
