"""Portal latency: p50/p99 of an authenticated page (GET / with a holder's client certificate)
at 100 concurrent keep-alive clients, next to nginx serving a static page with mTLS.

Targets, measured in turn (interleaved rounds; each target's median round by p99 is reported)
by the same load generator with the same certificate, concurrency and number of requests:
  nginx     nginx (worker_processes 1, like certdesk's one process) answering a static copy
            of the same home page, client certificate required and checked against the CA chain
  certdesk  `certdesk serve` terminating TLS itself (the embedded default)
  proxy     (--proxy) nginx in front of `certdesk serve --plain-http` (docs/nginx-certdesk.conf),
            --backends N of them in the upstream

The load generator is plain asyncio (TLS with a client certificate, HTTP/1.1 keep-alive, a
minimal response parser), so it costs little CPU next to the servers; it shares the machine
with them. Connections are opened and warmed up (one request each) before the clock starts.
The target is "certdesk's p99 within 3x nginx's".

    python bench/portal.py [--requests 10000] [--clients 100] [--rounds 3] [--proxy]
                           [--backends 1] [--nginx-workers 1]
    python bench/portal.py --workers 2 [--requests 10000] [--clients 100] [--rounds 3]
                           [--cpus auto]

--workers N measures the scaled shape instead (bench/cluster.py): on PostgreSQL, nginx in front
of 1, then 2 … N `certdesk serve --plain-http` processes; next to the page, the floor of the
stack: GET /livez (same framework, server, nginx and TLS path; no database, no thread). It
prints rate, p50/p99 and CPU per request of certdesk, nginx, PostgreSQL and the load generator
for each, the page's CPU over the floor's (goal <= 2x) and the scaling efficiency (rate at N over
N x the rate at 1; goal >= 0.8 where the cores allow: they are shared with nginx, PostgreSQL
and the load generator, here driven by uvloop). --cpus auto keeps process i on the i-th CPU
(`server.cpus`; unpinned by default, as certdesk is).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certdesk.services.demo import DEMO_PASSPHRASE

ROOT = Path(__file__).resolve().parents[1]
CERTDESK = str(Path(sys.executable).parent / "certdesk")
DOCS_CONF = ROOT / "docs" / "nginx-certdesk.conf"
PERSON = "demo-0002"  # from `certdesk init`, with a PKCS#12 file
PERSON_NAME = "Demo Approver"
TARGET_RATIO = 3.0
FLOOR_RATIO, EFFICIENCY = 2.0, 0.8  # --workers goals


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reference_ms() -> float:
    """How fast this machine runs Python now: the best of five runs of a fixed loop, in ms of
    CPU. A shared host's speed drifts (by up to half within an hour, seen here), so a figure is
    comparable only with one measured next to it; this says how far the machine moved."""
    best = float("inf")
    for _ in range(5):
        start, total = time.process_time(), 0
        for i in range(200_000):
            total += i * i % 7
        best = min(best, time.process_time() - start)
    return best * 1000


def file_create_us() -> float:
    """What creating a file costs here, in µs of CPU (the kernel's, mostly): the benches' data
    directories are made under $TMPDIR, and every new certificate's OCSP response becomes a
    file. Seen on this project's machines: 10 µs on tmpfs, 20–30 µs in one ext4 directory,
    140–1,080 µs in another of the same file system — a figure that moves a renewal's CPU by
    milliseconds, so the benches print it next to the reference loop."""
    with tempfile.TemporaryDirectory() as directory:
        start = time.process_time()
        for i in range(200):
            os.close(os.open(os.path.join(directory, f"f{i}"), os.O_WRONLY | os.O_CREAT, 0o600))
        return (time.process_time() - start) / 200 * 1e6


Machine = tuple[tuple[float, float, float], float]  # load averages, reference loop ms


def machine() -> Machine:
    """How busy and how fast the machine is now (`load_span` compares two of these)."""
    return os.getloadavg(), reference_ms()


def load_span(before: Machine) -> str:
    """How busy the machine was at the start of a run and now, and how fast (`reference_ms`)."""
    loads, reference = before
    return (
        "load average before "
        + " ".join(f"{x:.2f}" for x in loads)
        + ", after "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + f"; reference loop {reference:.1f} ms before, {reference_ms():.1f} ms after (higher:"
        f" a slower machine); creating a file in {tempfile.gettempdir()}:"
        f" {file_create_us():.0f} us of CPU"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(proc: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start listening")


@contextmanager
def running(
    args: list[str],
    port: int,
    what: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port(proc, port, what)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and their children (nginx workers), Linux."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid in pids or ppid in pids:
                total += int(fields[11]) + int(fields[12])
    return total / tick


# -- load generator ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies: list[float]  # seconds
    elapsed: float
    cpu: float = 0.0  # CPU seconds the server processes used during the run
    nginx_cpu: float = 0.0  # --workers: nginx apart from certdesk
    db_cpu: float = 0.0  # --workers: PostgreSQL
    client_cpu: float = 0.0  # --workers: the load generator

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return self.pct(99)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def line(self) -> str:
        return (
            f"{self.name:<9} p50 {self.p50 * 1000:7.1f} ms  p99 {self.pct(99) * 1000:7.1f} ms  "
            f"max {max(self.latencies) * 1000:7.1f} ms  {self.rate:7.0f} req/s  "
            f"server CPU {self.cpu / len(self.latencies) * 1e6:5.0f} us/request"
        )


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                raise SystemExit("chunked responses are not supported by this generator")
        body = await self.reader.readexactly(length or 0)
        return status, body


async def load(
    name: str,
    port: int,
    tls: ssl.SSLContext,
    clients: int,
    requests: int,
    expect: bytes,
    path: str = "/",
) -> Result:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n"
        "Accept-Language: en\r\nUser-Agent: certdesk-bench\r\n\r\n"
    ).encode()

    async def connect() -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1", limit=1 << 20
        )
        conn = Connection(reader, writer)
        status, body = await conn.get(request)  # warm-up: handshake done, page checked
        if status != 200 or expect not in body:
            raise SystemExit(f"{name}: warm-up answered {status}: {body[:300]!r}")
        return conn

    conns: list[Connection] = []
    for start in range(0, clients, 20):  # not all handshakes at once: nothing to measure there
        conns += await asyncio.gather(*(connect() for _ in range(start, min(clients, start + 20))))
    latencies: list[float] = []
    remaining = requests

    async def client(conn: Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            status, body = await conn.get(request)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise SystemExit(f"{name}: answered {status}: {body[:300]!r}")

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    elapsed = time.perf_counter() - began
    for c in conns:
        c.writer.close()
    return Result(name, latencies, elapsed)


def client_context(pki: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "root.pem"))
    context.load_cert_chain(str(cert), str(key))
    return context


# -- set-up ----------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    return found


def nginx_main(prefix: Path, site: str, workers: int) -> Path:
    """A main nginx.conf around `site` (a server block), everything under `prefix`."""
    temp = prefix / "temp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"    {kind}_temp_path {temp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "site.conf").write_text(site)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes {workers};
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000;
{temps}
    include {prefix / "site.conf"};
}}
"""
    )
    return conf


def nginx_args(prefix: Path, conf: Path) -> list[str]:
    return [
        nginx_binary(),
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(conf),
        "-g",
        "daemon off;",
    ]


def static_site(data: Path, port: int, root: Path) -> str:
    return f"""server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate     {data}/tls/server.crt;
    ssl_certificate_key {data}/tls/server.key;
    ssl_client_certificate {data}/pki/chain.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    root {root};
    location = / {{ try_files /index.html =404; default_type text/html; }}
}}
"""


def proxy_site(data: Path, port: int, backends: list[int]) -> str:
    site = DOCS_CONF.read_text()
    servers = " ".join(f"server 127.0.0.1:{b};" for b in backends)
    for old, new in [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/srv/certdesk/var/", f"{data}/"),
        ("server 127.0.0.1:8080;", servers),
    ]:
        site = site.replace(old, new)
    return site


def holder_files(data: Path, out: Path) -> tuple[Path, Path]:
    key, cert, _ = pkcs12.load_key_and_certificates(
        (data / "demo" / f"{PERSON}.p12").read_bytes(), DEMO_PASSPHRASE.encode()
    )
    assert key is not None and cert is not None
    cert_path, key_path = out / "holder.crt", out / "holder.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="report each target's median")
    parser.add_argument("--proxy", action="store_true", help="also certdesk behind nginx")
    parser.add_argument("--backends", type=int, default=1, help="certdesk processes (proxy)")
    parser.add_argument("--nginx-workers", default="1", help="worker_processes (1 or auto)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--workers", type=int, default=0, help="scaled shape, 1..N processes")
    from cluster import add_cpus_option  # cluster imports this module

    add_cpus_option(parser)
    opts = parser.parse_args()
    if opts.workers:
        scaled(opts)
        return

    work = Path(tempfile.mkdtemp(prefix="certdesk-bench-portal-"))
    data = work / "var"
    env = {**os.environ, "CERTDESK_PATHS_DATA_DIR": str(data)}
    load_before = machine()  # other work on the machine skews every figure
    try:
        log("certdesk init …")
        subprocess.run([CERTDESK, "init"], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        cert, key = holder_files(data, work)
        tls = client_context(data / "pki", cert, key)
        with ExitStack() as servers:
            # ports are taken just before use: other programs on the machine pick free ports too
            direct = free_port()
            serve = [CERTDESK, "serve", "--port", str(direct)]
            pids = {
                "certdesk": [servers.enter_context(running(serve, direct, "certdesk", work, env))]
            }
            # the static page nginx serves is the very page certdesk answers (same size)
            www = work / "www"
            www.mkdir()
            (www / "index.html").write_bytes(asyncio.run(fetch(direct, tls)))
            (work / "nginx-static").mkdir()
            static = free_port()
            conf = nginx_main(
                work / "nginx-static", static_site(data, static, www), opts.nginx_workers
            )
            static_server = running(nginx_args(work / "nginx-static", conf), static, "nginx")
            pids["nginx"] = [servers.enter_context(static_server)]
            targets = {"nginx": static, "certdesk": direct}
            if opts.proxy:
                proxy_env = {**env, "CERTDESK_SERVER_TRUSTED_PROXIES": "127.0.0.1/32"}
                backends, pids["proxy"] = [], []
                for _ in range(opts.backends):
                    backends.append(free_port())
                    plain = [CERTDESK, "serve", "--plain-http", "--port", str(backends[-1])]
                    backend = running(plain, backends[-1], "plain", work, proxy_env)
                    pids["proxy"].append(servers.enter_context(backend))
                (work / "nginx-proxy").mkdir()
                proxied = free_port()
                site = proxy_site(data, proxied, backends)
                conf = nginx_main(work / "nginx-proxy", site, opts.nginx_workers)
                proxy = running(nginx_args(work / "nginx-proxy", conf), proxied, "nginx (proxy)")
                pids["proxy"].append(servers.enter_context(proxy))
                targets["proxy"] = proxied
            rounds: dict[str, list[Result]] = {name: [] for name in targets}
            for n in range(opts.rounds):  # interleaved: a busy moment hits every target
                for name, port in targets.items():
                    log(f"round {n + 1}/{opts.rounds}: {name} on :{port} …")
                    before = cpu_seconds(pids[name])
                    result = asyncio.run(
                        load(name, port, tls, opts.clients, opts.requests, PERSON_NAME.encode())
                    )
                    result.cpu = cpu_seconds(pids[name]) - before
                    log(result.line())
                    rounds[name].append(result)

        print(
            f"GET / as {PERSON}, {opts.clients} keep-alive clients, {opts.requests} requests, "
            f"median of {opts.rounds} rounds by p99, {os.cpu_count()} CPUs "
            f"({load_span(load_before)}), nginx worker_processes "
            f"{opts.nginx_workers}" + (f", {opts.backends} backends" if opts.proxy else "")
        )
        results = {
            name: sorted(rs, key=lambda r: r.p99)[len(rs) // 2] for name, rs in rounds.items()
        }
        for name, result in results.items():
            spread = ", ".join(f"{r.p99 * 1000:.0f}" for r in rounds[name])
            print(f"{result.line()}  [p99 of each round, ms: {spread}]")
        nginx = results["nginx"]
        for name, result in results.items():
            if name == "nginx":
                continue
            ratio = result.p99 / nginx.p99
            verdict = "within" if ratio <= TARGET_RATIO else "NOT within"
            print(
                f"{name}/nginx: p50 {result.p50 / nginx.p50:.1f}x, p99 {ratio:.1f}x "
                f"({verdict} the {TARGET_RATIO:.0f}x target)"
            )
    finally:
        if opts.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def scaled(opts: argparse.Namespace) -> None:
    """--workers: the page and the floor behind nginx with 1..N certdesk processes."""
    import uvloop

    from cluster import cluster, postgres_cpu
    from issue import database

    work = Path(tempfile.mkdtemp(prefix="certdesk-bench-portal-"))
    data = work / "var"
    load_before = machine()
    targets = {"floor": ("/livez", b'"ok"'), "page": ("/", PERSON_NAME.encode())}
    results: dict[tuple[int, str], Result] = {}
    try:
        with database("postgres", work) as url:
            env = {**os.environ, "CERTDESK_PATHS_DATA_DIR": str(data), "CERTDESK_DATABASE_URL": url}
            log("certdesk init (PostgreSQL) …")
            subprocess.run(
                [CERTDESK, "init"], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL
            )
            cert, key = holder_files(data, work)
            tls = client_context(data / "pki", cert, key)
            for workers in range(1, opts.workers + 1):
                with cluster(work, data, env, workers, opts.nginx_workers, cpus=opts.cpus) as shape:
                    rounds: dict[str, list[Result]] = {name: [] for name in targets}
                    for n in range(opts.rounds):
                        for name, (path, expect) in targets.items():
                            log(f"{workers} worker(s), round {n + 1}/{opts.rounds}: {name} …")
                            app0, nginx0 = cpu_seconds(shape.backends), cpu_seconds(shape.nginx)
                            db0, client0 = postgres_cpu(), time.process_time()
                            result = uvloop.run(
                                load(
                                    name, shape.port, tls, opts.clients, opts.requests, expect, path
                                )
                            )
                            result.cpu = cpu_seconds(shape.backends) - app0
                            result.nginx_cpu = cpu_seconds(shape.nginx) - nginx0
                            result.db_cpu = postgres_cpu() - db0
                            result.client_cpu = time.process_time() - client0
                            log(result.line())
                            rounds[name].append(result)
                    for name, rs in rounds.items():
                        results[(workers, name)] = sorted(rs, key=lambda r: r.p99)[len(rs) // 2]
        print(
            f"# scaled shape: nginx (worker_processes {opts.nginx_workers}, TLS, client "
            f"certificate) -> 1..{opts.workers} `certdesk serve --plain-http` on PostgreSQL; "
            f"{os.cpu_count()} CPUs shared by nginx, certdesk, PostgreSQL and the load generator; "
            f"certdesk processes {'each on a CPU of its own' if opts.cpus else 'unpinned'}; "
            f"{opts.clients} keep-alive clients, {opts.requests} requests, median of "
            f"{opts.rounds} rounds by p99; {load_span(load_before)}"
        )
        print(
            "workers target  req/s    p50 ms   p99 ms  certdesk us/req  nginx us/req  "
            "postgres us/req  client us/req"
        )
        for (workers, name), r in results.items():
            n = len(r.latencies)
            print(
                f"{workers:>7} {name:<6} {r.rate:6.0f} {r.p50 * 1000:9.1f} {r.p99 * 1000:8.1f} "
                f"{r.cpu / n * 1e6:16.0f} {r.nginx_cpu / n * 1e6:13.0f} "
                f"{r.db_cpu / n * 1e6:16.0f} {r.client_cpu / n * 1e6:14.0f}"
            )
        for workers in range(1, opts.workers + 1):
            page, floor = results[(workers, "page")], results[(workers, "floor")]
            ratio = (page.cpu / len(page.latencies)) / (floor.cpu / len(floor.latencies))
            met = "met" if ratio <= FLOOR_RATIO else "NOT met"
            print(
                f"page/floor certdesk CPU per request, {workers} worker(s): {ratio:.1f}x "
                f"(goal <= {FLOOR_RATIO:.0f}x: {met})"
            )
        for workers in range(2, opts.workers + 1):
            for name in targets:
                one, many = results[(1, name)], results[(workers, name)]
                eff = many.rate / (workers * one.rate)
                met = "met" if eff >= EFFICIENCY else "NOT met"
                print(
                    f"scaling efficiency {name}, {workers} workers: {eff:.2f} "
                    f"(goal >= {EFFICIENCY}: {met}; {os.cpu_count()} CPUs for everything)"
                )
    finally:
        if opts.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


async def fetch(port: int, tls: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    conn = Connection(reader, writer)
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n\r\n".encode()
    status, body = await conn.get(request)
    writer.close()
    if status != 200:
        raise SystemExit(f"GET / answered {status}")
    return body


if __name__ == "__main__":
    main()
