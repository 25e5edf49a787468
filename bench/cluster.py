"""The scaled shape for the benches' --workers: nginx terminating TLS (docs/nginx-certdesk.conf)
in front of N `certdesk serve --plain-http` processes on one PostgreSQL database.

Each process gets its own copy of the data directory (the server lock, the OCSP files) and all
share one journal, as separate machines would share the database. Background jobs run in every
process here (running them once is the scale-out issue's other half); the benches do not count
on them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from portal import CERTDESK, cpu_seconds, free_port, nginx_args, nginx_main, proxy_site, running


def postgres_cpu() -> float:
    """CPU seconds of every `postgres` process (the database server's share of the machine;
    other sessions on the same PostgreSQL count too)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            head, _, rest = stat.read_text().rpartition(")")
            if head.endswith("(postgres"):
                fields = rest.split()
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Cluster:
    port: int  # nginx, TLS
    backends: list[int]  # the certdesk processes' pids
    nginx: list[int]  # nginx's master pid (its workers are its children)


def worker_dirs(data: Path, count: int) -> list[Path]:
    """`count` copies of the initialised data directory `data` (made once, reused)."""
    dirs = []
    for i in range(count):
        copy = data.parent / f"{data.name}-w{i + 1}"
        if not copy.exists():
            shutil.copytree(data, copy, ignore=shutil.ignore_patterns("journal", "*.lock"))
        dirs.append(copy)
    return dirs


def add_cpus_option(parser: argparse.ArgumentParser) -> None:
    """The benches' `--cpus` for their scaled shape (`cluster(cpus=…)`)."""
    parser.add_argument(
        "--cpus",
        choices=["", "auto"],
        default="",
        help="--workers: 'auto' keeps each process on a CPU of its own (server.cpus)",
    )


@contextmanager
def cluster(
    work: Path,
    data: Path,
    env: dict[str, str],
    workers: int,
    nginx_workers: str = "1",
    command: list[str] | None = None,
    cpus: str = "",
) -> Iterator[Cluster]:
    """nginx on a free port in front of `workers` certdesk processes, until the block ends
    (`command` instead of `certdesk`, e.g. under a profiler); `cpus` "auto": process i kept on
    the i-th CPU (round-robin), as `server.cpus` keeps `--workers N`."""
    allowed = sorted(os.sched_getaffinity(0))
    with ExitStack() as stack:
        port = free_port()
        backends, pids = [], []
        for i, folder in enumerate(worker_dirs(data, workers)):
            backends.append(free_port())
            worker_env = {
                **env,
                "CERTDESK_PATHS_DATA_DIR": str(folder),
                "CERTDESK_JOURNAL_PATH": str(data / "journal"),
                "CERTDESK_SERVER_TRUSTED_PROXIES": "127.0.0.1/32",
                "CERTDESK_URLS_BASE": f"https://127.0.0.1:{port}",
                "CERTDESK_SERVER_CPUS": str(allowed[i % len(allowed)]) if cpus else "",
            }
            args = [*(command or [CERTDESK]), "serve", "--plain-http", "--port", str(backends[-1])]
            pids.append(
                stack.enter_context(
                    running(args, backends[-1], f"worker {i + 1}", work, worker_env)
                )
            )
        prefix = work / f"nginx-{workers}w"
        prefix.mkdir(exist_ok=True)
        conf = nginx_main(prefix, proxy_site(data, port, backends), nginx_workers)
        master = stack.enter_context(running(nginx_args(prefix, conf), port, "nginx"))
        settle(pids)
        yield Cluster(port, pids, [master])


def settle(pids: list[int], timeout: float = 300.0) -> None:
    """Wait until the processes' start-up work (e.g. pre-signing OCSP answers for every
    certificate) is over: less than 2 % of a core for a second."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds(pids)
        if now - before < 0.02 * len(pids):
            return
        before = now
