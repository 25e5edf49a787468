"""Group commit for concurrent callers of one batched write (web workers, bulk enrolment).

Callers hand in a request; one worker thread drains what has queued up (at most `max_batch`)
and runs it through the batch function — `renewal_install.activate_many` for confirmations — so
N concurrent requests share one transaction (one commit, one journal fsync, one audit append)
instead of N. A lone request is not delayed: the worker takes whatever is waiting right now.

`Pipeline` goes one step further for a batch that is written twice (issuance, for every
enrolment method: reserve, sign, record — `Issuance.advance` and `Issuance.sign`): a batch's
second write shares its transaction with the next batch's first, so under load each batch
costs one commit.
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
F = TypeVar("F")
_STOP = object()


class _Committer(Generic[R, T]):
    """The queue and the one worker thread; subclasses say how the worker answers batches."""

    def __init__(self, name: str, max_batch: int) -> None:
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
        raise NotImplementedError

    def _take(self, block: bool) -> list[tuple[R, Future[T]]] | None:
        """What is waiting (at most `max_batch`; waiting for a first one if `block`), or None
        once closed."""
        batch: list[tuple[R, Future[T]]] = []
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get() if block and not batch else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                if batch:
                    self._queue.put(_STOP)  # answer what was taken first
                    break
                return None
            batch.append(item)  # type: ignore[arg-type]
        return batch


class GroupCommitter(_Committer[R, T]):
    """`run_batch` answers a batch of requests in their order, each a result or its refusal."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[R]], Sequence[T | CertdeskError]],
        name: str = "certdesk-issuer",
        max_batch: int = 64,
    ) -> None:
        self.run_batch = run_batch
        super().__init__(name, max_batch)

    def _run(self) -> None:
        while (batch := self._take(block=True)) is not None:
            try:
                outcomes = self.run_batch([request for request, _ in batch])
            except BaseException as exc:  # the worker must survive; each caller sees it
                _fail(batch, exc)
                continue
            _settle(batch, outcomes)


class Pipeline(_Committer[R, T], Generic[R, T, F]):
    """A group committer whose batches overlap: while one batch is between its two writes, the
    requests arriving meanwhile queue and share its second write's transaction. A batch is
    answered right after that transaction, before the next one's work; a lone request is
    answered as soon as it is done: with nothing waiting, its second write goes alone.

    `advance(flight, requests)` (`Issuance.advance`) makes `flight`'s second write and
    `requests`' first, and returns `flight`'s outcomes and `requests`' new flight, which
    `between` (`Issuance.sign`) carries to its second write."""

    def __init__(
        self,
        advance: Callable[[F | None, Sequence[R]], tuple[Sequence[T | CertdeskError], F]],
        between: Callable[[F], F],
        name: str = "certdesk-issuer",
        max_batch: int = 64,
    ) -> None:
        self.advance = advance
        self.between = between
        super().__init__(name, max_batch)

    def _run(self) -> None:
        flight: F | None = None
        waiting: list[tuple[R, Future[T]]] = []  # the callers of the batch in flight
        while (batch := self._take(block=not waiting)) is not None:
            try:
                outcomes, flight = self.advance(flight, [request for request, _ in batch])
            except BaseException as exc:  # the worker must survive; each caller sees it
                _fail(waiting + batch, exc)
                flight, waiting = None, []
                continue
            _settle(waiting, outcomes)
            waiting = batch
            try:
                flight = self.between(flight)
            except BaseException as exc:
                _fail(waiting, exc)
                flight, waiting = None, []
        if waiting:  # closed: the batch in flight is still answered
            try:
                outcomes, _ = self.advance(flight, [])
            except BaseException as exc:
                _fail(waiting, exc)
                return
            _settle(waiting, outcomes)


def _settle(callers: list[tuple[R, Future[T]]], outcomes: Sequence[T | CertdeskError]) -> None:
    for (_, future), outcome in zip(callers, outcomes, strict=True):
        if isinstance(outcome, CertdeskError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _fail(callers: list[tuple[R, Future[T]]], exc: BaseException) -> None:
    for _, future in callers:
        future.set_exception(exc)
