"""Group commit for concurrent callers of the issuing path (web workers, bulk enrolment).

Callers hand in a request of any enrolment method; one worker thread drains what has queued up
(at most `max_batch`) and runs it through `Issuance.issue_batch`, so N concurrent requests share
two transactions instead of 2N. A lone request is not delayed: the worker takes whatever is
waiting right now.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from certdesk.domain.errors import CertdeskError
from certdesk.services.enrolment import Enrolment, IssuedCertificate
from certdesk.services.issuance import Issuance

_STOP = object()


class GroupCommitter:
    def __init__(self, issuance: Issuance, max_batch: int = 64) -> None:
        self.issuance = issuance
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Enrolment, Future[IssuedCertificate]] | object] = (
            queue.SimpleQueue()
        )
        self._worker = threading.Thread(target=self._run, name="certdesk-issuer", daemon=True)
        self._worker.start()

    def submit(self, request: Enrolment) -> Future[IssuedCertificate]:
        future: Future[IssuedCertificate] = Future()
        self._queue.put((request, future))
        return future

    def issue(self, request: Enrolment, timeout: float | None = 60.0) -> IssuedCertificate:
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

    def _process(self, batch: list[tuple[Enrolment, Future[IssuedCertificate]]]) -> None:
        try:
            outcomes = self.issuance.issue_batch([request for request, _ in batch])
        except BaseException as exc:  # the worker must survive; each caller sees the failure
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, CertdeskError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
