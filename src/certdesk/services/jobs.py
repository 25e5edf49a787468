"""Periodic work of a server process on one thread: each job runs every so often, and those
marked `on_wake` also run as soon as `wake()` is called (after a commit that changed a
certificate, so OCSP answers change within moments). A failing job is logged and retried at its
next turn; it never stops the others.

Jobs marked `once` must run in one process of the installation at a time (maintenance, CRL
republishing, OCSP pre-signing, reminders): they run only while this process holds the jobs
lease (`store/leases.py`). A process without it tries again every `takeover` seconds, so when
the holder dies a survivor takes the jobs within that time and runs them at once. The others
(the OCSP change feed, which refreshes this process's memory) run in every process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from certdesk.store import leases
from certdesk.store.leases import Lease

if TYPE_CHECKING:
    from certdesk.services.context import Context

log = logging.getLogger("certdesk.jobs")


@dataclass
class Job:
    name: str
    every: float  # seconds
    run: Callable[[], object]
    on_wake: bool
    due: float
    once: bool = False


class JobRunner:
    def __init__(self, lease: Lease | None = None, takeover: float = 10.0) -> None:
        self._lease = lease
        self._takeover = takeover
        self._checked = 0.0  # when the lease was last taken or confirmed (monotonic)
        self.leading = lease is None  # without a lease (one process): always
        self._jobs: list[Job] = []
        self._woken = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def add(
        self,
        name: str,
        every: float,
        run: Callable[[], object],
        *,
        on_wake: bool = False,
        first_in: float = 0.0,
        once: bool = False,
    ) -> None:
        """Run `run` every `every` seconds, the first time `first_in` seconds after `start`;
        `once`: only while this process holds the jobs lease."""
        self._jobs.append(Job(name, every, run, on_wake, first_in, once))

    def lead(self) -> bool:
        """Take the lease or confirm it is still held (the database connection behind it is
        alive); True while this process runs the `once` jobs."""
        if self._lease is None:
            return True
        was = self.leading
        self.leading = self._lease.take()
        self._checked = time.monotonic()
        if was and not self.leading:
            log.warning("jobs lease lost: another process runs the jobs")
        elif self.leading and not was and self._thread is not None:
            log.warning("jobs lease taken over: running the jobs now")
            for job in self._jobs:
                if job.once:
                    job.due = min(job.due, self._checked)
        return self.leading

    def wake(self) -> None:
        """Run the `on_wake` jobs now (callable from any thread, cheap)."""
        self._woken.set()

    def start(self) -> None:
        now = time.monotonic()
        for job in self._jobs:
            job.due += now
        self._thread = threading.Thread(target=self._loop, name="certdesk-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._lease is not None:
            self._lease.release()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            dues = [job.due for job in self._jobs if self.leading or not job.once]
            if self._lease is not None:
                dues.append(self._checked + self._takeover)
            wait = min(dues, default=time.monotonic() + 60)
            woken = self._woken.wait(max(0.0, wait - time.monotonic()))
            if self._stopped.is_set():
                return
            self._woken.clear()
            now = time.monotonic()
            # without the lease: try every `takeover` seconds, not at every wake (a wake
            # follows every certificate change); with it: confirm it before a round of jobs
            if self._lease is not None and (
                now >= self._checked + self._takeover
                or (self.leading and any(job.once and now >= job.due for job in self._jobs))
            ):
                self.lead()
            for job in self._jobs:
                if job.once and not self.leading:
                    continue
                if (woken and job.on_wake) or time.monotonic() >= job.due:
                    self._run(job)

    def _run(self, job: Job) -> None:
        try:
            job.run()
        except Exception:  # keep serving; the next turn tries again
            log.exception("job %s failed", job.name)
        job.due = time.monotonic() + job.every


def holder_name() -> str:
    """How this process is named as the lease holder: host and process id."""
    return f"certdesk-jobs {socket.gethostname()} pid {os.getpid()}"


def jobs_lease(ctx: Context) -> Lease | None:
    """The installation's jobs lease for this process (None for an in-memory database, which no
    other process can share)."""
    db = ctx.db
    if not db.is_sqlite:
        return leases.AdvisoryLease(db.url, holder_name())
    path = leases.lock_file_for(db.url)
    return None if path is None else leases.FileLease(path, holder_name())


def lease_holder(ctx: Context) -> str | None:
    """Who runs the installation's jobs now (None: nobody, e.g. no server running)."""
    if not ctx.db.is_sqlite:
        with ctx.db.read() as conn:
            return leases.advisory_holder(conn)
    path = leases.lock_file_for(ctx.db.url)
    return None if path is None else leases.file_holder(path)


def runner_for(ctx: Context) -> JobRunner:
    """A job runner holding this installation's lease, retried every `jobs_takeover_seconds`."""
    return JobRunner(jobs_lease(ctx), float(ctx.config.server.jobs_takeover_seconds))
