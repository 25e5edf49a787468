"""Instructions per issued certificate, counted by callgrind: a CPU figure that does not drift.

The 2-core machines the other benches run on change speed by 2x within an hour (steal time), so
a before/after pair of timed runs can say nothing about a 5 % change. Callgrind counts the
instructions the interpreter executes instead: the same code, inputs and environment give the
same count to within ~0.1 %, whatever else the machine is doing.

What is counted: the issuing pipeline in its steady state (`Issuance.advance` and
`Issuance.sign` as `group_commit.Pipeline` drives them: each batch's record shares a
transaction with the next batch's reservation), batches of 8, one thread, SQLite with the file
key. The run is made twice, with 0 and with `--count` certificates; the difference divided by
`--count` leaves out start-up, the CA, the people and their CSRs.

    python bench/instructions.py [--count 400] [--src OTHER_CHECKOUT/src]

Needs valgrind (Debian: `apt-get install valgrind`); each run takes a minute or two.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BATCH = 8
WARM_UP = 16  # certificates issued before counting starts: caches and compiled statements


def child(count: int) -> None:
    """Issue `WARM_UP` then `count` certificates (the work callgrind counts)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from certdesk.ca.csr import load_csr
    from certdesk.ca.keys import as_public_key
    from certdesk.services.ca_hierarchy import init_hierarchy
    from certdesk.services.enrolment.officer import OfficerEnrolment
    from certdesk.services.issuance import Issuance
    from issue import make_context, populate

    workdir = Path(tempfile.mkdtemp(prefix="certdesk-instr-"))
    try:
        ctx = make_context(workdir, f"sqlite:///{workdir / 'bench.db'}", "file")
        init_hierarchy(ctx)
        # the same people and CSRs whatever `count` is: their making cancels out
        csrs = populate(ctx, WARM_UP + 1000)
        issuance = Issuance(ctx)
        requests = [
            OfficerEnrolment(ctx, f"b{i:07d}", as_public_key(load_csr(csr).public_key()))
            for i, csr in enumerate(csrs)
        ]

        def pipeline(start: int, end: int) -> None:
            _, flight = issuance.advance(None, requests[start : start + BATCH])
            for i in range(start + BATCH, end + BATCH, BATCH):
                following = requests[i : i + BATCH] if i < end else []
                outcomes, flight = issuance.advance(issuance.sign(flight), following)
                refused = [o for o in outcomes if isinstance(o, Exception)]
                assert not refused, refused

        pipeline(0, WARM_UP)
        if count:
            pipeline(WARM_UP, WARM_UP + count)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def counted(count: int, src: Path | None) -> int:
    """Instructions callgrind counts for one child run of `count` certificates."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}/callgrind.out",
                sys.executable,
                __file__,
                "--child",
                str(count),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        sys.exit(f"callgrind run failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="certificates counted")
    parser.add_argument("--src", type=Path, help="another checkout's src/ (a before/after pair)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.count % BATCH or not 0 < args.count <= 1000:
        sys.exit(f"--count: a multiple of {BATCH} from {BATCH} to 1000")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with ThreadPoolExecutor(2) as pool:  # counts do not depend on the other run
        empty, full = pool.map(lambda n: counted(n, args.src), (0, args.count))
    print(
        f"tool=certdesk work=issuance_pipeline batch={BATCH} db=sqlite key=file "
        f"count={args.count} src={args.src or 'this checkout'} "
        f"instructions_per_cert={(full - empty) / args.count:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
