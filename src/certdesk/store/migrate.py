"""Bring a database to the newest schema with the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from certdesk.store import leases
from certdesk.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database) -> None:
    """Apply every pending migration (idempotent)."""
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        leases.serialise_migrations(conn)  # servers started at once migrate one after another
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
