"""Expiry reminders for 100,000 holders: queued (decide + outbox, one transaction) and rendered
(the e-mails built from the templates, not sent): time and peak RSS of each step.

The database is filled first (not timed): 100 units, the holders spread over them, each with an
active certificate ending in 14 days (so every one is due), half of them in English. Then a
child process runs `reminders.queue_due` and renders every queued mail, so its peak RSS
measures that work alone.

    python bench/remind.py [--holders 100000] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.store.tables import certificates, people, units
from issue import database, log, make_context, run_child

UNITS = 100
CHUNK = 20_000


def populate(url: str, workdir: Path, holders: int) -> None:
    ctx = make_context(workdir, url, "file")
    init_hierarchy(ctx)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with ctx.db.write() as conn:
        conn.execute(
            insert(units),
            [
                {
                    "code": f"U{u:03}",
                    "name": f"Unit {u}",
                    "contact_name": f"Contact {u}",
                    "contact_email": f"it{u}@example.org",
                    "contact_phone": "",
                    "created_at": now,
                }
                for u in range(UNITS)
            ],
        )
    for start in range(0, holders, CHUNK):
        ids = range(start, min(start + CHUNK, holders))
        with ctx.db.write() as conn:
            conn.execute(
                insert(people),
                [
                    {
                        "person_id": f"p{i:07}",
                        "name": f"Holder {i}",
                        "unit_code": f"U{i % UNITS:03}",
                        "email": f"p{i}@example.org",
                        "phone": "",
                        "state": "active",
                        "locale": "en" if i % 2 else "zh-CN",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(certificates),
                [
                    {
                        "serial": format((1 << 150) + i, "x"),
                        "issuer": "issuing",
                        "profile": "personal",
                        "state": "active",
                        "person_id": f"p{i:07}",
                        "subject": "",
                        "not_before": now - dt.timedelta(days=351),
                        "not_after": now + dt.timedelta(days=14),
                        "der": b"\x30\x00",  # the reminders read dates, not the DER
                        "reserved_at": now,
                        "issued_at": now,
                    }
                    for i in ids
                ],
            )
        log(f"  {ids[-1] + 1:>9,} / {holders:,} holders")
    ctx.db.dispose()


def child(url: str, workdir: str) -> None:
    """Runs in the measured process: queue, then render every queued mail; figures as JSON."""
    from certdesk.services import reminder_mail
    from certdesk.services.reminders import queue_due
    from certdesk.store import outbox

    ctx = make_context(Path(workdir), url, "file")
    t0 = time.perf_counter()
    queued = queue_due(ctx)
    t1 = time.perf_counter()
    rendered = size = 0
    with ctx.db.read() as conn:
        rows = outbox.recent(conn, queued + 1)
    for row in rows:
        payload = json.loads(row.payload)
        kind = "digest" if payload.get("kind") == "digest" else "reminder"
        msg = reminder_mail.build(
            ctx.config, row.id, row.topic, kind, row.locale, row.recipient, payload
        )
        size += len(msg.as_bytes())
        rendered += 1
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "queued": queued,
                "queue_s": t1 - t0,
                "rendered": rendered,
                "render_s": t2 - t1,
                "mail_mb": size / 1e6,
                "peak_rss_mb": peak_mb,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    workdir = Path(tempfile.mkdtemp(prefix="certdesk-remind-"))
    try:
        with database(args.db, workdir) as url:
            log(f"filling {args.db} with {args.holders:,} holders…")
            populate(url, workdir, args.holders)
            log("queueing and rendering in a child process…")
            f = run_child(__file__, url, workdir)
            print(
                f"tool=certdesk db={args.db} holders={args.holders} queued={f['queued']} "
                f"queue_s={f['queue_s']:.2f} rendered={f['rendered']} "
                f"render_s={f['render_s']:.2f} mail_mb={f['mail_mb']:.0f} "
                f"peak_rss_mb={f['peak_rss_mb']:.0f}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
