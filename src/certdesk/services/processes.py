"""How many certdesk processes may serve one database.

PostgreSQL: any number, on any number of machines (everything shared is in the database, the
jobs run once under the lease). SQLite: one server process. SQLite itself would stay correct
(one writer at a time, `BEGIN IMMEDIATE`), but a second process adds no write throughput and
its journal must be shared; so it is refused at start, never left silently unsafe.
"""

from __future__ import annotations

from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.store.db import is_sqlite_url


def check_workers(config: Config, workers: int) -> None:
    """Refuse a worker count this database cannot be served with."""
    if workers < 1:
        raise CertdeskError("config.invalid", detail=f"server.workers: {workers} (at least 1)")
    if workers > 1 and is_sqlite_url(config.database_url):
        raise CertdeskError("server.workers_need_postgres", workers=workers)
