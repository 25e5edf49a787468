"""One lifecycle: the allowed moves, the status at a time, and the guarded transition."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import (
    CERTIFICATE_MOVES,
    REVOCABLE,
    Status,
    certificate_status,
    require_move,
)
from certdesk.domain.states import CertState, PersonState, TokenState
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.lifecycle import Move, transition
from certdesk.store.tables import audit_log, certificates

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)


def test_moves_that_never_happen_are_refused() -> None:
    for before, after in [
        (CertState.REVOKED, CertState.ACTIVE),
        (CertState.ABANDONED, CertState.ACTIVE),
        (CertState.SUPERSEDED, CertState.ACTIVE),
        (CertState.ACTIVE, CertState.PENDING_INSTALL),
    ]:
        with pytest.raises(CertdeskError) as err:
            require_move("certificate", before, after)
        assert err.value.code == "lifecycle.not_allowed"
        assert "revoked" in err.value.message("en") or before.value in err.value.message("en")
        assert err.value.message("zh-CN") != err.value.message("en")
    with pytest.raises(CertdeskError):
        require_move("person", PersonState.DEPARTED, PersonState.ACTIVE)
    with pytest.raises(CertdeskError):
        require_move("token", TokenState.LOST, TokenState.ISSUED)
    assert (CertState.RESERVED, CertState.ACTIVE) in CERTIFICATE_MOVES
    assert {CertState.ACTIVE, CertState.PENDING_INSTALL, CertState.SUPERSEDED} == REVOCABLE


@pytest.mark.parametrize(
    ("state", "now", "status"),
    [
        (CertState.ACTIVE, T0 - dt.timedelta(seconds=1), Status.NOT_YET_VALID),
        (CertState.ACTIVE, T0, Status.ACTIVE),
        (CertState.ACTIVE, T0 + YEAR, Status.ACTIVE),
        (CertState.ACTIVE, T0 + YEAR + dt.timedelta(seconds=1), Status.EXPIRED),
        (CertState.REVOKED, T0 + YEAR * 2, Status.REVOKED),
        (CertState.SUPERSEDED, T0, Status.SUPERSEDED),
        (CertState.PENDING_INSTALL, T0, Status.PENDING),
        (CertState.RESERVED, T0, Status.RESERVED),
    ],
)
def test_status_at_a_time(state: CertState, now: dt.datetime, status: Status) -> None:
    assert certificate_status(state, T0, T0 + YEAR, now) is status


def test_transition_never_overwrites_a_row_that_moved(issuance: Issuance) -> None:
    ctx = issuance.ctx
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issued = issuance.issue(OfficerEnrolment(ctx, "p-001", key))
    now = ctx.clock.now()
    stale = Move(issued.serial, CertState.PENDING_INSTALL, CertState.ACTIVE)
    with pytest.raises(CertdeskError) as err, ctx.db.write() as conn:
        transition(conn, now, "test", "certificate.activate", [stale])
    assert err.value.code == "cert.state_changed"
    with ctx.db.read() as conn:
        state = conn.execute(
            select(certificates.c.state).where(certificates.c.serial == issued.serial)
        ).scalar()
        actions = list(
            conn.execute(
                select(audit_log.c.action).where(audit_log.c.object_id == issued.serial)
            ).scalars()
        )
    assert state == CertState.ACTIVE.value
    assert actions == ["certificate.reserve", "certificate.issue"]
