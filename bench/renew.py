"""Renewal over HTTPS: many holders (file keys) renew concurrently; one SoftHSM renewal end to end.

Set-up (not timed): a CA, people and one certificate each, issued with the clock 340 days back
so that, at the real time, every certificate is inside its 30-day renewal window; the holders'
new keys and CSRs are made in advance. Then `certdesk serve` runs (real clock) on that data.

Timed, phase `renew`: --clients concurrent holders (asyncio + httpx, TLS keep-alive, the pinned
root as trust anchor) each GET a nonce, sign the JWS with the current file key and POST
/api/v1/renewal; one renewal = nonce + sign + renew, its latency is measured around all three.
Phase `renew+confirm` (other holders): the same, then the confirmation signed with the new key
under the nonce the renewal's answer handed over (Replay-Nonce), as the holder's tool does.
The load generator runs on the same cores as the server: its own CPU time, the server's and
the rest of the machine's are printed next to the rates.

SoftHSM: one holder renews on a SoftHSM token with the real `certdesk renew` (after `certdesk
connect`; enrolled with `certdesk enroll` under libfaketime 340 days back), next to pkcs11-tool
generating a P-256 key and writing a certificate on the same token. A second token's renewal
runs the same CLI with its token calls timed (the token work alone).

    python bench/renew.py [--count 2000] [--full 500] [--clients 32] [--db sqlite|postgres]
                          [--sync full|normal] [--client httpx|raw] [--no-softhsm]
                          [--profile server.prof]
    python bench/renew.py --workers 2 [--count 2000] [--clients 32] [--client raw] [--cpus auto]

--db postgres makes a fresh schema in $CERTDESK_BENCH_PG (default the test database) and drops
it afterwards; the PostgreSQL processes' CPU is then printed apart. --client raw swaps httpx for
a minimal HTTP/1.1 client (a tenth of the client CPU), to see the server with less competition.
--profile runs the
server under cProfile in every thread, in thread CPU time (slower: its rates are not the
benchmark's) and prints the top functions.

--workers N measures the scaled shape instead (bench/cluster.py, PostgreSQL): nginx terminating
TLS in front of 1, then 2 … N `certdesk serve --plain-http` processes, --count renewals each
(fresh holders every time), phase `renew` only; it prints rate, p50/p99 and CPU per renewal of
certdesk, nginx, PostgreSQL and the load generator, and the scaling efficiency (rate at N over
N x the rate at 1). Goal: >= 500 renewals/s with p99 < 50 ms at 32 clients on 2 workers.
--cpus auto keeps process i on the i-th CPU (`server.cpus`; unpinned by default, as certdesk is).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import insert, text

from certdesk.client.signed import sign_request
from certdesk.config import Config
from certdesk.domain.clock import FixedClock
from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.registry import add_unit
from certdesk.services.server_tls import ensure_tls_certificate
from certdesk.store.db import Database
from certdesk.store.migrate import upgrade
from certdesk.store.tables import people
from cluster import add_cpus_option, cluster, postgres_cpu
from issue import database
from portal import cpu_seconds, load_span, machine

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from request_keys import FileRequestKey

BIN = Path(sys.executable).parent
CERTDESK = str(BIN / "certdesk")
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PASSPHRASE = "bench passphrase"
PIN, SO_PIN = "123456", "12345678"
BACK = dt.timedelta(days=340)  # certificates issued this long ago are in their renewal window
TARGET_RATE, TARGET_P99_MS, TARGET_RATIO = 500.0, 50.0, 1.5
JOSE = {"Content-Type": "application/jose"}

# `certdesk renew` with the token calls it makes timed (outermost call only); writes JSON to
# argv[1]. The console script is `certdesk.cli.main:main`, run here the same way.
TOKEN_TIMED_CLI = r"""
import contextlib, json, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "certdesk"
import certdesk.cli.holder as holder
import certdesk.client.renewal as renewal
import certdesk.token.signing as signing
spent, depth = {}, [0]
def timed(name, fn):
    def wrapper(*a, **kw):
        depth[0] += 1
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                n, s = spent.get(name, (0, 0.0))
                spent[name] = (n + 1, s + time.perf_counter() - t0)
    return wrapper
for mod, names in ((holder, ["find_token"]), (renewal, ["generate_keypair", "private_key_by_id",
        "list_certificates", "write_certificate", "delete_pair", "make_csr"])):
    for name in names:
        setattr(mod, name, timed(name, getattr(mod, name)))
for name in ("sign_raw", "ec_field_bits"):
    setattr(signing, name, timed(name, getattr(signing, name)))
_open = holder.open_session
@contextlib.contextmanager
def open_session(*a, **kw):
    cm = _open(*a, **kw)
    session = timed("login", cm.__enter__)()
    try:
        yield session
    finally:
        timed("logout", cm.__exit__)(None, None, None)
holder.open_session = open_session
from certdesk.cli.main import main
try:
    main()
finally:
    with open(out, "w") as fh:
        json.dump(spent, fh)
"""

# `certdesk serve` with cProfile in every thread (the event loop, the worker threads, the
# group committer), timed in each thread's CPU time (so waiting for locks, the GIL or the
# network counts nothing); on SIGTERM uvicorn shuts down and the merged stats go to argv[1].
PROFILED_SERVE = r"""
import cProfile, pstats, signal, sys, threading, time
out = sys.argv.pop(1)
sys.argv[0] = "certdesk"
profiles = []
def start(frame, event, arg):
    p = cProfile.Profile(time.thread_time)
    profiles.append(p)
    p.enable()  # replaces this hook in the new thread
threading.setprofile(start)
signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after shutting down
class Snap:
    def __init__(self, p):
        p.snapshot_stats()
        self.stats = p.stats
    def create_stats(self):
        pass
main_profile = cProfile.Profile(time.thread_time)
profiles.append(main_profile)
from certdesk.cli.main import main
main_profile.enable()
try:
    main()
except SystemExit:
    pass
finally:
    main_profile.disable()
    stats = pstats.Stats(Snap(profiles[0]))
    for p in profiles[1:]:
        stats.add(Snap(p))
    stats.dump_stats(out)
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- set-up ------------------------------------------------------------------------------------


@dataclass
class Holder:
    person_id: str
    serial: str
    key: FileRequestKey  # the current certificate's key
    new_key: FileRequestKey
    csr: str  # base64url DER, the new key's


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_holders(ctx: Context, count: int, batch: int = 200) -> list[Holder]:
    """`count` people in one unit, each with a certificate (issued at the context's clock) for a
    P-256 file key, and the new key and CSR they will renew with."""
    now = ctx.clock.now()
    first = 0
    with ctx.db.read() as conn:
        first = int(conn.execute(text("SELECT count(*) FROM people")).scalar_one())
    ids = [f"r{first + i:07d}" for i in range(count)]
    with ctx.db.write() as conn:
        conn.execute(
            insert(people),
            [
                {
                    "person_id": pid,
                    "name": f"Holder {pid}",
                    "unit_code": "BENCH",
                    "email": f"{pid}@bench.example",
                    "phone": "",
                    "position_code": None,
                    "state": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for pid in ids
            ],
        )
    issuance = Issuance(ctx)
    empty = x509.Name([])
    holders: list[Holder] = []
    for start in range(0, count, batch):
        chunk = ids[start : start + batch]
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in chunk]
        outcomes = issuance.issue_batch(
            [OfficerEnrolment(ctx, pid, k.public_key()) for pid, k in zip(chunk, keys, strict=True)]
        )
        for pid, key, issued in zip(chunk, keys, outcomes, strict=True):
            if isinstance(issued, Exception):
                raise issued
            new = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(empty)
                .sign(new, hashes.SHA256())
            )
            holders.append(
                Holder(
                    pid,
                    issued.serial,
                    FileRequestKey(key),
                    FileRequestKey(new),
                    b64url(csr.public_bytes(Encoding.DER)),
                )
            )
    return holders


def child_env(workdir: Path) -> dict[str, str]:
    """The servers' and CLIs' environment: nothing of ours but PATH, and PYTHONPATH when set, so
    that code from another checkout (`PYTHONPATH=<worktree>/src`, an interleaved before/after
    pair) is what the children run too, not only this process."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the benchmark dies, so no server outlives it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Served:
    """`certdesk serve` as a child process (optionally under cProfile)."""

    def __init__(self, env: dict[str, str], port: int, workdir: Path, profile: Path | None):
        self.port = port
        self.log = workdir / "serve.log"
        args = [CERTDESK, "serve"]
        if profile is not None:
            args = [sys.executable, "-c", PROFILED_SERVE, str(profile), "serve"]
        self.proc = subprocess.Popen(
            args,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"certdesk serve exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("certdesk serve did not start listening")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick


# -- the load ----------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    phase: str
    done: int
    errors: list[str]
    wall: float
    latencies: list[float]  # nonce + sign + renew
    full_latencies: list[float]  # ... + nonce + sign + confirm (renew+confirm phase)
    confirm_latencies: list[float]  # nonce + sign + confirm alone
    client_cpu: float
    server_cpu: float
    db_cpu: float  # PostgreSQL's processes (0 on SQLite: in the server process)
    machine_busy: float


class RawHTTP:
    """The least a client can do: HTTP/1.1 on one kept-alive TLS connection (asyncio streams),
    for the content-length answers the server gives. Costs ~0.1 ms of CPU per request here."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str, context: ssl.SSLContext) -> RawHTTP:
        host, port = base.split("//", 1)[1].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=context)
        return cls(reader, writer, host)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, str, bytes]:
        """(status, Replay-Nonce header or "", body)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if method == "POST":
            head += f"Content-Type: application/jose\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        data = await self.reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), headers.get("replay-nonce", ""), data

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class HttpxHTTP:
    """The same calls through httpx: one AsyncClient (one kept-alive connection) per simulated
    client, as a pool of --clients connections in one AsyncClient costs ~4 ms of CPU per
    request here against ~0.8 ms this way."""

    def __init__(self, base: str, context: ssl.SSLContext) -> None:
        self.http = httpx.AsyncClient(base_url=base, verify=context, timeout=60.0)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, str, bytes]:
        got = await self.http.request(
            method, path, content=body or None, headers=JOSE if method == "POST" else None
        )
        return got.status_code, got.headers.get("Replay-Nonce", ""), got.content

    async def close(self) -> None:
        await self.http.aclose()


async def _load(
    base: str, root: Path, holders: list[Holder], clients: int, confirm: bool, kind: str
) -> tuple[list[float], list[float], list[float], list[str], float]:
    context = ssl.create_default_context(cafile=str(root))
    latencies: list[float] = []
    full: list[float] = []
    confirms: list[float] = []
    errors: list[str] = []
    todo = iter(holders)
    conns: list[RawHTTP | HttpxHTTP] = []
    try:
        for _ in range(clients):
            conns.append(
                await RawHTTP.open(base, context) if kind == "raw" else HttpxHTTP(base, context)
            )
        # warm-up: every connection's TLS handshake before the clock starts
        await asyncio.gather(*(c.request("GET", "/healthz") for c in conns))

        async def signed(
            c: RawHTTP | HttpxHTTP,
            path: str,
            key: FileRequestKey,
            serial: str,
            action: str,
            payload: dict[str, str],
            nonce: str = "",
        ) -> tuple[int, str, bytes]:
            """(status, the Replay-Nonce handed for the next request, body); a nonce request
            first unless `nonce` is one a previous answer handed over (as the holder's tool)."""
            if not nonce:
                status, nonce, body = await c.request("GET", "/api/v1/renewal/nonce")
                if status != 200:
                    return status, "", body
            token = sign_request(key, serial=serial, nonce=nonce, action=action, payload=payload)
            return await c.request("POST", path, token.encode())

        async def one(c: RawHTTP | HttpxHTTP, h: Holder) -> None:
            t0 = time.perf_counter()
            status, handed, body = await signed(
                c, "/api/v1/renewal", h.key, h.serial, "renew", {"csr": h.csr}
            )
            t1 = time.perf_counter()
            if status != 201:
                errors.append(f"renew {status} {body[:200]!r}")
                return
            latencies.append(t1 - t0)
            if not confirm:
                return
            serial = json.loads(body)["serial"]
            status, _, body = await signed(
                c, "/api/v1/renewal/confirm", h.new_key, serial, "confirm", {}, handed
            )
            if status != 200:
                errors.append(f"confirm {status} {body[:200]!r}")
                return
            full.append(time.perf_counter() - t0)
            confirms.append(time.perf_counter() - t1)

        async def client(c: RawHTTP | HttpxHTTP) -> None:
            for h in todo:  # shared iterator: each holder renews once
                try:
                    await one(c, h)
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return  # this connection is gone

        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in conns))
        wall = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return latencies, full, confirms, errors, wall


def run_phase(
    phase: str,
    served: Served,
    base: str,
    root: Path,
    holders: list[Holder],
    clients: int,
    kind: str,
    pg: bool,
) -> PhaseResult:
    server0, client0, (busy0, _) = served.cpu_seconds(), time.process_time(), machine_busy()
    db0 = postgres_cpu() if pg else 0.0
    latencies, full, confirms, errors, wall = asyncio.run(
        _load(base, root, holders, clients, phase == "renew+confirm", kind)
    )
    server = served.cpu_seconds() - server0
    client = time.process_time() - client0
    busy = machine_busy()[0] - busy0
    db = postgres_cpu() - db0 if pg else 0.0
    return PhaseResult(
        phase, len(latencies), errors, wall, latencies, full, confirms, client, server, db, busy
    )


def q(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1] * 1000


def phase_line(r: PhaseResult, args: argparse.Namespace, cores: int) -> str:
    rate = r.done / r.wall
    n = max(r.done, 1)
    other = max(r.machine_busy - r.server_cpu - r.client_cpu - r.db_cpu, 0.0) / r.wall
    line = (
        f"tool=certdesk phase={r.phase} "
        f"db={args.db}{'/sync=' + args.sync if args.db == 'sqlite' else ''} client={args.client} "
        f"clients={args.clients} renewals={r.done} "
        f"errors={len(r.errors)} renewals_per_s={rate:.0f} "
        f"p50_ms={q(r.latencies, 50):.1f} p99_ms={q(r.latencies, 99):.1f}"
    )
    if r.full_latencies:
        line += (
            f" full_p50_ms={q(r.full_latencies, 50):.1f} full_p99_ms={q(r.full_latencies, 99):.1f}"
            f" confirm_p50_ms={q(r.confirm_latencies, 50):.1f}"
            f" confirm_p99_ms={q(r.confirm_latencies, 99):.1f}"
        )
    line += (
        f" server_cpu_ms_per_renewal={r.server_cpu * 1000 / n:.2f}"
        f" server_cores={r.server_cpu / r.wall:.2f}"
        + (
            f" postgres_cpu_ms_per_renewal={r.db_cpu * 1000 / n:.2f}"
            f" postgres_cores={r.db_cpu / r.wall:.2f}"
            if args.db == "postgres"
            else ""
        )
        + f" client_cpu_ms_per_renewal={r.client_cpu * 1000 / n:.2f}"
        f" client_cores={r.client_cpu / r.wall:.2f}"
        f" other_load_cores={other:.2f} cores={cores}"
    )
    if r.phase == "renew":
        met = rate >= TARGET_RATE and q(r.latencies, 99) < TARGET_P99_MS
        line += (
            f" target=>={TARGET_RATE:.0f}/s,p99<{TARGET_P99_MS:.0f}ms met={'yes' if met else 'NO'}"
        )
    return line


# -- SoftHSM -----------------------------------------------------------------------------------


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} … failed:\n{done.stdout}\n{done.stderr}")
    return done


def softhsm_setup(workdir: Path, env: dict[str, str], persons: list[str]) -> dict[str, str]:
    """A private SoftHSM directory, one token per person enrolled 340 days ago by the CLI."""
    tokens = workdir / "softhsm-tokens"
    tokens.mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**env, "SOFTHSM2_CONF": str(conf), "CERTDESK_CLIENT_HOME": str(workdir / "holder")}
    past = {
        **env,
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": f"-{BACK.days}d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    for person in persons:
        label = f"tok-{person}"
        run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                PIN,
                "--so-pin",
                SO_PIN,
            ],
            env,
            workdir,
        )
        run([CERTDESK, "enroll", person, "--token-label", label, "--pin", PIN], past, workdir)
    return env


def timed_cli(
    cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, list[tuple[float, str]], str]:
    """Wall time of a process, and when each line of its stderr (the progress steps) came."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    lines = [(time.perf_counter() - t0, line.rstrip()) for line in proc.stderr]
    out = proc.stdout.read()
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{cmd[:3]} failed ({proc.returncode}):\n{out}\n" + "\n".join(line for _, line in lines)
        )
    return wall, lines, out


def step_times(lines: list[tuple[float, str]], wall: float) -> dict[str, float]:
    """Milliseconds between the renewal's progress steps (from process start to exit)."""
    marks = [(0.0, "start")]
    for at, line in lines:
        for step in ("1/7", "3/7", "4/7", "5/7", "6/7", "7/7"):
            if step in line:
                marks.append((at, step))
    marks.append((wall, "exit"))
    return {f"{a}->{b}": (tb - ta) * 1000 for (ta, a), (tb, b) in itertools.pairwise(marks)}


def median_ms(cmd: list[str], env: dict[str, str], cwd: Path, times: int = 5) -> float:
    spent = []
    for _ in range(times):
        t0 = time.perf_counter()
        run(cmd, env, cwd)
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent) * 1000


def pkcs11_tool(env: dict[str, str], cwd: Path, label: str, key_id: str, cert_der: Path) -> float:
    """Seconds for pkcs11-tool to make a P-256 key pair and write a certificate on the token."""
    base = ["pkcs11-tool", "--module", SOFTHSM, "--token-label", label, "--login", "--pin", PIN]
    t0 = time.perf_counter()
    run(
        [*base, "--keypairgen", "--key-type", "EC:prime256v1", "--id", key_id, "--label", "x"],
        env,
        cwd,
    )
    run([*base, "--write-object", str(cert_der), "--type", "cert", "--id", key_id], env, cwd)
    return time.perf_counter() - t0


def renew_args(person: str) -> list[str]:
    return ["renew", "--label", f"tok-{person}", "--pin", PIN, "--yes", "--json"]


def softhsm_part(env: dict[str, str], workdir: Path, persons: list[str], url: str) -> list[str]:
    """Per round: the real `certdesk renew` on one token (wall time, progress steps), the same
    CLI with its token calls timed on another, pkcs11-tool's key pair + certificate on the
    first. Medians over the rounds (the machine is shared: one round alone is noisy)."""
    run([CERTDESK, "connect", url, "--yes"], env, workdir)
    walls: list[float] = []
    steps: list[dict[str, float]] = []
    token_walls: list[float] = []
    spents: list[dict[str, list[float]]] = []
    tools: list[float] = []
    rounds = list(zip(persons[0::2], persons[1::2], strict=True))
    for n, (plain, timed) in enumerate(rounds):
        label = f"tok-{plain}"
        wall, lines, out = timed_cli([CERTDESK, *renew_args(plain)], env, workdir)
        walls.append(wall)
        steps.append(step_times(lines, wall))
        renewed = json.loads(out)
        spent_file = workdir / f"token-spent-{n}.json"
        wall2, _lines, _out = timed_cli(
            [*(sys.executable, "-c", TOKEN_TIMED_CLI, str(spent_file)), *renew_args(timed)],
            env,
            workdir,
        )
        token_walls.append(wall2)
        spents.append(json.loads(spent_file.read_text()))
        cert_der = workdir / f"renewed-{n}.der"
        pem = run([CERTDESK, "cert", "show", renewed["serial"], "--pem"], env, workdir).stdout
        cert_der.write_bytes(
            x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
        )
        tools.append(pkcs11_tool(env, workdir, label, f"9{n}", cert_der))
    # the floor of any Python CLI: the interpreter, and importing certdesk's CLI
    python_ms = median_ms([sys.executable, "-c", "pass"], env, workdir)
    import_ms = median_ms([sys.executable, "-c", "import certdesk.cli.main"], env, workdir)
    wall, tool = statistics.median(walls), statistics.median(tools)
    token = statistics.median(sum(s for _n, s in spent.values()) for spent in spents)
    step_ms = {k: statistics.median(d[k] for d in steps if k in d) for k in steps[0]}
    calls = {
        k: (
            int(statistics.median(s[k][0] for s in spents)),
            statistics.median(s[k][1] for s in spents),
        )
        for k in sorted(spents[0])
    }
    k = len(rounds)
    return [
        (
            f"tool=certdesk renew on SoftHSM (CLI, end to end, median of {k}) "
            f"wall_ms={wall * 1000:.0f} (all: {', '.join(f'{w * 1000:.0f}' for w in walls)}) "
            + " ".join(f"{name}={v:.0f}ms" for name, v in step_ms.items())
        ),
        (
            f"tool=certdesk renew on SoftHSM (CLI, token calls timed, median of {k}) "
            f"wall_ms={statistics.median(token_walls) * 1000:.0f} token_ms={token * 1000:.0f} "
            + " ".join(f"{name}={n}x{v * 1000:.1f}ms" for name, (n, v) in calls.items())
        ),
        (
            f"tool=pkcs11-tool keypairgen+write-object (2 processes, median of {k}) "
            f"wall_ms={tool * 1000:.0f} (all: {', '.join(f'{t * 1000:.0f}' for t in tools)})"
        ),
        (
            f"floor python_startup_ms={python_ms:.0f} import_certdesk_cli_ms={import_ms:.0f} "
            f"(median of 5)"
        ),
        (
            f"ratio cli_wall/pkcs11-tool={wall / tool:.1f}x "
            f"token_work/pkcs11-tool={token / tool:.2f}x "
            f"target<={TARGET_RATIO}x (whole CLI) "
            f"met={'yes' if wall / tool <= TARGET_RATIO else 'NO'}"
        ),
    ]


# -- main --------------------------------------------------------------------------------------


def print_profile(path: Path, top: int = 25) -> None:
    import pstats

    for key in ("tottime", "cumulative"):
        log(f"--- server profile, top {top} by {key} ({path}) ---")
        stats = pstats.Stats(str(path), stream=sys.stderr)
        stats.strip_dirs().sort_stats(key).print_stats(top)


def bench(args: argparse.Namespace, workdir: Path, url: str) -> list[str]:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    cfg = Config().replace(
        paths={"data_dir": str(workdir / "var")},
        database={"url": url, "sqlite_synchronous": args.sync},
        ca={"passphrase": PASSPHRASE},
        urls={"base": base},
    )
    log(f"[{args.db}] set-up: CA and {args.count + args.full} holders, 340 days ago…")
    db = Database(url, sqlite_synchronous=args.sync)
    upgrade(db)
    ctx = Context(cfg, db, FixedClock(dt.datetime.now(dt.UTC) - BACK), actor="bench")
    bootstrap(ctx)
    add_unit(ctx, "BENCH", "Bench Unit", "Bench Contact", "it@bench.example", "0771-1")
    t0 = time.perf_counter()
    holders = make_holders(ctx, args.count + args.full)
    log(f"[{args.db}] issued and prepared {len(holders)} in {time.perf_counter() - t0:.1f}s")
    hsm_persons = [f"hsm-{i}" for i in range(2 * args.hsm_rounds)]
    if args.softhsm:
        with ctx.db.write() as conn:
            conn.execute(
                insert(people),
                [
                    {
                        "person_id": p,
                        "name": f"Token Holder {p}",
                        "unit_code": "BENCH",
                        "email": f"{p}@bench.example",
                        "phone": "",
                        "position_code": None,
                        "state": "active",
                        "created_at": ctx.clock.now(),
                        "updated_at": ctx.clock.now(),
                    }
                    for p in hsm_persons
                ],
            )
    db.dispose()
    env = {
        **child_env(workdir),
        "COLUMNS": "200",
        "CERTDESK_PATHS_DATA_DIR": str(workdir / "var"),
        "CERTDESK_DATABASE_URL": url,
        "CERTDESK_DATABASE_SQLITE_SYNCHRONOUS": args.sync,
        "CERTDESK_CA_PASSPHRASE": PASSPHRASE,
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_URLS_BASE": base,
    }
    if args.softhsm:
        log(f"[{args.db}] enrolling {len(hsm_persons)} SoftHSM tokens (libfaketime, -340 days)…")
        env = softhsm_setup(workdir, env, hsm_persons)
    lines: list[str] = []
    cores = os.cpu_count() or 1
    served = Served(env, port, workdir, args.profile)
    try:
        root = workdir / "var" / "pki" / "root.pem"
        httpx.get(f"{base}/api/v1/renewal/nonce", verify=str(root)).raise_for_status()  # warm
        phases = [("renew", holders[: args.count])]
        if args.full:
            phases.append(("renew+confirm", holders[args.count :]))
        for phase, group in phases:
            log(f"[{args.db}] {phase}: {len(group)} holders, {args.clients} clients…")
            result = run_phase(
                phase, served, base, root, group, args.clients, args.client, args.db == "postgres"
            )
            for err in result.errors[:5]:
                log(f"  error: {err}")
            lines.append(phase_line(result, args, cores))
            print(lines[-1], flush=True)
        if args.softhsm:
            log(f"[{args.db}] SoftHSM: certdesk renew and pkcs11-tool…")
            for line in softhsm_part(env, workdir, hsm_persons, base):
                lines.append(line)
                print(line, flush=True)
    finally:
        served.stop()
    if args.profile is not None:
        print_profile(args.profile)
    return lines


def scaled(args: argparse.Namespace, workdir: Path, url: str) -> None:
    """--workers: renewals through nginx with 1..N certdesk processes on PostgreSQL."""
    data = workdir / "var"
    cfg = Config().replace(
        paths={"data_dir": str(data)},
        database={"url": url},
        ca={"passphrase": PASSPHRASE},
        urls={"base": "https://127.0.0.1"},
    )
    db = Database(url)
    upgrade(db)
    ctx = Context(cfg, db, FixedClock(dt.datetime.now(dt.UTC) - BACK), actor="bench")
    bootstrap(ctx)
    ensure_tls_certificate(Context(cfg, db, actor="bench"))  # nginx's, valid now
    add_unit(ctx, "BENCH", "Bench Unit", "Bench Contact", "it@bench.example", "0771-1")
    log(f"[postgres] set-up: CA and {args.count * args.workers} holders, 340 days ago…")
    holders = make_holders(ctx, args.count * args.workers)
    db.dispose()
    env = {
        **child_env(workdir),
        "CERTDESK_DATABASE_URL": url,
        "CERTDESK_CA_PASSPHRASE": PASSPHRASE,
    }
    root = data / "pki" / "root.pem"
    rows = []
    for workers in range(1, args.workers + 1):
        group = holders[(workers - 1) * args.count : workers * args.count]
        profiled = args.profile is not None and workers == 1  # one process: its whole work
        command = [sys.executable, "-c", PROFILED_SERVE, str(args.profile)] if profiled else None
        with cluster(workdir, data, env, workers, command=command, cpus=args.cpus) as shape:
            base = f"https://127.0.0.1:{shape.port}"
            httpx.get(f"{base}/api/v1/renewal/nonce", verify=str(root)).raise_for_status()
            log(f"[postgres] {workers} worker(s): {len(group)} renewals, {args.clients} clients…")
            app0, nginx0 = cpu_seconds(shape.backends), cpu_seconds(shape.nginx)
            db0, client0 = postgres_cpu(), time.process_time()
            latencies, _, _, errors, wall = asyncio.run(
                _load(base, root, group, args.clients, False, args.client)
            )
            n = max(len(latencies), 1)
            cpu = {
                "certdesk": cpu_seconds(shape.backends) - app0,
                "nginx": cpu_seconds(shape.nginx) - nginx0,
                "postgres": postgres_cpu() - db0,
                "client": time.process_time() - client0,
            }
            for err in errors[:5]:
                log(f"  error: {err}")
            rate = len(latencies) / wall
            rows.append(rate)
            print(
                f"workers={workers} cpus={args.cpus or 'unpinned'} renewals={len(latencies)} "
                f"errors={len(errors)} "
                f"renewals_per_s={rate:.0f} p50_ms={q(latencies, 50):.1f} "
                f"p99_ms={q(latencies, 99):.1f} "
                + " ".join(f"{k}_cpu_ms_per_renewal={v * 1000 / n:.2f}" for k, v in cpu.items()),
                flush=True,
            )
            if workers == 2:
                met = rate >= TARGET_RATE and q(latencies, 99) < TARGET_P99_MS
                print(
                    f"target 2 workers >= {TARGET_RATE:.0f}/s, p99 < {TARGET_P99_MS:.0f} ms at "
                    f"{args.clients} clients: {'met' if met else 'NOT met'}"
                )
    if args.profile is not None:
        print_profile(args.profile)
    for workers in range(2, args.workers + 1):
        print(
            f"scaling efficiency, {workers} workers: {rows[workers - 1] / (workers * rows[0]):.2f} "
            f"(goal >= 0.8; {os.cpu_count()} CPUs for everything)"
        )
    print(f"# {load_span(args.machine)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="holders renewing (renew only)")
    parser.add_argument("--full", type=int, default=500, help="holders renewing and confirming")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--sync",
        choices=["full", "normal"],
        default="full",
        help="SQLite synchronous: full (certdesk's default, durable) or normal",
    )
    parser.add_argument(
        "--client",
        choices=["httpx", "raw"],
        default="httpx",
        help="load generator: httpx.AsyncClient, or minimal HTTP/1.1 on asyncio streams",
    )
    parser.add_argument("--no-softhsm", dest="softhsm", action="store_false")
    parser.add_argument("--hsm-rounds", type=int, default=3, help="SoftHSM renewals (median)")
    parser.add_argument("--profile", type=Path, help="run the server under cProfile, stats here")
    parser.add_argument("--workers", type=int, default=0, help="scaled shape, 1..N processes")
    add_cpus_option(parser)
    args = parser.parse_args()
    if args.workers:
        args.db = "postgres"
    if args.profile is not None:
        args.profile = args.profile.resolve()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    workdir = Path(tempfile.mkdtemp(prefix="certdesk-renew-bench-"))
    try:
        (workdir / "var").mkdir()
        with database(args.db, workdir, "var/certdesk.db") as url:
            args.machine = machine()
            load = " ".join(f"{x:.2f}" for x in args.machine[0])
            print(
                f"# {os.cpu_count()} cores shared by server, load generator and whatever else "
                f"runs (load average {load}, reference loop {args.machine[1]:.1f} ms at start); "
                "pkilint off (the default)",
                flush=True,
            )
            if args.workers:
                scaled(args, workdir, url)
            else:
                bench(args, workdir, url)
    except KeyboardInterrupt:
        log("interrupted: server stopped, temporary files removed")
        sys.exit(130)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
