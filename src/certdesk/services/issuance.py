"""Issuing a certificate, crash-safe: reserve, sign, record — whatever the enrolment method.

1. *Reserve*: one committed transaction runs the method's `authorise` (see
   `services/enrolment/`), reserves a fresh random serial (the primary key makes reuse
   impossible) and records the intent, with an audit record naming the method.
2. *Sign* through the one issuing path (`certdesk.ca.issuer.Authority.issue`).
3. *Record*: one transaction stores the DER and moves the certificate out of `reserved`, with an
   audit record.

Under load on SQLite, `advance` runs a batch's record and the next batch's reservation in one
transaction: one commit per batch instead of two, the steps and their order unchanged.

A crash between 1 and 3 leaves a `reserved` row and no certificate anywhere: the signed bytes only
ever leave this module after step 3 has committed. `abandon_stale_reservations` closes such rows;
their serials are never handed out again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from certdesk.ca.issuer import Authority, CertificateOrder, LintHook
from certdesk.ca.keys import KeyType, key_type_of
from certdesk.ca.ocsp import Answer
from certdesk.ca.profiles import Profile
from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import RevocationStatus
from certdesk.domain.states import CertState
from certdesk.domain.validity import validity_from
from certdesk.services.authorities import active_issuers, load_authority, pick_issuer
from certdesk.services.context import Context
from certdesk.services.enrolment import Enrolment, Intent, IssuedCertificate, authorise_all
from certdesk.services.lifecycle import Move, transition
from certdesk.services.tokens import hand_over
from certdesk.store import audit
from certdesk.store import certificates as cert_store

# A reservation this old when its request is retried was left by a process that died (signing
# and recording take milliseconds): the retry closes it (`abandon`) and issues anew.
IN_FLIGHT_GRACE = dt.timedelta(seconds=10)
log = logging.getLogger("certdesk.issuance")


def serial_hex(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class _Reserved:
    index: int
    serial: int
    intent: Intent
    issuer: str

    @property
    def hexserial(self) -> str:
        return serial_hex(self.serial)

    def row(self, now: dt.datetime) -> dict[str, object]:
        i = self.intent
        return {
            "serial": self.hexserial,
            "issuer": self.issuer,
            "profile": i.profile.value,
            "state": CertState.RESERVED.value,
            "person_id": i.person_id,
            "token_serial": i.token_serial,
            "subject": i.subject.rfc4514_string(),
            "reserved_at": now,
            "replaces": i.replaces,
        }

    def entry(self, now: dt.datetime, actor: str) -> audit.Entry:
        i = self.intent
        return audit.Entry(
            now,
            actor,
            "certificate.reserve",
            "certificate",
            self.hexserial,
            after={
                "state": CertState.RESERVED.value,
                "profile": i.profile.value,
                "person": i.person_id,
                "token": i.token_serial,
                "method": i.method,
            },
        )


@dataclass(frozen=True)
class _Signed:
    reserved: _Reserved
    certificate: x509.Certificate

    @functools.cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    def move(self, now: dt.datetime) -> Move:
        fingerprint = hashlib.sha256(self.der).hexdigest()
        not_before = self.certificate.not_valid_before_utc
        not_after = self.certificate.not_valid_after_utc
        return Move(
            self.reserved.hexserial,
            CertState.RESERVED,
            self.reserved.intent.state_after,
            values={
                "der": self.der,
                "fingerprint": fingerprint,
                "not_before": not_before,
                "not_after": not_after,
                "issued_at": now,
            },
            note={
                "not_before": not_before.isoformat(),
                "not_after": not_after.isoformat(),
                "fingerprint": fingerprint,
                "method": self.reserved.intent.method,
            },
        )


Outcome = IssuedCertificate | CertdeskError
# A batch's reservations, and its refusals by their index in the batch
_Reservation = tuple[list[_Reserved], dict[int, CertdeskError]]


@dataclass(frozen=True)
class InFlight:
    """A batch between its two transactions: reserved (`Issuance.advance`), then signed
    (`Issuance.sign`), its record still to be made."""

    results: list[Outcome | None]
    now: dt.datetime
    reserved: list[_Reserved]
    signed: list[_Signed] = dataclasses.field(default_factory=list)

    def outcomes(self) -> list[Outcome]:
        assert all(r is not None for r in self.results)
        return [r for r in self.results if r is not None]


class NewAnswers(Protocol):
    """OCSP responses for a change about to be recorded (`services/ocsp.py` SignedAnswers):
    saved in its transaction, published after it commits."""

    def save(self, conn: Connection) -> None: ...

    def publish(self) -> None: ...


# (issuer name, serial, what to say) → the responses, saved with the change (services/ocsp.py)
SignAnswers = Callable[[Sequence[tuple[str, int, Answer]]], NewAnswers]


def signed_answers(
    sign: SignAnswers | None, items: Sequence[tuple[str, int, Answer]]
) -> NewAnswers | None:
    """The OCSP answers of a change, signed before it is recorded. A responder that fails costs
    only this shortcut, never the change: its commit then wakes the change feed, which signs
    them."""
    if sign is None or not items:
        return None
    try:
        return sign(items)
    except Exception:
        log.warning(
            "OCSP responses not signed with the change; the change feed will", exc_info=True
        )
        return None


class Issuance:
    """Issues certificates with the issuing CAs; keep one per process (loading a key is costly).

    Each request's issuer is chosen at reservation (`pick_issuer`: active, same key family,
    newest generation); each CA's key is loaded the first time it signs.
    """

    def __init__(
        self,
        ctx: Context,
        authority: Authority | None = None,
        answers: SignAnswers | None = None,
    ) -> None:
        """The CA that issues today is loaded now, so a wrong passphrase or a missing HSM is
        said at start, not at the first request; `authority` replaces it (tests, benchmarks).
        `answers` (the server's OCSP responder) signs each new certificate's first OCSP response
        to be recorded with it; without, the responder's change feed signs it later."""
        self.ctx = ctx
        self.answers = answers
        self._authorities: dict[str, Authority] = {}
        with ctx.db.read() as conn:
            self.default_issuer = pick_issuer(
                active_issuers(conn), Profile.PERSONAL, KeyType.parse(ctx.config.token.key_type)
            )
        self._authorities[self.default_issuer] = authority or self._load(self.default_issuer)

    def _load(self, name: str) -> Authority:
        return load_authority(self.ctx, name, hooks=lint_hooks(self.ctx))

    def authority_of(self, name: str) -> Authority:
        if name not in self._authorities:
            self._authorities[name] = self._load(name)
        return self._authorities[name]

    @property
    def authority(self) -> Authority:
        """The CA loaded at start (what a personal certificate of the configured key type went
        to then)."""
        return self._authorities[self.default_issuer]

    def issue(self, request: Enrolment) -> IssuedCertificate:
        """Reserve (authorising the request in that transaction), sign, record."""
        (result,) = self.issue_batch([request])
        if isinstance(result, CertdeskError):
            raise result
        return result

    def issue_batch(self, requests: Sequence[Enrolment]) -> list[Outcome]:
        """Group commit: one reservation and one record transaction for the whole batch.

        Each request still gets its own serial, audit records and answer; a refusal of one does
        not affect the others. Results come back in the order of `requests`.
        """
        _, flight = self.advance(None, requests)
        outcomes, _ = self.advance(self.sign(flight), ())
        return outcomes

    def advance(
        self, flight: InFlight | None, requests: Sequence[Enrolment]
    ) -> tuple[list[Outcome], InFlight]:
        """Record `flight` (the batch signed last) and reserve `requests` — on SQLite in one
        transaction: while requests keep coming, a batch costs one commit, not two
        (`group_commit.Pipeline`). The crash rules stay a lone batch's: a certificate is signed
        (`sign`, between two calls) only after its reservation has committed and leaves only
        after its record has.

        On PostgreSQL they stay two transactions: joined, one would hold the audit head (taken
        by the record's audit append) while the reservation locks the holders' current
        certificates — the reverse of every other writer's order (rows, then the head), so a
        revocation of one of them at that moment could deadlock. SQLite has one writer at a
        time: no such cycle.

        Returns `flight`'s outcomes (in its requests' order) and the new batch, reserved.
        """
        now = self.ctx.clock.now()
        results: list[Outcome | None] = [None] * len(requests)
        reserved: list[_Reserved] | None = None
        if flight is not None and flight.signed:
            joined = bool(requests) and self.ctx.db.is_sqlite
            step = functools.partial(self._reserve_in, requests, now) if joined else None
            together = self._record(flight.signed, flight.results, step)
            if together is not None:
                reserved, refused = together
                for index, refusal in refused.items():
                    results[index] = refusal
        if reserved is None:
            reserved = self._reserve(requests, now, results) if requests else []
        done = flight.outcomes() if flight is not None else []
        return done, InFlight(results, now, reserved)

    def sign(self, flight: InFlight) -> InFlight:
        """Sign a reserved batch (a refused signature closes its reservation)."""
        signed = self._sign(flight.reserved, flight.now, flight.results)
        return dataclasses.replace(flight, reserved=[], signed=signed)

    def _sign(
        self, reserved: list[_Reserved], now: dt.datetime, results: list[Outcome | None]
    ) -> list[_Signed]:
        validity = validity_from(now, self.ctx.config.policy.validity_years)
        signed: list[_Signed] = []
        for item in reserved:
            order = CertificateOrder(
                item.serial,
                item.intent.subject,
                item.intent.public_key,
                item.intent.profile,
                validity.not_before - item.intent.backdate,
                validity.not_after,
                item.intent.extensions,
            )
            try:
                signed.append(_Signed(item, self.authority_of(item.issuer).issue(order)))
            except Exception as exc:
                abandon(self.ctx, item.hexserial, f"signing failed: {exc}")
                results[item.index] = (
                    exc
                    if isinstance(exc, CertdeskError)
                    else CertdeskError("ca.signing_failed", detail=str(exc))
                )
        return signed

    def _reserve(
        self, requests: Sequence[Enrolment], now: dt.datetime, results: list[Outcome | None]
    ) -> list[_Reserved]:
        for _attempt in range(3):
            try:
                with self.ctx.db.write() as conn:
                    reserved, refused = self._reserve_in(requests, now, conn)
            except IntegrityError:
                continue  # a serial collision (2^-159): draw again
            for index, refusal in refused.items():
                results[index] = refusal
            return reserved
        raise CertdeskError("input.invalid", detail="could not reserve unique serials")

    def _reserve_in(
        self, requests: Sequence[Enrolment], now: dt.datetime, conn: Connection
    ) -> _Reservation:
        """Authorise `requests` and reserve a serial for each accepted one, in `conn`'s
        transaction; the refusals by their index in `requests`."""
        refused: dict[int, CertdeskError] = {}
        reserved: list[_Reserved] = []
        claimed: dict[str, _Reserved] = {}
        issuers = active_issuers(conn)
        for index, intent in enumerate(authorise_all(conn, requests)):
            if isinstance(intent, CertdeskError):
                refused[index] = intent
                continue
            try:
                key_type = key_type_of(intent.public_key)
                issuer = pick_issuer(issuers, intent.profile, key_type)
            except CertdeskError as exc:
                refused[index] = exc
                continue
            item = _Reserved(index, x509.random_serial_number(), intent, issuer)
            if intent.claim is not None:
                twin = claimed.setdefault(intent.claim.key, item)
                if twin is not item:
                    refused[index] = intent.claim.refusal(twin.hexserial)
                    continue
            reserved.append(item)
        if reserved:
            cert_store.reserve(conn, [r.row(now) for r in reserved])
            audit.append_many(conn, [r.entry(now, self.ctx.actor) for r in reserved])
        return reserved, refused

    def _record(
        self,
        signed: list[_Signed],
        results: list[Outcome | None],
        then: Callable[[Connection], _Reservation] | None = None,
    ) -> _Reservation | None:
        """Store the signed certificates and answer them. `then` (the next batch's
        reservation) runs in the same transaction; if that transaction is refused, the
        certificates are recorded without it (which finds the one refused) and None says the
        reservation is still to be made."""
        now = self.ctx.clock.now()
        good = Answer(RevocationStatus.GOOD)
        answers = signed_answers(
            self.answers, [(s.reserved.issuer, s.reserved.serial, good) for s in signed]
        )
        try:
            with self.ctx.db.write() as conn:
                if answers is not None:  # first: the moves' audit records see them saved
                    answers.save(conn)
                for s in signed:
                    intent = s.reserved.intent
                    if intent.token_serial is not None and intent.person_id is not None:
                        hand_over(conn, self.ctx, intent.token_serial, intent.person_id)
                by_state = sorted(signed, key=lambda s: s.reserved.intent.state_after)
                for _state, group in groupby(by_state, key=lambda s: s.reserved.intent.state_after):
                    moves = [s.move(now) for s in group]
                    transition(conn, now, self.ctx.actor, "certificate.issue", moves)
                reservation = then(conn) if then is not None else None
        except (IntegrityError, CertdeskError) as exc:
            if then is not None:
                self._record(signed, results)
            elif len(signed) > 1:  # find out which one is refused: record them one by one
                for s in signed:
                    self._record([s], results)
            else:
                results[signed[0].reserved.index] = self._refused_at_record(signed[0], exc)
            return None
        if answers is not None:
            answers.publish()
        for s in signed:
            results[s.reserved.index] = IssuedCertificate(
                s.reserved.hexserial,
                s.certificate,
                s.reserved.intent.profile,
                s.reserved.intent.person_id,
                s.reserved.intent.token_serial,
                s.reserved.issuer,
                _issuer_certificate(self.authority_of(s.reserved.issuer)),
            )
        return reservation

    def _refused_at_record(self, s: _Signed, exc: Exception) -> CertdeskError:
        hexserial = s.reserved.hexserial
        if isinstance(exc, CertdeskError) and exc.code == "cert.state_changed":
            # Closed by `abandon_stale_reservations` while this process was signing: it stays
            # closed (its serial is never handed out).
            return CertdeskError("issuance.reservation_closed", serial=hexserial)
        if isinstance(exc, CertdeskError):
            abandon(self.ctx, hexserial, f"refused while recording: {exc.code}")
            return exc
        # Another enrolment for the same person won the race: this one is dropped unseen.
        abandon(self.ctx, hexserial, "lost a race for the person's one active certificate")
        person_id = s.reserved.intent.person_id or "?"
        with self.ctx.db.read() as conn:
            return CertdeskError(
                "person.has_active_certificate",
                person_id=person_id,
                serial=cert_store.active_personal_serial(conn, person_id),
            )


def abandon(ctx: Context, hexserial: str, why: str) -> bool:
    """Close a reservation that will never be signed; its serial stays burnt."""
    move = Move(hexserial, CertState.RESERVED, CertState.ABANDONED, note={"why": why})
    try:
        with ctx.db.write() as conn:
            transition(conn, ctx.clock.now(), ctx.actor, "certificate.abandon", [move])
    except CertdeskError as exc:
        if exc.code != "cert.state_changed":
            raise
        return False  # recorded or closed meanwhile
    return True


def abandon_stale_reservations(ctx: Context, older_than: dt.timedelta) -> list[str]:
    """After a crash: reservations older than `older_than` are closed (each audited)."""
    cutoff = ctx.clock.now() - older_than
    with ctx.db.read() as conn:
        stale = cert_store.in_state_since(conn, CertState.RESERVED, "reserved_at", cutoff)
    return [s for s in stale if abandon(ctx, s, "stale reservation (interrupted issuance)")]


def _issuer_certificate(authority: Authority) -> x509.Certificate:
    assert authority.certificate is not None, "an issuing CA has a certificate"
    return authority.certificate


def lint_hooks(ctx: Context) -> tuple[LintHook, ...]:
    if not ctx.config.issuance.lint:
        return ()
    from certdesk.ca.lint import PkilintHook

    return (PkilintHook(),)
