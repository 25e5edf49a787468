"""What every use case needs: configuration, database, clock and who is acting."""

from __future__ import annotations

from dataclasses import dataclass, field

from certdesk.config import Config
from certdesk.domain.clock import Clock, SystemClock
from certdesk.store.db import Database


@dataclass
class Context:
    config: Config
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    actor: str = "system"

    def acting_as(self, actor: str) -> Context:
        return Context(self.config, self.db, self.clock, actor)
