"""Token custody: stock, issue to one keeper, return, lost."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.registry import Token
from certdesk.domain.states import RevocationReason, TokenState
from certdesk.services.context import Context
from certdesk.services.lifecycle import Move, transition
from certdesk.services.registry import get_person
from certdesk.services.revocation import revoke_in
from certdesk.store import certificates as cert_store
from certdesk.store import tokens as token_store


def _token(conn: Connection, serial: str) -> Token:
    token = token_store.get(conn, serial)
    if token is None:
        raise CertdeskError("token.not_found", serial=serial)
    return token


def kept_token(conn: Connection, serial: str, person_id: str) -> Token:
    """The token `serial`, refused unless `person_id` is recorded as its keeper (a unit contact
    reports their own people's tokens lost, not anyone's)."""
    token = _token(conn, serial)
    if token.keeper_id != person_id:
        raise CertdeskError("token.not_kept_by", serial=serial, person_id=person_id)
    return token


def register_token(ctx: Context, serial: str, model: str = "") -> Token:
    """Put a new token into stock."""
    if not serial.strip():
        raise CertdeskError("input.invalid", detail="token serial must not be empty")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        if token_store.get(conn, serial) is not None:
            raise CertdeskError("token.duplicate", serial=serial)
        values = {"serial": serial, "model": model, "state": TokenState.IN_STOCK.value}
        token_store.insert_token(conn, values, now)
        ctx.record(
            conn,
            now,
            "token.register",
            "token",
            serial,
            after=values,
        )
        return _token(conn, serial)


def ensure_registered(ctx: Context, serial: str, model: str = "") -> Token:
    """The token's registry record, put into stock first if the office has not seen it yet."""
    with ctx.db.read() as conn:
        known = token_store.get(conn, serial)
    return known if known is not None else register_token(ctx, serial, model)


def check_assignable(conn: Connection, serial: str, person_id: str) -> Token:
    """A token may go to `person_id` if it is in stock or already theirs (one keeper per token)."""
    token = _token(conn, serial)
    if token.state is TokenState.ISSUED and token.keeper_id != person_id:
        raise CertdeskError("token.issued_to_other", serial=serial, keeper=token.keeper_id)
    if token.state in (TokenState.LOST,):
        raise CertdeskError("token.not_available", serial=serial, state=token.state.value)
    return token


def hand_over(conn: Connection, ctx: Context, serial: str, person_id: str) -> None:
    """Record `person_id` as the token's keeper inside the caller's transaction."""
    token = check_assignable(conn, serial, person_id)
    if token.state is TokenState.ISSUED:
        return
    _move(conn, ctx, "token.issue", token, TokenState.ISSUED, person_id)


def _move(
    conn: Connection,
    ctx: Context,
    action: str,
    token: Token,
    after: TokenState,
    keeper: str | None,
    **note: object,
) -> None:
    now = ctx.clock.now()
    move = Move(
        token.serial,
        token.state,
        after,
        values={"keeper_id": keeper, "updated_at": now},
        note={"keeper": keeper, **note},
        was={"keeper": token.keeper_id},
        kind="token",
    )
    transition(conn, now, ctx.actor, action, [move])


def assign_token(ctx: Context, serial: str, person_id: str) -> Token:
    with ctx.db.write() as conn:
        get_person(conn, person_id)
        hand_over(conn, ctx, serial, person_id)
        return _token(conn, serial)


def return_token(ctx: Context, serial: str) -> Token:
    with ctx.db.write() as conn:
        token = _token(conn, serial)
        _move(conn, ctx, "token.return", token, TokenState.RETURNED, None)
        return _token(conn, serial)


def list_tokens(ctx: Context, keeper_id: str | None = None) -> list[Token]:
    with ctx.db.read() as conn:
        return token_store.all_tokens(conn, keeper_id)


@dataclass(frozen=True)
class LostToken:
    token: Token
    revoked: list[str]


def preview_lost(ctx: Context, serial: str) -> LostToken:
    """What `report_lost` would do (the token and the certificates it would revoke), or its
    refusal, without doing it: for the console's confirmation step."""
    with ctx.db.read() as conn:
        token = _token(conn, serial)
        if token.state is TokenState.LOST:
            raise CertdeskError("token.already_lost", serial=serial)
        return LostToken(token, cert_store.in_use_on_token(conn, serial, token.keeper_id))


def report_lost(ctx: Context, serial: str) -> LostToken:
    """A token is lost (rule 12): marked lost and, in the same transaction, the certificates on
    it — and its keeper's active certificate unless that one is recorded on another token — are
    revoked with keyCompromise, so the next login or OCSP check already refuses them."""
    with ctx.db.write() as conn:
        return lost_in(conn, ctx, serial)


def lost_in(conn: Connection, ctx: Context, serial: str) -> LostToken:
    """`report_lost` inside the caller's transaction (a lost-token request, carried out at once)."""
    token = _token(conn, serial)
    if token.state is TokenState.LOST:
        raise CertdeskError("token.already_lost", serial=serial)
    serials = cert_store.in_use_on_token(conn, serial, token.keeper_id)
    _move(conn, ctx, "token.lost", token, TokenState.LOST, token.keeper_id, revoke=serials)
    for cert_serial in serials:
        revoke_in(conn, ctx, cert_serial, RevocationReason.KEY_COMPROMISE)
    return LostToken(_token(conn, serial), serials)
