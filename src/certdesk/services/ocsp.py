"""The OCSP responder: pre-signed responses, kept true to each certificate's status.

A response is signed ahead for every signed, unexpired certificate of each answering issuer
(canonical SHA-1 CertID, no nonce, RFC 5019) and stored (`ocsp_responses`), and written as a file
nginx can serve (`<data_dir>/ocsp-files/ocsp/<base64 request>`). `presign` signs what is missing,
near its nextUpdate, or whose status no longer agrees with the certificate's; `apply_changes`
reads the certificates the audit log says changed (in this process, which wakes it after the
commit, or in any other, which it polls for every `ocsp.poll_seconds`).

A certificate issued in `serve` is recorded with its first ("good") response, signed just before
(`answers_for`, called by `services/issuance.py`), and one superseded by a confirmed renewal
with its "revoked" (`services/renewal_install.py`): true from the first moment, on every
machine, and their commits do not wake the feed. Their files are written by the feed's next run
(within `ocsp.poll_seconds`; until then nginx hands their requests to certdesk), not by the
thread that committed them: a new file costs 0.1–1 ms of kernel CPU on some machines, and the
whole batch of renewals waited for it. Files are this machine's copy of the database
(`services/ocsp_files.py`), checked against it at start and every few minutes in every process.

With several processes (`add_ocsp_jobs`), every one evicts the changed certificates' answers
from its memory, and re-signs at once those no longer "good" (a stale "good" file must be
replaced now; two processes doing it at once is harmless). A "good" answer still missing (a
certificate issued without a responder at hand, by the command line) is signed only by the
process holding the jobs lease, so once in the installation, at its next poll (until then, nginx
hands its requests to certdesk, which answers from the database).

Answering never trusts a stored response blindly: its status is compared with the certificate's
status now (`domain/lifecycle.py`), and one that disagrees is replaced by a response signed
there and then. A running server keeps answers in memory; an answer is served from memory only
while the change feed has been read recently (so a stalled feed means database reads, never a
stale answer), and a change evicts the certificate's answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from certdesk.ca.ocsp import (
    CANONICAL_HASH,
    INTERNAL_ERROR,
    MALFORMED,
    MAX_REQUEST,
    UNAUTHORIZED,
    Answer,
    MalformedRequest,
    Question,
    file_name,
    issuer_hashes,
    parse_request,
    request_der,
    supported_hash,
)
from certdesk.domain.lifecycle import RevocationStatus as CertStatus
from certdesk.domain.lifecycle import certificate_status, revocation_status
from certdesk.domain.states import CertState, RevocationReason
from certdesk.services.context import Context
from certdesk.services.jobs import JobRunner
from certdesk.services.ocsp_files import MirrorReport, OcspFiles, Wanted, name_of
from certdesk.services.ocsp_responders import Responder, ensure_responders, load_responders
from certdesk.store import audit
from certdesk.store import ocsp as ocsp_store
from certdesk.store.db import note_answered

__all__ = ["ERRORS", "MAX_REQUEST", "OcspResponder", "Served", "add_ocsp_jobs"]

log = logging.getLogger("certdesk.ocsp")
OCSP_MEDIA = b"application/ocsp-response"
PRESIGN_EVERY = 300.0  # seconds between pre-signing rounds in `serve`
Key = tuple[str, bytes, bytes, int]  # hash name, issuer name hash, issuer key hash, serial


def answer_of(row: Any, now: dt.datetime) -> Answer:
    """The status to sign for a certificate row (None: not a serial of that issuer)."""
    if row is None:
        return Answer(CertStatus.UNKNOWN)
    status = revocation_status(
        certificate_status(CertState(row.state), row.not_before, row.not_after, now)
    )
    if status is CertStatus.REVOKED:
        reason = RevocationReason(row.revocation_reason or RevocationReason.UNSPECIFIED.value)
        return Answer(status, row.revoked_at, reason)
    return Answer(status)


@dataclass(slots=True)
class Served:
    """An OCSP answer ready for HTTP: the DER and what its caching headers are made of."""

    der: bytes
    next_update: float = 0.0  # POSIX seconds; 0 for the unsuccessful answers (not cached)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _second: int = -1  # the headers below are for this second (max-age counts down)
    _current: list[tuple[bytes, bytes]] = field(default_factory=list)

    def http_headers(self, now: float) -> list[tuple[bytes, bytes]]:
        """Content type, length and RFC 5019 §6 caching headers (max-age up to nextUpdate),
        built at most once a second."""
        second = int(now)
        if second != self._second:
            if not self.next_update:
                cache = b"no-cache"
            else:
                max_age = max(0, int(self.next_update) - second)
                cache = b"max-age=%d, public, no-transform, must-revalidate" % max_age
            length = (b"content-length", str(len(self.der)).encode())
            base = self.headers or [(b"content-type", OCSP_MEDIA)]
            self._current = [*base, length, (b"cache-control", cache)]
            self._second = second
        return self._current


def served(der: bytes, this_update: dt.datetime, next_update: dt.datetime) -> Served:
    """An answer with its headers built once (only max-age changes with time)."""
    etag = b'"' + hashlib.sha1(der, usedforsecurity=False).hexdigest().encode() + b'"'
    headers = [
        (b"content-type", OCSP_MEDIA),
        (b"last-modified", format_datetime(this_update, usegmt=True).encode()),
        (b"expires", format_datetime(next_update, usegmt=True).encode()),
        (b"etag", etag),
    ]
    return Served(der, next_update.timestamp(), headers)


ERRORS = {
    "malformed": Served(MALFORMED),
    "unauthorized": Served(UNAUTHORIZED),
    "internal": Served(INTERNAL_ERROR),
}


@dataclass(frozen=True)
class PresignReport:
    issuers: list[str]
    certificates: int  # signed, unexpired certificates looked at
    signed: int  # responses signed now
    seconds: float
    responders_issued: list[str] = field(default_factory=list)


Progress = Callable[[str, int, int], object]  # issuer, looked at so far, signed so far


def _key(question: Question) -> Key:
    return (question.algorithm, question.name_hash, question.key_hash, question.serial)


def _due(
    row: Any, truth: Answer, responder: Responder, now: dt.datetime, refresh: dt.timedelta
) -> bool:
    """Whether a certificate's stored response (the row's `stored_*` columns, None when there is
    none) must be signed (again): it says something else, is near its nextUpdate, or was signed
    by another responder."""
    return bool(
        row.stored_status != truth.status.value
        or row.stored_revoked_at != truth.revoked_at
        or row.stored_next_update - now <= refresh
        or row.stored_responder != responder.serial
    )


@dataclass(frozen=True, slots=True)
class Signed:
    """One canonical response signed: what its stored row and its file are made of."""

    responder: Responder
    question: Question
    truth: Answer
    der: bytes
    this_update: dt.datetime
    next_update: dt.datetime

    @classmethod
    def now(
        cls,
        responder: Responder,
        question: Question,
        truth: Answer,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> Signed:
        der = responder.key.sign(question, truth, this_update, next_update)
        return cls(responder, question, truth, der, this_update, next_update)

    def row(self) -> dict[str, object]:
        return {
            "issuer": self.responder.issuer.name,
            "serial": format(self.question.serial, "x"),
            "status": self.truth.status.value,
            "revoked_at": self.truth.revoked_at,
            "der": self.der,
            "this_update": self.this_update,
            "next_update": self.next_update,
            "responder": self.responder.serial,
        }


@dataclass(frozen=True)
class SignedAnswers:
    """Responses signed for a change about to be recorded (a new certificate's first "good", a
    superseded one's "revoked"): `save` adds them to the change's transaction, so the change and
    its answer are committed together — true from the first moment, on every machine — and the
    change does not wake the change feed (`note_answered`: it has nothing left to sign);
    `publish`, once committed, writes their files and forgets what this process answered for
    those serials before."""

    responder: OcspResponder
    signed: list[Signed]

    def save(self, conn: Connection) -> None:
        ocsp_store.save_responses(conn, [s.row() for s in self.signed])
        note_answered(conn, (format(s.question.serial, "x") for s in self.signed))

    def publish(self) -> None:
        self.responder.published(self.signed)


class OcspResponder:
    """Keep one per process: responder keys, the issuer index, the answers in memory."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.files_dir = ctx.config.data_dir / "ocsp-files"
        self.files = OcspFiles(self.files_dir / "ocsp", enabled=ctx.config.ocsp.files)
        self._lock = threading.Lock()  # reloads and the change feed; answering takes none
        self._writing = threading.RLock()  # changes to the memory cache (lookups take none)
        self._cache: dict[bytes | Key, Served] = {}  # by request bytes and by CertID
        self._by_serial: dict[int, list[bytes | Key]] = {}
        self._generation = 0  # bumped at every eviction: a slow answer read before it is not kept
        self._seq = 0  # the audit record up to which changes have been applied
        self._watched_at = -1e9  # monotonic time the change feed was last read
        self._refresh_after = 0.0  # POSIX time: an answer whose nextUpdate is before is due
        # what `published` made true here (store and memory), by serial, until the feed sees it
        self._published: dict[str, tuple[object, ...]] = {}
        self._unfiled: dict[int, Signed] = {}  # published, for the feed to write the files of
        self.reload()
        with ctx.db.read() as conn:
            self._seq = audit.changes_since(conn, 2**62)[0]

    # -- responders and issuers -----------------------------------------------------------

    def reload(self) -> None:
        """Load the current responder of every answering issuer (after one was issued)."""
        responders = load_responders(self.ctx)
        index: dict[tuple[str, bytes, bytes], Responder] = {}
        for responder in responders.values():
            for name in ("sha1", "sha256", "sha384", "sha512"):
                algorithm = supported_hash(name)
                assert algorithm is not None
                hashes = issuer_hashes(responder.issuer.certificate, algorithm)
                index[(name, *hashes)] = responder
        with self._writing:
            self._responders = responders
            self._index = index
            self._generation += 1
            self._cache.clear()
            self._by_serial.clear()

    # -- answering ------------------------------------------------------------------------

    def cached(self, der: bytes) -> Served | Question:
        """The answer if it is known without the database (malformed, unauthorized, or in
        memory while the change feed is being read); otherwise the question for `answer`.

        The same request bytes are looked up first, without parsing (most clients send the
        same canonical request every time); then the parsed CertID (a request with a nonce)."""
        fresh = time.monotonic() - self._watched_at < self._watch_limit
        hit = self._cache.get(der)
        if hit is not None and fresh and hit.next_update > self._refresh_after:
            return hit
        try:
            question = parse_request(der)
        except MalformedRequest:
            return ERRORS["malformed"]
        if (question.algorithm, question.name_hash, question.key_hash) not in self._index:
            return ERRORS["unauthorized"]
        if question.nonce is not None and self.ctx.config.ocsp.sign_live_with_nonce:
            return question
        hit = self._cache.get(_key(question))
        if hit is None or not fresh or hit.next_update <= self._refresh_after:
            return question  # unknown here, the feed is late, or due for refresh
        return hit

    def answer(self, question: Question, der: bytes | None = None) -> Served:
        """Answer from the store when its response agrees with the certificate's status now,
        else sign one now (and store it if it is the canonical question); kept in memory under
        the CertID and, without a nonce, the request's bytes `der`."""
        responder = self._index.get((question.algorithm, question.name_hash, question.key_hash))
        if responder is None:
            return ERRORS["unauthorized"]
        generation = self._generation
        now = self.ctx.clock.now().replace(microsecond=0)
        hexserial = format(question.serial, "x")
        issuer = responder.issuer.name
        with self.ctx.db.read() as conn:
            cert, stored = ocsp_store.certificate_and_response(conn, issuer, hexserial)
        truth = answer_of(cert, now)
        live_nonce = question.nonce is not None and self.ctx.config.ocsp.sign_live_with_nonce
        canonical = question.algorithm == CANONICAL_HASH.name and not live_nonce
        refresh = dt.timedelta(hours=self.ctx.config.ocsp.refresh_hours)
        if (
            canonical
            and stored is not None
            and stored.status == truth.status.value
            and stored.revoked_at == truth.revoked_at
            and stored.next_update - now > refresh
            and stored.responder == responder.serial
        ):
            result = served(bytes(stored.der), stored.this_update, stored.next_update)
        else:
            this_update, next_update = self._window(now)
            der = responder.key.sign(
                question, truth, this_update, next_update, with_nonce=live_nonce
            )
            if canonical and cert is not None:
                self._store([Signed(responder, question, truth, der, this_update, next_update)])
            result = served(der, this_update, next_update)
        if not live_nonce:
            with self._writing:
                if generation == self._generation:
                    self._remember(question, None if question.nonce else der, result)
        return result

    def _remember(self, question: Question, der: bytes | None, result: Served) -> None:
        keys: list[bytes | Key] = [_key(question)] if der is None else [_key(question), der]
        with self._writing:
            if len(self._by_serial) >= self.ctx.config.ocsp.cache_entries:
                self._cache.clear()  # full: start again (what is asked often comes back soon)
                self._by_serial.clear()
            for key in keys:
                self._cache[key] = result
            self._by_serial.setdefault(question.serial, []).extend(keys)

    @property
    def _watch_limit(self) -> float:
        return 3.0 * self.ctx.config.ocsp.poll_seconds + 1.0

    @property
    def _refresh_seconds(self) -> float:
        return self.ctx.config.ocsp.refresh_hours * 3600.0

    def _window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        return now, now + dt.timedelta(hours=self.ctx.config.ocsp.response_hours)

    # -- pre-signing ----------------------------------------------------------------------

    def presign(self, progress: Progress | None = None) -> PresignReport:
        """Sign the responses that are missing, near nextUpdate or no longer true, for every
        answering issuer (responders renewed first when due)."""
        started = time.monotonic()
        issued = ensure_responders(self.ctx)
        if issued:
            self.reload()
        looked = signed = 0
        refresh = dt.timedelta(hours=self.ctx.config.ocsp.refresh_hours)
        for name, responder in sorted(self._responders.items()):
            now = self.ctx.clock.now().replace(microsecond=0)
            with self.ctx.db.read() as conn:
                for rows in ocsp_store.signed_with_response(conn, name, now):
                    looked += len(rows)
                    due = [
                        (row, truth)
                        for row in rows
                        for truth in [answer_of(row, now)]
                        if _due(row, truth, responder, now, refresh)
                    ]
                    signed += self._sign_rows(responder, due, now)
                    if progress is not None:
                        progress(name, looked, signed)
        self._forget_expired()
        return PresignReport(
            sorted(self._responders), looked, signed, time.monotonic() - started, issued
        )

    def _forget_expired(self) -> None:
        """Responses of expired certificates are no longer refreshed: once past their
        nextUpdate they are dropped, files too (a stale file would only be refused)."""
        with self.ctx.db.write() as conn:
            gone = ocsp_store.forget_expired(conn, self.ctx.clock.now())
        self.files.remove(
            name
            for issuer, serial in gone
            if (responder := self._responders.get(issuer)) is not None
            and (name := name_of(responder.question(int(serial, 16)))) is not None
        )

    def _sign_rows(
        self, responder: Responder, rows: Sequence[tuple[Any, Answer]], now: dt.datetime
    ) -> int:
        this_update, next_update = self._window(now)
        done = [
            Signed.now(
                responder, responder.question(int(row.serial, 16)), truth, this_update, next_update
            )
            for row, truth in rows
        ]
        self._store(done)
        return len(done)

    def answers_for(self, changed: Sequence[tuple[str, int, Answer]]) -> SignedAnswers:
        """The responses of certificates (issuer name, serial, what to say) whose change is
        about to be recorded; an issuer without a responder here is left to the change feed."""
        this_update, next_update = self._window(self.ctx.clock.now().replace(microsecond=0))
        signed = [
            Signed.now(responder, responder.question(serial), truth, this_update, next_update)
            for issuer, serial, truth in changed
            if (responder := self._responders.get(issuer)) is not None
        ]
        return SignedAnswers(self, signed)

    def _store(self, signed: Sequence[Signed]) -> None:
        """Save responses (one transaction) and write their files for nginx."""
        if not signed:
            return
        with self.ctx.db.write() as conn:
            ocsp_store.save_responses(conn, [s.row() for s in signed])
        self._write_files(signed)

    def _write_files(self, signed: Iterable[Signed]) -> None:
        self.files.write(  # a generator: nothing is named when files are off
            (name, s.der, s.this_update)
            for s in signed
            if (name := name_of(s.question)) is not None
        )

    def published(self, signed: Sequence[Signed]) -> None:
        """Responses another transaction saved (`SignedAnswers`): memory made true, their files
        left to the change feed (`file_published`). Noted for the feed, which need not sign
        them again here (`resign`)."""
        self._evict(s.question.serial for s in signed)
        with self._writing:
            if len(self._published) > self.ctx.config.ocsp.cache_entries:
                self._published.clear()  # the feed has not run for long: sign again, harmless
                self._unfiled.clear()  # and the files: `mirror_files` writes them
            for s in signed:
                self._unfiled[s.question.serial] = s
                self._published[format(s.question.serial, "x")] = (
                    s.truth.status.value,
                    s.truth.revoked_at,
                    s.next_update,
                    s.responder.serial,
                )

    def file_path(self, question: Question) -> Path:
        """Where the canonical response for `question` is written."""
        return self.files.directory / file_name(request_der(question))

    def file_published(self) -> None:
        """Write the files of the responses `published` since the last call (the change feed
        does, and a server's shutdown)."""
        with self._writing:
            unfiled, self._unfiled = self._unfiled, {}
        self._write_files(unfiled.values())

    def mirror_files(self) -> MirrorReport:
        """Bring this machine's files in line with the stored responses (every process, at start
        and every few minutes): write those missing or differing, remove those no stored
        response wants (`services/ocsp_files.py`)."""
        if not self.files.enabled:
            return MirrorReport(0, 0, 0)
        since = time.time()
        wanted: dict[str, Wanted] = {}
        with self.ctx.db.read() as conn:
            for issuer, responder in self._responders.items():
                for rows in ocsp_store.stored_versions(conn, issuer):
                    for row in rows:
                        name = name_of(responder.question(int(row.serial, 16)))
                        if name is not None:
                            when = int(row.this_update.timestamp())
                            wanted[name] = Wanted(issuer, row.serial, when, int(row.size))
        stale, removed = self.files.stale(wanted, since)
        by_issuer: dict[str, list[str]] = {}
        for want in stale:
            by_issuer.setdefault(want.issuer, []).append(want.serial)
        written = 0
        for issuer, serials in by_issuer.items():
            responder = self._responders[issuer]
            with self.ctx.db.read() as conn:
                rows = ocsp_store.responses_of(conn, issuer, serials)
            written += self.files.write(
                (name, bytes(row.der), row.this_update)
                for row in rows
                if (name := name_of(responder.question(int(row.serial, 16)))) is not None
            )
        if written or removed:
            log.info("OCSP files: %d written, %d removed (of %d)", written, removed, len(wanted))
        return MirrorReport(len(wanted), written, removed)

    # -- the change feed ------------------------------------------------------------------

    def apply_changes(self, *, leading: bool = True) -> list[str]:
        """Evict from memory the answers of certificates changed since the last call (any
        process) and re-sign their responses; a new responder or CA generation reloads.

        A response that is no longer "good" (revoked, on hold) is re-signed here at once, in
        whichever process sees the change first (a stale "good" file must go now). One that is
        "good" (a new certificate, mostly) only by the process `leading` (holding the jobs
        lease), so that it is signed once in the installation, and only when the stored one
        does not already say so. Returns the serials re-signed."""
        with self._lock:
            self.file_published()  # first: a re-signing below writes a newer file over them
            with self.ctx.db.read() as conn:
                head, changes = audit.changes_since(conn, self._seq)
            serials = sorted({i for kind, i in changes if kind == "certificate"})
            ours = {r.serial for r in self._responders.values()}
            # a responder revoked, a CA added or retired: responders as needed, then reload
            if ours.intersection(serials) or any(kind == "authority" for kind, _ in changes):
                ensure_responders(self.ctx)
                self.reload()
            self._evict(int(s, 16) for s in serials)
            resigned = self.resign(serials, good=leading)
            self._seq = head
            self._watched_at = time.monotonic()
            self._refresh_after = self.ctx.clock.now().timestamp() + self._refresh_seconds
            return resigned

    def _evict(self, serials: Iterable[int]) -> None:
        with self._writing:
            self._generation += 1
            for serial in serials:
                for key in self._by_serial.pop(serial, ()):
                    self._cache.pop(key, None)

    def resign(self, serials: Sequence[str], *, good: bool = True) -> list[str]:
        """Sign the canonical responses of `serials` now, from their status now: always those
        not "good" (every process: its own nginx files must not stay "good"), except one whose
        stored response this process saved with the change and filed itself (`published`) and
        which no later change touched; the "good" ones when `good` and their stored response is
        due (`_due`)."""
        if not serials:
            return []
        now = self.ctx.clock.now().replace(microsecond=0)
        refresh = dt.timedelta(hours=self.ctx.config.ocsp.refresh_hours)
        with self.ctx.db.read() as conn:
            rows = ocsp_store.certificates_by_serial(conn, serials)
        by_issuer: dict[str, list[tuple[Any, Answer]]] = {}
        for row in rows:
            responder = self._responders.get(row.issuer)
            if responder is None or row.not_after is None:
                continue
            truth = answer_of(row, now)
            if truth.status is CertStatus.UNKNOWN or self._published.pop(row.serial, None) == (
                row.stored_status,
                row.stored_revoked_at,
                row.stored_next_update,
                row.stored_responder,
            ):
                continue
            if truth.status is CertStatus.GOOD and not (
                good and _due(row, truth, responder, now, refresh)
            ):
                continue
            by_issuer.setdefault(row.issuer, []).append((row, truth))
        done: list[str] = []
        for issuer, due in by_issuer.items():
            self._sign_rows(self._responders[issuer], due, now)
            done += [r.serial for r, _ in due]
        return done


def add_ocsp_jobs(runner: JobRunner, responder: OcspResponder) -> None:
    """The responder's work in `serve`: the change feed at every wake and every
    `ocsp.poll_seconds` in every process (it keeps this process's memory true and re-signs
    revocations at once; "good" answers only while the runner leads; the files of what this
    process published), this machine's files checked against the database every few minutes in
    every process, pre-signing (and responder renewal) every few minutes in the one process
    holding the jobs lease."""
    ocsp = responder.ctx.config.ocsp

    def changes() -> None:
        responder.apply_changes(leading=runner.leading)

    runner.add("ocsp.changes", ocsp.poll_seconds, changes, on_wake=True)
    runner.add("ocsp.files", PRESIGN_EVERY, responder.mirror_files)  # every process: its machine
    # between batches of a long round, changes are applied: a revocation does not wait for it
    runner.add(
        "ocsp.presign",
        PRESIGN_EVERY,
        lambda: responder.presign(progress=lambda *_: responder.apply_changes()),
        once=True,
    )
