"""Self-service renewal as the holder's tool and EST clients see it: thin use cases over the
renewal method (`services/enrolment/renewal.py`), the install phase (`renewal_install.py`), the
holder's profile (`holder_profile.py`) and who is asking (`holder_auth.py`).

Renewal is two-phase. `renew` issues the new certificate as *pending install*; `confirm`, signed
with the new key on the token, activates it and supersedes the old one. Asking again while one is
pending returns that one, never a second; `pickup` fetches it when the first answer was lost.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Concatenate, TypeVar

from cryptography import x509

from certdesk.ca.csr import load_csr
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services.authorities import Issuers
from certdesk.services.context import Context
from certdesk.services.enrolment import Enrolment, Issue, IssuedCertificate
from certdesk.services.enrolment.renewal import RenewalEnrolment
from certdesk.services.group_commit import GroupCommitter
from certdesk.services.holder_auth import Current, HolderAuth
from certdesk.services.holder_profile import HolderProfile, holder_profile, record_pin_changed
from certdesk.services.issuance import Issuance, SignAnswers
from certdesk.services.nonces import Nonces
from certdesk.services.refusals import RefusalLog
from certdesk.services.renewal_install import (
    Activation,
    Confirmed,
    Renewed,
    activate,
    activate_many,
    await_pending,
)
from certdesk.services.signed_requests import SignedRequest, claimed_serial
from certdesk.store import certificates as cert_store

T = TypeVar("T")
ISSUE_TIMEOUT = 60.0  # seconds a renewal waits for the group committer (as `Pipeline.run`)


def _refusals_recorded(
    use_case: Callable[[Renewals, str], T],
) -> Callable[Concatenate[Renewals, str, ...], T]:
    """A signed use case whose refusals are counted for the audit log (`services/refusals.py`);
    `source` is who sent it (the client's address), for that record."""

    @functools.wraps(use_case)
    def run(self: Renewals, token: str, source: str = "unknown") -> T:
        self.refusals.flush_due()
        try:
            return use_case(self, token)
        except CertdeskError as exc:
            self.refusals.note(exc.code, claimed_serial(token), source)
            raise

    return run


class Renewals:
    """The holder's use cases; keep one per process (it holds the issuing CA and the nonce key).

    `issue` is the issuing path to use: the server passes its group committer's, so renewals
    share batches with every other method, and the same committer's `submit`, through which
    `renew` awaits its batch without a thread; `group_confirmations` sends
    confirmations through a group committer of their own (the server's choice too: one
    transaction for the confirmations that arrive together); `answers` (the server's OCSP
    responder) signs each superseded certificate's "revoked" to be saved with its
    confirmation.
    """

    def __init__(
        self,
        ctx: Context,
        issuance: Issuance | None = None,
        issue: Issue | None = None,
        nonces: Nonces | None = None,
        *,
        submit: Callable[[Enrolment], Future[IssuedCertificate]] | None = None,
        group_confirmations: bool = False,
        answers: SignAnswers | None = None,
    ) -> None:
        self.ctx = ctx
        self.issuance = issuance or Issuance(ctx)
        self.issue = issue or self.issuance.issue
        self.submit = submit
        self.nonces = nonces or Nonces(ctx)
        self.confirmer = (
            GroupCommitter(
                functools.partial(activate_many, ctx, self.nonces, answers=answers),
                name="certdesk-confirmer",
            )
            if group_confirmations
            else None
        )
        # without a group committer, each confirmation in its own transaction (in a thread)
        self.activate_alone = functools.partial(activate, ctx, nonces=self.nonces, answers=answers)
        self.issuers = Issuers.load(ctx)
        self.holders = HolderAuth(ctx, self.issuers)
        self.refusals = RefusalLog(ctx)

    def new_nonce(self) -> str:
        return self.nonces.new()

    def trust_chain(self) -> list[x509.Certificate]:
        """What EST `cacerts` hands out: every issuing CA still trusted, newest (the one that
        issues) first, then the root — during a rollover a client holding a certificate of
        the retiring generation finds its issuer too."""
        return [i.certificate for i in self.issuers.trusted()] + [self.issuers.root().certificate]

    def issuer_certificate(self, renewed: Renewed) -> x509.Certificate:
        """The CA certificate that completes `renewed`'s chain."""
        return self.issuers.named(renewed.issuer).certificate

    async def renew(self, token: str, source: str = "unknown") -> Renewed:
        """Issue the renewal a signed request asks for (pending install), or hand back the one
        already in flight; `source` is who sent it (the client's address), for the count of
        refusals.

        On the event loop, without a thread: the certificate is read on the loop's
        connections, the checks run on the loop, and the group committer's batch is awaited
        (`submit`) rather than waited for in a thread (a hand-off costs ~110–130 µs of CPU
        here, and a thread per renewal in flight made them contend for the interpreter).
        The rare slow paths (refusals to write, a renewal already in flight) take a thread."""
        async with self._refusals_counted(token, source):
            request = self._renewal(*await self.holders.authenticate_async(token, "renew"))
            if self.submit is None:  # no group committer: the issuing path in a thread
                return await asyncio.to_thread(self._renew, request)
            try:
                issued = await _batch(self.submit(request))
            except CertdeskError as exc:
                if exc.code != "renewal.in_progress":
                    raise
                return await asyncio.to_thread(await_pending, self.ctx, request.current.serial)
            return _pending(issued, request.current.serial)

    async def confirm(self, token: str, source: str = "unknown") -> Confirmed:
        """Signed with the new key: it is installed. New active, old superseded (and in the
        CRL). On the event loop as `renew`: the confirmations' group committer's batch
        awaited."""
        async with self._refusals_counted(token, source):
            new, request, _payload = await self.holders.authenticate_async(token, "confirm")
            activation = Activation(new.serial, f"holder:{new.person_id}", request.nonce)
            if self.confirmer is None:
                return await asyncio.to_thread(self.activate_alone, activation)
            return await _batch(self.confirmer.submit(activation))

    @contextlib.asynccontextmanager
    async def _refusals_counted(self, token: str, source: str) -> AsyncIterator[None]:
        """`_refusals_recorded` for the event loop: a window's records are written, and a
        refusal counted, in a thread (both may write to the database)."""
        if self.refusals.due():  # a window of refusals to write
            await asyncio.to_thread(self.refusals.flush_due)
        else:  # at most a new window begins: nothing to write
            self.refusals.flush_due()
        try:
            yield
        except CertdeskError as exc:
            await asyncio.to_thread(self.refusals.note, exc.code, claimed_serial(token), source)
            raise

    def _renewal(
        self, current: Current, request: SignedRequest, payload: dict[str, object]
    ) -> RenewalEnrolment:
        """The renewal a signed request asks for: the CSR in its payload, checked."""
        encoded = payload.get("csr")
        if not isinstance(encoded, str):
            raise CertdeskError("jws.malformed", detail="payload lacks 'csr'")
        try:
            der = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError as exc:
            raise CertdeskError("input.malformed_csr", detail=str(exc)) from None
        csr = load_csr(der)
        return RenewalEnrolment.from_csr(self.ctx, current, csr, request.nonce, self.nonces)

    def reenroll(self, client_cert_der: bytes, csr_data: bytes) -> Renewed:
        """EST simplereenroll: the TLS handshake proved the key; the answer is the certificate,
        so it is activated at once (asking again returns it, as with a pending renewal)."""
        current = self.holders.current_from_tls(client_cert_der)
        csr = load_csr(csr_data)
        renewed = self._renew(
            RenewalEnrolment.from_csr(self.ctx, current, csr, method="est_reenrol")
        )
        if renewed.state is CertState.PENDING_INSTALL:
            activate(self.ctx, Activation(renewed.serial, f"holder:{current.person_id}"))
        return dataclasses.replace(renewed, state=CertState.ACTIVE, created=True)

    def _renew(self, request: RenewalEnrolment) -> Renewed:
        """Issue the renewal (pending install) or return the one already in flight."""
        replaces = request.current.serial
        try:
            issued = self.issue(request)
        except CertdeskError as exc:
            if exc.code != "renewal.in_progress":
                raise
            return await_pending(self.ctx, replaces)
        return _pending(issued, replaces)

    @_refusals_recorded
    def pickup(self, token: str) -> Renewed:
        """The certificate a renewal issued for this one (pending or already confirmed)."""
        current, request, _payload = self.holders.authenticate(token, "pickup")
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            row = cert_store.latest_renewal(conn, current.serial)
            in_flight = cert_store.in_flight_renewal(conn, current.serial)
        if row is None:
            code = "renewal.in_progress" if in_flight else "renewal.nothing_pending"
            raise CertdeskError(code, serial=current.serial)
        certificate = x509.load_der_x509_certificate(row.der)
        state = CertState(row.state)
        return Renewed(row.serial, certificate, state, current.serial, False, row.issuer)

    @_refusals_recorded
    def profile(self, token: str) -> HolderProfile:
        current, request, _payload = self.holders.authenticate(token, "profile")
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            return holder_profile(self.ctx, conn, current)

    @_refusals_recorded
    def report_pin_changed(self, token: str) -> str:
        """The holder changed the token's initial PIN (reported signed with the token's key)."""
        current, request, _payload = self.holders.authenticate(token, "pin-changed")
        with self.ctx.db.write() as conn:
            self.nonces.consume(conn, request.nonce)
            return record_pin_changed(self.ctx, conn, current)


def _pending(issued: IssuedCertificate, replaces: str) -> Renewed:
    """A renewal just issued: waiting to be installed."""
    state = CertState.PENDING_INSTALL
    return Renewed(issued.serial, issued.certificate, state, replaces, True, issued.issuer)


async def _batch(submitted: Future[T]) -> T:
    """A group committer's answer, awaited on the event loop (as long as `run` waits)."""
    return await asyncio.wait_for(asyncio.wrap_future(submitted), ISSUE_TIMEOUT)
