"""How many certdesk processes may serve one database, and on which CPUs.

PostgreSQL: any number, on any number of machines (everything shared is in the database, the
jobs run once under the lease). SQLite: one server process. SQLite itself would stay correct
(one writer at a time, `BEGIN IMMEDIATE`), but a second process adds no write throughput and
its journal must be shared; so it is refused at start, never left silently unsafe.

`server.cpus` keeps each application process on one CPU, as nginx's `worker_cpu_affinity`
does: a process runs Python under one interpreter lock, and its threads (the event loop, the
group committers) hand that lock to each other many times per batch; when they sit on
different cores each hand-off also moves their memory between the cores' caches. Pinned, a
renewal in the scaled shape cost 5–11 % less CPU (docs/benchmarks.md). Off by default: a
process that terminates TLS itself does use a second core (OpenSSL and SQLite release the lock).
"""

from __future__ import annotations

import contextlib
import os
import re

from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.store.db import is_sqlite_url


def check_workers(config: Config, workers: int) -> None:
    """Refuse a worker count this database cannot be served with."""
    if workers < 1:
        raise CertdeskError("config.invalid", detail=f"server.workers: {workers} (at least 1)")
    if workers > 1 and is_sqlite_url(config.database_url):
        raise CertdeskError("server.workers_need_postgres", workers=workers)
    cpus_of(config.server.cpus)  # a wrong CPU list is refused before anything starts


def cpus_of(setting: str) -> list[int]:
    """The CPUs `server.cpus` names, in its order: none for "" (the system schedules), every
    CPU this process may run on for "auto", else a list such as "0,2-3"; a CPU this process may
    not run on (or not a CPU) is refused."""
    allowed = sorted(os.sched_getaffinity(0))
    if not setting.strip():
        return []
    if setting.strip() == "auto":
        return allowed
    named: list[int] = []
    for part in setting.split(","):
        found = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", part)
        if found is None or int(found[2] or found[1]) < int(found[1]):
            raise CertdeskError("config.invalid", detail=f"server.cpus: {setting!r}")
        named += range(int(found[1]), int(found[2] or found[1]) + 1)
    if set(named) - set(allowed):
        raise CertdeskError(
            "config.invalid",
            detail=f"server.cpus: {setting!r} (this process may run on {allowed})",
        )
    return named


def pin_to_cpu(config: Config, index: int) -> int | None:
    """Keep this process, every thread it has and every one it starts, on the CPU
    `server.cpus` gives application process `index` (round-robin); None if it is off."""
    cpus = cpus_of(config.server.cpus)
    if not cpus:
        return None
    cpu = cpus[index % len(cpus)]
    for thread in os.listdir("/proc/self/task"):  # threads a library may have started
        with contextlib.suppress(ProcessLookupError):  # one that ended meanwhile
            os.sched_setaffinity(int(thread), {cpu})
    return cpu
