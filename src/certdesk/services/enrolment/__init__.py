"""Ways of getting a certificate: peers behind one interface, feeding one issuing path.

Each module of this package is one method — officer enrolment from a CSR or key
(`officer`), onto a token (`onto_token`), a software key in a PKCS#12 file (`pkcs12`), EST with a
one-time code (`est_code`), EST re-enrolment over mutual TLS and renewal signed on the token
(`renewal`), the portal's own TLS certificate (`tls_server`). A method is an `Enrolment`: its
`authorise` runs inside the reservation's transaction, decides who is asking, for whom and
whether it is allowed now, and returns an `Intent`. `services/issuance.py` then reserves, signs
and records whatever the method, so no rule of a single method lives there (as smallstep's
provisioners hand their sign options to one authority).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.ca.keys import PublicKey
from certdesk.ca.profiles import Extensions, Profile
from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState


@dataclass(frozen=True)
class Claim:
    """What at most one request of a batch may hold (one person's first certificate, one
    certificate's renewal): the batch reserves the first and answers the others with the
    method's own refusal, given the serial reserved for the first."""

    key: str
    refusal: Callable[[str], CertdeskError]


@dataclass(frozen=True)
class Intent:
    """What a method decided: who, which key, which profile; the issuing path does the rest."""

    profile: Profile
    public_key: PublicKey
    subject: x509.Name
    extensions: Extensions
    method: str
    person_id: str | None = None
    token_serial: str | None = None
    replaces: str | None = None
    state_after: CertState = CertState.ACTIVE
    backdate: dt.timedelta = dt.timedelta(0)  # CLOCK_SKEW for server certificates
    claim: Claim | None = None


class Enrolment(Protocol):
    """One request of one method, checked where its reservation is written."""

    def authorise(self, conn: Connection) -> Intent:
        """The intent, or a `CertdeskError` saying why not.

        The transaction is the batch's and commits even when this request is refused, so write
        only what must stay either way (a spent nonce), or write after the last refusal.
        """
        ...


def authorise_all(conn: Connection, requests: Sequence[Enrolment]) -> list[Intent | CertdeskError]:
    """Each request's `authorise`, in order, its refusal in its place.

    A method may offer `authorise_many(conn, requests)` (a classmethod, same answers in the same
    order): a run of its requests then goes in one call, which can read what they all need in
    one query (the officer's: the people of a whole group-committed batch; the renewal's: its
    nonces, certificates, their locks and people, one statement each).
    """
    outcomes: list[Intent | CertdeskError] = []
    for kind, run in groupby(requests, key=type):
        many = getattr(kind, "authorise_many", None)
        if many is not None:
            outcomes += many(conn, list(run))
            continue
        for request in run:
            try:
                outcomes.append(request.authorise(conn))
            except CertdeskError as exc:
                outcomes.append(exc)
    return outcomes


@dataclass(frozen=True)
class IssuedCertificate:
    """What every method gets back: the certificate, whom it went to, and the CA that signed."""

    serial: str
    certificate: x509.Certificate
    profile: Profile
    person_id: str | None
    token_serial: str | None
    issuer: str  # the authority's id
    issuer_certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)


# `Issuance.issue` or `GroupCommitter.issue`: methods do not care which.
Issue = Callable[[Enrolment], IssuedCertificate]
