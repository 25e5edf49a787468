"""The holder's renewal flow on a SoftHSM token against the real application (in-process), with
the server's answer lost at the worst moments: pickup completes, never a second certificate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from certdesk.client.renewal import CONFIRM, PROFILE, RENEW, TokenRenewal
from certdesk.client.server import Server
from certdesk.client.settings import ClientSettings
from certdesk.domain.clock import FixedClock
from certdesk.domain.errors import CertdeskError
from certdesk.services.certificates import get_certificate
from certdesk.services.enrolment.onto_token import enrol_onto_token
from certdesk.services.issuance import Issuance
from certdesk.store.tables import certificates
from certdesk.token.device import find_token, open_session
from certdesk.web.app import create_app
from softhsm import USER_PIN, SoftHSM

SETTINGS = ClientSettings("https://testserver", root_fingerprint="")


class LosesAnswer(Server):
    """Delivers the request to the server, then loses the answer once for `path`."""

    def __init__(self, http: httpx.Client, path: str) -> None:
        super().__init__(SETTINGS, http=http)
        self.path = path
        self.lost = False

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = super()._call(method, path, **kw)
        if path == self.path and not self.lost:
            self.lost = True
            raise CertdeskError("client.server_unreachable", url=path, detail="connection reset")
        return response


class Recording(Server):
    """Notes each call; `before` runs ahead of each one (to move the server's clock)."""

    def __init__(self, http: httpx.Client, before: Any = None) -> None:
        super().__init__(SETTINGS, http=http)
        self.calls: list[str] = []
        self.before = before

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if self.before is not None:
            self.before(method, path)
        self.calls.append(f"{method} {path}")
        return super()._call(method, path, **kw)


@pytest.fixture
def world(issuance: Issuance, softhsm: SoftHSM) -> Iterator[tuple[Issuance, TestClient]]:
    softhsm.init_token("zhang")
    enrol_onto_token(issuance.issue, issuance.ctx, "p-001", "zhang", USER_PIN)
    clock = issuance.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=340))
    with TestClient(create_app(issuance.ctx), base_url="https://testserver") as http:
        yield issuance, http


def run(server: Server, action: str) -> Any:
    device = find_token(SETTINGS.module, label="zhang")
    with open_session(device, USER_PIN) as session:
        flow = TokenRenewal(server, device, session, lambda en, zh: None)
        return flow.pickup() if action == "pickup" else flow.renew(lambda profile: None)


def renewals_of(issuance: Issuance, serial: str) -> list[str]:
    with issuance.ctx.db.read() as conn:
        return list(
            conn.execute(
                select(certificates.c.serial).where(certificates.c.replaces == serial)
            ).scalars()
        )


def kinds(softhsm: SoftHSM) -> list[str]:
    """Keys and certificates on the token (the initial-PIN marker is a data object)."""
    return sorted(o["kind"] for o in softhsm.objects("zhang") if o["kind"] != "Data")


@pytest.mark.parametrize("lost", [RENEW, CONFIRM])
@pytest.mark.parametrize("retry", ["pickup", "renew"])
def test_lost_answer_then_retry_completes_once(
    world: tuple[Issuance, TestClient], softhsm: SoftHSM, lost: str, retry: str
) -> None:
    issuance, http = world
    (old,) = [r.serial for r in _person_certs(issuance) if r.state.value == "active"]
    with pytest.raises(CertdeskError) as unreachable:
        run(LosesAnswer(http, lost), "renew")
    assert unreachable.value.code == "client.server_unreachable"
    assert "--pickup" in unreachable.value.message("en")
    # the new key stayed on the token, the old certificate still works
    assert kinds(softhsm).count("Private Key") == 2
    outcome = run(Server(SETTINGS, http=http), retry)
    assert outcome.superseded == old
    assert renewals_of(issuance, old) == [outcome.serial]  # never a second certificate
    assert get_certificate(issuance.ctx, outcome.serial).state.value == "active"
    assert get_certificate(issuance.ctx, old).state.value == "superseded"
    assert kinds(softhsm) == ["Certificate", "Private Key", "Public Key"]


def test_refused_renewal_leaves_the_token_as_it_was(
    world: tuple[Issuance, TestClient], softhsm: SoftHSM
) -> None:
    issuance, http = world
    clock = issuance.ctx.clock
    assert isinstance(clock, FixedClock)
    clock.advance(dt.timedelta(days=-100))  # day 240: too early
    before = softhsm.objects("zhang")
    with pytest.raises(CertdeskError) as refused:
        run(Server(SETTINGS, http=http), "renew")
    assert refused.value.code == "renewal.too_early"
    assert "opens on" in refused.value.message("en")
    assert softhsm.objects("zhang") == before


def _person_certs(issuance: Issuance) -> list[Any]:
    from certdesk.services.certificates import list_certificates

    return list_certificates(issuance.ctx, "p-001")


NONCE = "GET /api/v1/renewal/nonce"


def test_each_signed_answer_hands_over_the_next_nonce(world: tuple[Issuance, TestClient]) -> None:
    """Profile, renewal and confirmation in a row under one nonce request (Replay-Nonce)."""
    _issuance, http = world
    server = Recording(http)
    run(server, "renew")
    posts = [f"POST {path}" for path in (PROFILE, RENEW, CONFIRM)]
    assert server.calls == [NONCE, *posts]


def test_a_handed_nonce_that_aged_costs_one_retry(world: tuple[Issuance, TestClient]) -> None:
    """The holder took longer than the nonce lives before confirming: the server refuses the
    handed nonce (nothing done), the tool asks for a fresh one and the renewal completes."""
    issuance, http = world
    clock = issuance.ctx.clock
    assert isinstance(clock, FixedClock)
    ttl = dt.timedelta(seconds=issuance.ctx.config.renewal.nonce_seconds + 1)

    away: list[bool] = []

    def away_before_confirming(method: str, path: str) -> None:
        if path == CONFIRM and not away:
            away.append(True)
            clock.advance(ttl)

    server = Recording(http, away_before_confirming)
    outcome = run(server, "renew")
    assert get_certificate(issuance.ctx, outcome.serial).state.value == "active"
    assert server.calls[-3:] == [f"POST {CONFIRM}", NONCE, f"POST {CONFIRM}"]
