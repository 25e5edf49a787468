"""Periodic work of a server process on one thread: each job runs every so often, and those
marked `on_wake` also run as soon as `wake()` is called (after a commit that changed a
certificate, so OCSP answers change within moments). A failing job is logged and retried at its
next turn; it never stops the others."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("certdesk.jobs")


@dataclass
class Job:
    name: str
    every: float  # seconds
    run: Callable[[], object]
    on_wake: bool
    due: float


class JobRunner:
    def __init__(self) -> None:
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
    ) -> None:
        """Run `run` every `every` seconds, the first time `first_in` seconds after `start`."""
        self._jobs.append(Job(name, every, run, on_wake, first_in))

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

    def _loop(self) -> None:
        while not self._stopped.is_set():
            wait = min((job.due for job in self._jobs), default=time.monotonic() + 60)
            woken = self._woken.wait(max(0.0, wait - time.monotonic()))
            if self._stopped.is_set():
                return
            self._woken.clear()
            for job in self._jobs:
                if (woken and job.on_wake) or time.monotonic() >= job.due:
                    self._run(job)

    def _run(self, job: Job) -> None:
        try:
            job.run()
        except Exception:  # keep serving; the next turn tries again
            log.exception("job %s failed", job.name)
        job.due = time.monotonic() + job.every
