"""What every use case needs: configuration, database (with its journal), clock and who is
acting."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from certdesk.config import Config
from certdesk.domain.clock import Clock, SystemClock
from certdesk.store import audit
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
        from certdesk.services.journal import attach
        from certdesk.store.migrate import upgrade  # Alembic: only for processes that open one

        db = Database(config.database_url, sqlite_synchronous=config.database.sqlite_synchronous)
        upgrade(db)
        ctx = cls(config, db, actor=actor)
        attach(config, db, ctx.clock, actor)  # every audited write is journalled from here on
        return ctx

    def acting_as(self, actor: str) -> Context:
        return Context(self.config, self.db, self.clock, actor)

    def record(
        self,
        conn: Connection,
        at: dt.datetime,
        action: str,
        object_type: str,
        object_id: str,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """The audit record of a change made by whoever this context acts as, in `conn`'s
        transaction (one state change, one record)."""
        audit.append(
            conn,
            at=at,
            actor=self.actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
        )
