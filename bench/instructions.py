"""Instructions per issued certificate or per page, counted by callgrind: CPU figures that do
not drift.

The 2-core machines the other benches run on change speed by 2x within an hour (steal time), so
a before/after pair of timed runs can say nothing about a 5 % change. Callgrind counts the
instructions the interpreter executes instead: the same code, inputs and environment give the
same count to within ~0.1 %, whatever else the machine is doing.

What is counted: the issuing pipeline in its steady state (`Issuance.advance` and
`Issuance.sign` as `group_commit.Pipeline` drives them: each batch's record shares a
transaction with the next batch's reservation), batches of 8, one thread, SQLite with the file
key. The run is made twice, with 0 and with `--count` certificates; the difference divided by
`--count` leaves out start-up, the CA, the people and their CSRs.

`--work page` counts the logged-in home page instead: the ASGI application exactly as
`certdesk serve --plain-http` builds it, called in process (bench/app_cpu.py's driver) with the
holder's certificate in the header nginx sets, one request at a time, on the SQLite database
`certdesk init` made; the difference between 0 and `--count` pages after a warm-up.

    python bench/instructions.py [--work issuance|page] [--path /] [--count 400] [--src DIR/src]

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


def issuance_child(count: int) -> None:
    """Issue `WARM_UP` then `count` certificates (the work callgrind counts)."""
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


def page_child(count: int) -> None:
    """Answer `WARM_UP` then `count` home pages, one at a time, from the data directory in the
    environment (the work callgrind counts)."""
    import uvloop

    from app_cpu import Driver
    from portal import PERSON_NAME
    from stack_app import make

    driver = Driver(make(), Path(os.environ["BENCH_HOLDER_CERT"]).read_bytes())
    path = os.environ["BENCH_PATH"]

    async def pages(n: int) -> None:
        for _ in range(n):
            status, body = await driver.get(path)
            assert status == 200 and (path != "/" or PERSON_NAME.encode() in body), body[:300]

    async def go() -> None:
        await driver.lifespan("startup")
        await pages(WARM_UP)
        await pages(count)
        await driver.lifespan("shutdown")

    uvloop.run(go())


CHILDREN = {"issuance": issuance_child, "page": page_child}


def page_data(work: Path) -> dict[str, str]:
    """`certdesk init` once in `work`; the environment a page child runs with."""
    from portal import CERTDESK, holder_files

    data = work / "var"
    subprocess.run(
        [CERTDESK, "init"],
        cwd=work,
        env={**os.environ, "CERTDESK_PATHS_DATA_DIR": str(data)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cert, _ = holder_files(data, work)
    return {"BENCH_HOLDER_CERT": str(cert), "CERTDESK_SERVER_TRUSTED_PROXIES": "127.0.0.1/32"}


def counted(work: str, count: int, src: Path | None, extra: dict[str, str]) -> int:
    """Instructions callgrind counts for one child run of `count` certificates or pages."""
    env = {**os.environ, **extra}
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
                "--work",
                work,
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
    parser.add_argument("--work", choices=sorted(CHILDREN), default="issuance")
    parser.add_argument("--count", type=int, default=400, help="certificates or pages counted")
    parser.add_argument("--path", default="/", help="the page --work page asks for")
    parser.add_argument("--src", type=Path, help="another checkout's src/ (a before/after pair)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if args.child is not None:
        CHILDREN[args.work](args.child)
        return
    if args.count % BATCH or not 0 < args.count <= 1000:
        sys.exit(f"--count: a multiple of {BATCH} from {BATCH} to 1000")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="certdesk-instr-") as tmp:
        runs: list[tuple[int, dict[str, str]]] = [(0, {}), (args.count, {})]
        if args.work == "page":
            extra = page_data(Path(tmp))
            for n, env in runs:  # each a copy of the same data: the runs share no file
                shutil.copytree(Path(tmp) / "var", Path(tmp) / f"var{n}")
                env.update(extra, CERTDESK_PATHS_DATA_DIR=str(Path(tmp) / f"var{n}"))
                env["BENCH_PATH"] = args.path
        with ThreadPoolExecutor(2) as pool:  # counts do not depend on the other run
            empty, full = pool.map(lambda r: counted(args.work, r[0], args.src, r[1]), runs)
    what = f"batch={BATCH} key=file" if args.work == "issuance" else f"path={args.path}"
    print(
        f"tool=certdesk work={args.work} {what} db=sqlite count={args.count} "
        f"src={args.src or 'this checkout'} "
        f"instructions_per_{'cert' if args.work == 'issuance' else 'page'}="
        f"{(full - empty) / args.count:.0f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
