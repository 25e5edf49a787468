"""Server stacks for the proxy shape: the same certdesk application (bench/stack_app.py, what
`certdesk serve --plain-http` runs) under uvicorn (httptools + uvloop, what `serve` uses) and
granian (Rust HTTP, ASGI), plain HTTP on loopback as behind nginx.

wrk (C, one thread) drives each with the header nginx adds (`X-SSL-Client-Cert`, the holder's
certificate URL-encoded), so nothing but the server stack and the application is measured:
GET /livez (the floor: same stack, no database, no thread) and GET / (the holder's home page).
Each server is one process (granian: one worker); its CPU per request is user + system time
of the server's processes over the run.

    python bench/stack.py [--db sqlite|postgres] [--seconds 8] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from issue import database
from portal import (
    CERTDESK,
    cpu_seconds,
    free_port,
    holder_files,
    load_span,
    log,
    machine,
    running,
)

BENCH = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
STACKS = {
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"), "--factory", "stack_app:make", "--host", "127.0.0.1",
        "--port", str(port), "--http", "httptools", "--loop", "uvloop", "--no-access-log",
        "--no-server-header", "--log-level", "warning",
    ],
    "granian": lambda port: [
        str(BIN / "granian"), "--interface", "asgi", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--runtime-mode", "st", "--loop", "uvloop",
        "--log-level", "warning", "stack_app:make",
    ],
}  # fmt: skip
TARGETS = {"floor": "/livez", "page": "/"}
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class Run:
    rate: float
    p50: float
    p99: float
    cpu_per_request: float  # seconds


def seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def wrk(port: int, path: str, header: str, opts: argparse.Namespace, pid: int) -> Run:
    args = ["wrk", "-t1", f"-c{opts.connections}", f"-d{opts.seconds}s", "--latency"]
    args += ["-H", f"X-SSL-Client-Cert: {header}", f"http://127.0.0.1:{port}{path}"]
    cpu0 = cpu_seconds([pid])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds([pid]) - cpu0
    if "Non-2xx" in out:
        raise SystemExit(f"{path}: answers other than 2xx\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    rate = requests / opts.seconds
    return Run(rate, seconds(latency["50"]), seconds(latency["99"]), cpu / requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the median")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="certdesk-stack-"))
    load_before = machine()
    results: dict[tuple[str, str], list[Run]] = {}
    try:
        with database(opts.db, work) as url:
            data = work / "var"
            env = {
                **os.environ,
                "CERTDESK_PATHS_DATA_DIR": str(data),
                "CERTDESK_DATABASE_URL": url,
                "CERTDESK_SERVER_TLS": "false",
                "CERTDESK_SERVER_TRUSTED_PROXIES": "127.0.0.1/32",
                "PYTHONPATH": str(BENCH),
            }
            log(f"certdesk init ({opts.db}) …")
            subprocess.run([CERTDESK, "init"], cwd=work, env=env, check=True, capture_output=True)
            cert, _key = holder_files(data, work)
            header = quote(cert.read_text(), safe="")
            for stack, command in STACKS.items():
                port = free_port()
                with running(command(port), port, stack, work, env) as pid:
                    warm = argparse.Namespace(**{**vars(opts), "seconds": 1})
                    for path in TARGETS.values():  # warm up: imports, caches, the pool
                        wrk(port, path, header, warm, pid)
                    for n in range(opts.rounds):
                        for name, path in TARGETS.items():
                            run = wrk(port, path, header, opts, pid)
                            results.setdefault((stack, name), []).append(run)
                            log(f"{stack} {name} round {n + 1}: {run.rate:.0f}/s, "
                                f"{run.cpu_per_request * 1e6:.0f} us CPU/request")  # fmt: skip
                    time.sleep(0.2)  # let the server finish its last responses before it stops
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"# server stacks, plain HTTP on loopback (the proxy shape), {opts.db}; wrk 1 thread, "
        f"{opts.connections} connections, {opts.seconds} s, median of {opts.rounds} rounds; "
        f"{os.cpu_count()} CPUs shared with wrk; {load_span(load_before)}"
    )
    print("stack    target   req/s   p50 ms   p99 ms  server CPU us/request")
    for (stack, name), runs in results.items():
        med = {f: statistics.median(getattr(r, f) for r in runs) for f in Run.__dataclass_fields__}
        print(
            f"{stack:<8} {name:<6} {med['rate']:7.0f} {med['p50'] * 1e3:8.2f} "
            f"{med['p99'] * 1e3:8.2f} {med['cpu_per_request'] * 1e6:14.0f}"
        )
    for stack in STACKS:
        page = statistics.median(r.cpu_per_request for r in results[(stack, "page")])
        floor = statistics.median(r.cpu_per_request for r in results[(stack, "floor")])
        print(f"{stack}: page / floor CPU per request {page / floor:.1f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
