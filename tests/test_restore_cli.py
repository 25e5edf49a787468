"""`certdesk backup` and `certdesk restore` as an operator runs them: the real console script in
a subprocess. A restore whose journal is gone refuses to write (and `serve` refuses to start)
with a message in both languages, until the operator accepts the loss explicitly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli import Desk, assert_refused, flat
from test_web import free_port


def test_restore_without_the_journal_needs_an_explicit_acceptance(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    desk.ok("ca", "init")
    desk.ok("unit", "add", "FIN", "Finance Bureau")
    (tmp_path / "backups").mkdir()
    made = desk.ok("backup", str(tmp_path / "backups"))
    assert "audit record" in made.stdout
    (backup,) = (tmp_path / "backups").iterdir()
    desk.ok("unit", "add", "HR", "Human Resources")  # after the backup: only in the journal
    desk.ok("audit", "checkpoint")
    assert "BEGIN PUBLIC KEY" in desk.ok("audit", "checkpoint", "--public-key").stdout

    # with its journal, a restore gives back what came after the backup
    restored = desk.ok("restore", str(backup))
    assert "Replayed from the journal" in flat(restored.stdout)
    units = desk.json("unit", "list")
    assert isinstance(units, list) and {u["code"] for u in units} == {"FIN", "HR"}
    verified = json.loads(desk.ok("audit", "verify", "--json").stdout)
    assert verified["ok"] and verified["checkpoint"] is not None

    # the journal is lost: the restore says what may be missing, and nothing writes
    shutil.rmtree(tmp_path / "var" / "journal")
    refused = desk.run("restore", str(backup))
    assert_refused(refused, 7, "journal.missing", "may be missing", "--accept-loss")
    zh = desk.run("unit", "add", "OPS", "Operations", lang="zh_CN.UTF-8")
    assert_refused(zh, 7, "journal.missing", "日志文件", "可能丢失")
    port = str(free_port())
    serve = desk.run("serve", "--port", port, "--plain-http")
    assert_refused(serve, 7, "journal.missing")
    assert {u["code"] for u in desk.json("unit", "list")} == {"FIN"}  # reading still works

    accepted = desk.ok("restore", "--accept-loss")
    assert "Loss accepted" in flat(accepted.stdout)
    desk.ok("unit", "add", "OPS", "Operations")
    assert json.loads(desk.ok("audit", "verify", "--json").stdout)["ok"]


def test_journal_status_lists_the_segments(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    desk.ok("unit", "add", "FIN", "Finance Bureau")
    status = desk.json("journal", "status")
    assert isinstance(status, dict) and status["refusal"] is None
    (segment,) = status["segments"]
    assert segment[0] == "journal-000000000001.log" and segment[1] > 0
    assert status["journal_last"] == status["database_head"] > 0
    assert "journal-000000000001.log" in flat(desk.ok("journal", "status").stdout)
