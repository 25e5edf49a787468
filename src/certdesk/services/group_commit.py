"""Group commit for concurrent callers of one batched write (web workers, bulk enrolment).

Callers hand in a request; one worker thread drains what has queued up (at most `max_batch`)
and runs it through the batch function — `Issuance.issue_batch` for every enrolment method,
`renewal_install.activate_many` for confirmations — so N concurrent requests share one
transaction (one commit, one journal fsync, one audit append) instead of N. A lone request is
not delayed: the worker takes whatever is waiting right now.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from certdesk.domain.errors import CertdeskError

R = TypeVar("R")
T = TypeVar("T")
_STOP = object()


class GroupCommitter(Generic[R, T]):
    """`run_batch` answers a batch of requests in their order, each a result or its refusal."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[R]], Sequence[T | CertdeskError]],
        name: str = "certdesk-issuer",
        max_batch: int = 64,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[R, Future[T]] | object] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name=name, daemon=True)
        self._worker.start()

    def submit(self, request: R) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((request, future))
        return future

    def run(self, request: R, timeout: float | None = 60.0) -> T:
        """The request's result once its batch is committed (its refusal raised)."""
        return self.submit(request).result(timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._worker.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            self._process(batch)  # type: ignore[arg-type]

    def _process(self, batch: list[tuple[R, Future[T]]]) -> None:
        try:
            outcomes = self.run_batch([request for request, _ in batch])
        except BaseException as exc:  # the worker must survive; each caller sees the failure
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, CertdeskError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
