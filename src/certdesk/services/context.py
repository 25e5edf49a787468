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

    @classmethod
    def open(cls, config: Config, actor: str) -> Context:
        """A command's or the server's context: its database, migrated to the newest schema."""
        from certdesk.store.migrate import upgrade  # Alembic: only for processes that open one

        db = Database(config.database_url, sqlite_synchronous=config.database.sqlite_synchronous)
        upgrade(db)
        return cls(config, db, actor=actor)

    def acting_as(self, actor: str) -> Context:
        return Context(self.config, self.db, self.clock, actor)
