"""The one function that changes the state of a certificate, a token or a person: an allowed
move (`domain/lifecycle.py`), a guarded write (`store/states.py`) and one audit record per move,
all in the caller's transaction.

Issuing (reserved → active / pending), confirming a renewal (pending → active, the old one
active → superseded), revoking, withdrawing an unconfirmed renewal, abandoning a reservation,
token custody and departure all come here, so only the allowed moves ever happen and each one
is recorded with the change.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.domain.lifecycle import require_move
from certdesk.store import audit
from certdesk.store.states import Kind, move_rows

_CHANGED = {
    "certificate": "cert.state_changed",
    "token": "token.state_changed",
    "person": "person.state_changed",
    "authority": "authority.state_changed",
    "request": "request.state_changed",
}


@dataclass(frozen=True)
class Move:
    """One object from `before` to `after`. `values` are written with the state (DER, reason,
    keeper…); `was` and `note` go into the audit record's before and after beside the states."""

    key: str
    before: enum.StrEnum
    after: enum.StrEnum
    values: Mapping[str, object] = field(default_factory=dict)
    note: Mapping[str, object] = field(default_factory=dict)
    was: Mapping[str, object] = field(default_factory=dict)
    kind: Kind = "certificate"


Change = tuple[str, str, Move]  # (actor, action, move)


def transition(
    conn: Connection, at: dt.datetime, actor: str, action: str, moves: Sequence[Move]
) -> None:
    """Apply `moves` in the caller's transaction, all by `actor` as `action`.

    If any object is no longer in its `before` state, `<kind>.state_changed` is raised and the
    caller's transaction rolls back: nothing of the batch happens.
    """
    transitions(conn, at, [(actor, action, m) for m in moves])


def transitions(conn: Connection, at: dt.datetime, changes: Sequence[Change]) -> None:
    """`transition` for moves by several actors and actions (a group committer's batch): one
    guarded write per kind, pair of states and set of values, and one audit append for all, the
    records in the order of `changes`."""
    if not changes:
        return
    groups: dict[tuple[object, ...], list[Move]] = {}
    for _actor, _action, m in changes:
        groups.setdefault((m.kind, m.before, m.after, *sorted(m.values)), []).append(m)
    for moves in groups.values():
        first = moves[0]
        require_move(first.kind, first.before, first.after)
        rows = [{"key": m.key, **m.values} for m in moves]
        moved = move_rows(conn, first.kind, first.before.value, first.after.value, rows)
        if moved != len(moves):
            keys = ", ".join(m.key for m in moves)
            raise CertdeskError(_CHANGED[first.kind], serial=keys, key=keys)
    audit.append_many(
        conn,
        [
            audit.Entry(
                at,
                actor,
                action,
                m.kind,
                m.key,
                before={"state": m.before.value, **m.was},
                after={"state": m.after.value, **m.note},
            )
            for actor, action, m in changes
        ],
    )
