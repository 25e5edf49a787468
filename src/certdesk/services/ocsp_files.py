"""This machine's copy of the stored OCSP responses, as the files nginx serves.

One file per canonical response, `<data_dir>/ocsp-files/ocsp/<base64 request>` (the name nginx's
`$uri` gives the GET request), whose modification time is the response's thisUpdate. That time
lets a file be checked against the database by a `stat` alone, and keeps an older response from
replacing a newer one when two writers race (two processes of one machine, or a late write).

The database is the truth and the files are derived. Every process keeps its machine's files in
line with it (`OcspResponder.mirror_files`, at start and every few minutes): a crash between a
commit and its file, a response another machine's jobs holder refreshed (without that, a
machine that no longer holds the jobs lease would go on serving responses past their
nextUpdate), and the files of expired certificates are all settled there.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from certdesk.ca.ocsp import Question, file_name, request_der
from certdesk.services.files import atomic_write

_TEMPORARY_AGE = 60.0  # seconds: an older temporary file was left by a writer that died


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the file of one stored response must be: its thisUpdate (whole seconds) and size."""

    issuer: str
    serial: str
    this_update: int
    size: int


@dataclass(frozen=True)
class MirrorReport:
    checked: int
    written: int
    removed: int


def name_of(question: Question) -> str | None:
    """The file's path under the directory, as the file system resolves nginx's `$uri` (a
    repeated `/` is one); None when no file can have it (a name ending in `/`: nginx hands
    that request to certdesk)."""
    name = file_name(request_der(question))
    return None if name.endswith("/") else str(PurePosixPath(name))


class OcspFiles:
    """The directory nginx serves the responses from (`ocsp.files`; disabled: nothing is
    written and nothing checked)."""

    def __init__(self, directory: Path, *, enabled: bool = True) -> None:
        self.directory = directory
        self.enabled = enabled

    def write(self, entries: Iterable[tuple[str, bytes, dt.datetime]]) -> int:
        """Write (name, DER, thisUpdate) entries, each unless its file already holds a newer
        response; returns how many were written."""
        if not self.enabled:
            return 0
        written = 0
        for name, der, this_update in entries:
            path = self.directory / name
            when = this_update.timestamp()
            try:
                if path.stat().st_mtime > when:
                    continue
            except FileNotFoundError:
                pass
            atomic_write(path, der, durable=False, mtime=when)
            written += 1
        return written

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            (self.directory / name).unlink(missing_ok=True)

    def stale(self, wanted: Mapping[str, Wanted], since: float) -> tuple[list[Wanted], int]:
        """Compare the directory with `wanted` (by name): the entries whose file is missing or
        differs in thisUpdate or size, and how many files no stored response wants were
        removed — except those changed after `since` (POSIX time: written while `wanted` was
        read) and temporary files changed in the minute before (a live writer may be about to
        rename one)."""
        if not self.enabled:
            return [], 0
        seen: set[str] = set()
        stale: list[Wanted] = []
        removed = 0
        for root, _dirs, files in os.walk(self.directory):
            for file in files:
                path = os.path.join(root, file)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue  # replaced or removed by another writer meanwhile
                name = os.path.relpath(path, self.directory)
                want = wanted.get(name)
                if want is not None:
                    seen.add(name)
                    if (int(st.st_mtime), st.st_size) != (want.this_update, want.size):
                        stale.append(want)
                    continue
                temporary = file.startswith(".") and file.endswith(".tmp")
                if st.st_ctime < since - (_TEMPORARY_AGE if temporary else 0.0):
                    Path(path).unlink(missing_ok=True)
                    removed += 1
        stale += [want for name, want in wanted.items() if name not in seen]
        return stale, removed
