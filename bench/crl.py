"""A CRL of 1,000,000 revoked entries built from the database: time and peak RSS.

The database is filled first (not timed); then a child process runs `certdesk crl publish`'s
service (`publish_crl`: count, load, build, sign, write DER and PEM) so its peak RSS measures
that work alone. With --peer it runs ../shared/peers/openssl-gencrl.sh in the same run.

    python bench/crl.py [--entries 1000000] [--db sqlite|postgres] [--peer]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).parent))
from certdesk.domain.states import RevocationReason
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.store.tables import certificates
from issue import PEERS, database, log, make_context, run_child

REASONS = [r.value for r in RevocationReason if r is not RevocationReason.CERTIFICATE_HOLD]


def populate(url: str, workdir: Path, entries: int) -> None:
    ctx = make_context(workdir, url, "file")
    init_hierarchy(ctx)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rng = random.Random(1)
    placeholder = b"\x30\x00"  # rows need a DER; the CRL only reads serial, date and reason
    chunk = 50_000
    for start in range(0, entries, chunk):
        rows = [
            {
                "serial": format(rng.getrandbits(159) | 1 << 150, "x"),
                "issuer": "issuing",
                "profile": "personal",
                "state": "revoked",
                "subject": "",
                "not_before": now - dt.timedelta(days=30),
                "not_after": now + dt.timedelta(days=335),
                "der": placeholder,
                "reserved_at": now,
                "issued_at": now,
                "revoked_at": now - dt.timedelta(seconds=rng.randrange(2_000_000)),
                "revocation_reason": REASONS[rng.randrange(len(REASONS))],
            }
            for _ in range(min(chunk, entries - start))
        ]
        with ctx.db.write() as conn:
            conn.execute(insert(certificates), rows)
        log(f"  {min(start + chunk, entries):>9,} / {entries:,} rows")
    ctx.db.dispose()


def child(url: str, workdir: str) -> None:
    """Runs in the measured process: publish the CRL, print the figures as JSON."""
    from certdesk.services.crl_publish import publish_crl

    ctx = make_context(Path(workdir), url, "file")
    t0 = time.perf_counter()
    published = publish_crl(ctx)
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "entries": published.entries,
                "der": str(published.der_path),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--peer", action="store_true", help="also run openssl ca -gencrl")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    workdir = Path(tempfile.mkdtemp(prefix="certdesk-crl-"))
    try:
        with database(args.db, workdir) as url:
            log(f"filling {args.db} with {args.entries:,} revoked certificates…")
            populate(url, workdir, args.entries)
            log("building the CRL in a child process…")
            figures = run_child(__file__, url, workdir)
            parsed = subprocess.run(
                [
                    "openssl",
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    figures["der"],
                    "-noout",
                    "-nextupdate",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            size_mb = Path(figures["der"]).stat().st_size / 1e6
            print(
                f"tool=certdesk db={args.db} entries={figures['entries']} "
                f"wall_s={figures['seconds']:.2f} peak_rss_mb={figures['peak_rss_mb']:.0f} "
                f"crl_der_mb={size_mb:.1f} "
                f"check={'openssl_parse_ok' if parsed.returncode == 0 else 'openssl_FAIL'}",
                flush=True,
            )
        if args.peer:
            log("running the peer openssl-gencrl.sh…")
            peer = subprocess.run(
                ["bash", str(PEERS / "openssl-gencrl.sh")],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "SIZES": str(args.entries)},
            )
            for line in peer.stdout.splitlines():
                if line.startswith("peer="):
                    print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
