"""A revoked certificate as a CRL lists it (shared by the store that reads it and the CA)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from certdesk.domain.states import RevocationReason


class RevokedEntry(NamedTuple):
    serial: int
    revoked_at: dt.datetime
    reason: RevocationReason
