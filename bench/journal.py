"""Journal start-up cost, one segment against many (issue 13): the same writes journalled with a
`journal.segment_bytes` larger than the whole journal (as before segments: read whole at every
start) and with small segments; then the start-up check (`attach`) is timed and the bytes it
read counted (/proc/self/io rchar), and a restore from a backup taken before the writes.

    python bench/journal.py [--writes 3000] [--segment-kib 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from certdesk.config import Config
from certdesk.domain.clock import SystemClock
from certdesk.services import registry
from certdesk.services.backup import restore, take_backup
from certdesk.services.context import Context
from certdesk.services.journal import attach
from certdesk.store.db import Database
from certdesk.store.journal import segments
from certdesk.store.migrate import upgrade


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def opened(config: Config) -> tuple[Context, float, int]:
    db = Database(config.database_url)
    upgrade(db)
    before, started = read_bytes(), time.perf_counter()
    attach(config, db, SystemClock(), "bench")
    took, bytes_read = time.perf_counter() - started, read_bytes() - before
    return Context(config, db, SystemClock(), actor="bench"), took, bytes_read


def run(writes: int, segment_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Config().replace(paths={"data_dir": tmp}, journal={"segment_bytes": segment_bytes})
        ctx, _, _ = opened(config)
        backup = take_backup(ctx, Path(tmp) / "before.db")
        for n in range(writes):
            registry.add_unit(ctx, f"U{n:05}", f"Unit {n}")
        ctx.db.dispose()
        found = segments(config.journal_dir)
        total = sum(p.stat().st_size for p in found)
        ctx, took, bytes_read = opened(config)
        ctx.db.dispose()
        started = time.perf_counter()
        done = restore(config, backup.path, "bench", accept_loss=False)
        replayed = time.perf_counter() - started
        assert done.refusal is None and done.replayed.transactions == writes
        print(
            f"segment_bytes {segment_bytes:>11,}: {len(found):>4} segments, {total / 1e6:6.1f} MB;"
            f" start-up {took * 1000:7.1f} ms, read {bytes_read / 1e6:6.2f} MB;"
            f" restore of {writes} transactions {replayed:5.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--segment-kib", type=int, default=256)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    run(args.writes, 1 << 40)
    run(args.writes, args.segment_kib * 1024)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
