"""The one derivation of CRL numbers: they only ever increase (RFC 5280 §5.2.3), across
restores too.

A restored database carries the counter of its backup; the journal replays every publication
since (`services/journal.py`), but if the operator had to accept a loss, the counter could be
behind numbers already published. As Boulder does, the number is therefore also derived from the
time: never below the seconds since 2020-01-01, and always above the previous one. Seconds since
2020 stay below PostgreSQL's INTEGER until 2088.
"""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def next_crl_number(previous: int, at: dt.datetime) -> int:
    """The number of a CRL published at `at` after the CRL numbered `previous`."""
    return max(previous + 1, int((at - EPOCH).total_seconds()))
