"""Hostile bodies on every route that takes one (tests/fuzzing.py says what is sent and what
must hold), a fixed set of cases every run, on SQLite and PostgreSQL. `bench/fuzz.py` runs the
same checks with many more cases."""

from __future__ import annotations

from certdesk.services.context import Context
from fuzzing import TARGETS, fuzz, make_desk

EXAMPLES = 200


def test_hostile_bodies_get_4xx_problems_and_change_nothing(ctx: Context) -> None:
    counts = fuzz(make_desk(ctx), EXAMPLES)
    assert not [k for k in counts if k.endswith("5xx")], counts
    hit = {key.split()[0] for key in counts}
    assert hit == set(TARGETS), counts  # every kind of route got hostile bodies
