"""`certdesk` with a crash point, for tests that kill a running server at a chosen moment:

    python tests/crash_server.py POINT serve

The process SIGKILLs itself the first time a personal certificate reaches POINT:

    after_sign     the CA key signed it, the record step has not started (a `reserved` row)
    after_record   recorded (active), the answer not yet sent to the client

Certificates the server makes for itself (TLS, OCSP responder) pass untouched.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from certdesk.ca.issuer import Authority, CertificateOrder
from certdesk.ca.profiles import Profile
from certdesk.cli.main import main
from certdesk.services.issuance import Issuance


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    if point == "after_sign":
        sign = Authority.issue

        def issue(self: Authority, order: CertificateOrder) -> x509.Certificate:
            certificate = sign(self, order)
            if order.profile is Profile.PERSONAL:
                die()
            return certificate

        Authority.issue = issue  # type: ignore[method-assign]
    elif point == "after_record":
        record = Issuance._record

        def recorded(self: Issuance, signed: Sequence[Any], *rest: Any) -> Any:
            reservation = record(self, signed, *rest)  # type: ignore[arg-type]
            if any(s.reserved.intent.profile is Profile.PERSONAL for s in signed):
                die()
            return reservation

        Issuance._record = recorded  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    sys.argv = ["certdesk", *sys.argv[2:]]
    main()
