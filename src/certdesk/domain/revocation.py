"""Revocation in the notice's terms: the reasons a request may give, and a revoked certificate
as a CRL lists it (shared by the store that reads it and the CA)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from certdesk.domain.states import RevocationReason


class RevokedEntry(NamedTuple):
    serial: int
    revoked_at: dt.datetime
    reason: RevocationReason


# Reasons a request (console, API or CLI) may give for an end-entity certificate (RFC 5280
# §5.3.1): no certificateHold (a revocation here is final), and the CA/AA compromise reasons
# are about authorities, which are not revoked on request.
END_ENTITY_REASONS = (
    RevocationReason.UNSPECIFIED,
    RevocationReason.KEY_COMPROMISE,
    RevocationReason.AFFILIATION_CHANGED,
    RevocationReason.SUPERSEDED,
    RevocationReason.CESSATION_OF_OPERATION,
    RevocationReason.PRIVILEGE_WITHDRAWN,
)
