"""The long run of tests/test_fuzz.py: hostile bodies on every route that takes one (mutated
CSRs and OCSP requests as DER, base64 and PEM, inside validly signed renewal JWS and on EST;
odd JSON on every JSON route), each answer < 500, every refusal problem+json with a code, and a
refused request changing nothing. Prints the counts by target and status class as JSON.

    python bench/fuzz.py [--examples 5000] [--db sqlite|postgres] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from fuzzing import fuzz, make_desk
from issue import database, log, make_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seed", type=int, default=None, help="other cases than the suite's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as url:
        ctx = make_context(Path(tmp), url, "file", sync="normal")
        desk = make_desk(ctx)
        log(f"fuzzing {args.examples} cases on {args.db}…")
        started = time.perf_counter()
        counts = fuzz(desk, args.examples, args.seed)
        seconds = time.perf_counter() - started
    figures = {
        "db": args.db,
        "examples": args.examples,
        "seed": args.seed,
        "requests": sum(counts.values()),
        "server_errors": sum(n for k, n in counts.items() if k.endswith("5xx")),
        "by_target": dict(sorted(counts.items())),
        "seconds": round(seconds, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
