"""Refused signed requests (bad algorithm, wrong key, bad signature, replayed nonce…) leave an
audit record — aggregated, so that an attacker cannot flood the audit chain or the journal.

Refusals are counted in memory per (code, claimed certificate serial) and written as one audit
record per key and window (`renewal.refusal_window_seconds`) with the count, first and last time
and a few of the sources. At most `MAX_KEYS` keys are kept per window; further keys are counted
under one overflow key (`*`). So a window costs at most `MAX_KEYS + 1` records, however many
requests were refused. The window is written when the next signed request arrives after it,
and when the server stops; a process killed in between loses that window's counts (a count,
never a state change).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from certdesk.services.context import Context

MAX_KEYS = 20
MAX_SOURCES = 5
OVERFLOW = "*"
log = logging.getLogger("certdesk.refusals")


@dataclass
class _Tally:
    count: int
    first: dt.datetime
    last: dt.datetime
    sources: list[str] = field(default_factory=list)


class RefusalLog:
    """Counts refusals and writes them as aggregated audit records; one per process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.window = dt.timedelta(seconds=ctx.config.renewal.refusal_window_seconds)
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._since = ctx.clock.now()

    def note(self, code: str, serial: str | None, source: str) -> None:
        """Count one refused request (`serial` as the request claimed it, unverified)."""
        now = self.ctx.clock.now()
        key = (code, (serial or "")[:64])
        with self._lock:
            if key not in self._tallies and len(self._tallies) >= MAX_KEYS:
                key = (OVERFLOW, "")
            tally = self._tallies.setdefault(key, _Tally(0, now, now))
            tally.count += 1
            tally.last = now
            if source not in tally.sources and len(tally.sources) < MAX_SOURCES:
                tally.sources.append(source[:64])
        self.flush_due()

    def due(self) -> bool:
        """The window has ended with refusals counted in it: `flush_due` would write."""
        return bool(self._tallies) and self._ended()

    def _ended(self) -> bool:
        return self.ctx.clock.now() - self._since >= self.window

    def flush_due(self) -> int:
        """Write the window's records once it has ended; how many were written. Called on the
        request path, so a failed write is logged, never raised over the request's own answer."""
        if not self._ended():
            return 0
        try:
            return self.flush()
        except Exception:  # e.g. the journal refuses writes: the counts are lost, not the answer
            log.exception("refused requests could not be recorded")
            return 0

    def flush(self) -> int:
        """Write what was counted so far (one record per key) and start a new window."""
        now = self.ctx.clock.now()
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            since, self._since = self._since, now
        if not tallies:
            return 0
        with self.ctx.db.write() as conn:
            for (code, serial), t in sorted(tallies.items()):
                after = {
                    "code": code,
                    "serial": serial or None,
                    "count": t.count,
                    "first": t.first.isoformat(),
                    "last": t.last.isoformat(),
                    "sources": t.sources,
                    "window_start": since.isoformat(),
                }
                self.ctx.record(conn, now, "renewal.refused", "refusal", code, after=after)
        return len(tallies)
