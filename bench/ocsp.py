"""OCSP: answers per second and p50/p99 for GET and POST at 50 concurrent connections (wrk),
certdesk embedded (`certdesk serve --plain-http`) and nginx serving the pre-signed files, next
to the peers run in the same invocation: `openssl ocsp` (1 process and -multi 2,
../shared/peers/openssl-ocsp.sh) and cfssl `ocspserve` (../shared/peers/cfssl-sign.sh, which has
no knob to run ocspserve alone: its sign runs come along and are left out of the summary).

Also the time to pre-sign the responses of --certs synthetic certificates (rows inserted through
the store, one in ten revoked; `certdesk ocsp presign` measured as a command, responses stored in
the database; --files also writes one file per response, about 4 KB of disk each) and the time to
re-sign one after a revocation (what `serve` does when woken: the change feed read, the response
signed, stored and its file written).

    python bench/ocsp.py [--duration 20s] [--conns 50] [--certs 1000000] [--files] [--no-peers]

Every request is a real DER OCSP request (`openssl ocsp -reqout`, SHA-1 CertID, no nonce) for a
"good" demo certificate; one answer per target is checked with `openssl ocsp -respin` first.
Machine load (loadavg, CPU count) is printed before and after.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from certdesk.config import Config
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE
from certdesk.services.ocsp import OcspResponder
from certdesk.services.revocation import revoke
from certdesk.store import certificates as cert_store
from certdesk.store.db import Database
from portal import free_port, nginx_args, nginx_binary, nginx_main, running

ROOT = Path(__file__).resolve().parents[1]
CERTDESK = str(Path(sys.executable).parent / "certdesk")
PEERS = ROOT.parent / "shared" / "peers"
PERSON = "demo-0002"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine() -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return f"loadavg={','.join(load)} cpus={os.cpu_count()}"


def environment(data: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(data),
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_SERVER_TLS": "false",
        "CERTDESK_URLS_BASE": f"http://127.0.0.1:{port}",
        "CERTDESK_DATABASE_SQLITE_SYNCHRONOUS": "normal",
    }


def context(data: Path) -> Context:
    config = Config().replace(paths={"data_dir": str(data)})
    return Context(config, Database(config.database_url), actor="bench")


def populate(ctx: Context, count: int) -> str:
    """`count` signed-looking certificate rows of the issuing CA (the responder reads only
    serial, state, dates and revocation); returns an active one's serial."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rng = random.Random(1)
    chunk = 50_000
    active = ""
    for start in range(0, count, chunk):
        rows = []
        for i in range(min(chunk, count - start)):
            revoked = (start + i) % 10 == 0
            rows.append(
                {
                    "serial": format(rng.getrandbits(159) | 1 << 150, "x"),
                    "issuer": "issuing",
                    "profile": "personal",
                    "state": "revoked" if revoked else "active",
                    "subject": "",
                    "not_before": now - dt.timedelta(days=30),
                    "not_after": now + dt.timedelta(days=335),
                    "der": b"\x30\x00",
                    "reserved_at": now,
                    "issued_at": now,
                    "revoked_at": now if revoked else None,
                    "revocation_reason": "keyCompromise" if revoked else None,
                }
            )
        active = active or next(str(r["serial"]) for r in rows if r["state"] == "active")
        with ctx.db.write() as conn:
            cert_store.reserve(conn, rows)
        log(f"  {min(start + chunk, count):>9,} / {count:,} rows")
    return active


def presign_figures(data: Path, count: int, files: bool) -> list[str]:
    ctx = context(data)
    try:
        serial = populate(ctx, count)
        env = {**environment(data, 0), "CERTDESK_OCSP_FILES": str(files).lower()}
        log(f"certdesk ocsp presign ({count:,} certificates, files={files})…")
        started = time.monotonic()
        done = subprocess.run(
            [CERTDESK, "ocsp", "presign", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise SystemExit(f"presign failed: {done.stderr[-500:]}")
        report = json.loads(done.stdout)
        responder = OcspResponder(ctx)
        responder.apply_changes()
        started = time.monotonic()
        revoke(ctx, serial, "keyCompromise")
        resigned = responder.apply_changes()
        one = time.monotonic() - started
        assert serial in resigned, resigned
    finally:
        ctx.db.dispose()
    return [
        f"ocsp presign certs={count} signed={report['signed']} seconds={report['seconds']:.1f} "
        f"command_wall_s={wall:.1f} per_s={report['signed'] / max(report['seconds'], 1e-9):.0f} "
        f"files={files}",
        f"ocsp revoke_to_resigned_ms={one * 1000:.1f} (revocation committed, change feed read, "
        f"response signed, stored and written; serve polls other processes every "
        f"{Config().ocsp.poll_seconds} s)",
    ]


def wrk(url: str, duration: str, conns: int, body: Path | None) -> dict[str, str]:
    """One wrk run; POST `body` when given. Returns rate, p50, p99 (ms) and non-2xx."""
    args = ["wrk", "-t2", f"-c{conns}", f"-d{duration}", "--timeout", "5s", "--latency"]
    script = None
    if body is not None:
        script = body.with_suffix(".lua")
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
            f'local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        )
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=False).stdout

    def ms(key: str) -> str:
        found = re.search(rf"^\s*{key}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not found:
            return "?"
        value, unit = float(found.group(1)), found.group(2)
        return f"{value / 1000 if unit == 'us' else value * 1000 if unit == 's' else value:.2f}"

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "reqs_per_s": rate.group(1) if rate else "?",
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non2xx": non2xx.group(1) if non2xx else "0",
    }


def check(url: str, body: Path | None, pki: Path, work: Path) -> str:
    """One answer through the same URL, verified by `openssl ocsp -respin`."""
    resp = work / "check.der"
    post = ["--data-binary", f"@{body}", "-H", "Content-Type: application/ocsp-request"]
    subprocess.run(
        ["curl", "-sS", "-o", str(resp), *(post if body else []), url],
        capture_output=True,
        check=False,
    )
    done = subprocess.run(
        ["openssl", "ocsp", "-respin", str(resp), "-issuer", str(pki / "issuing.pem"),
         "-CAfile", str(pki / "root.pem"), "-resp_text"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    ok = "Response verify OK" in done.stderr
    status = re.search(r"Cert Status: (\w+)", done.stdout)
    return f"{status.group(1) if status else 'none'}+{'sig_ok' if ok else 'sig_FAIL'}"


def files_site(data: Path, port: int, backend: int) -> str:
    """The OCSP location of docs/nginx-certdesk.conf in a plain-HTTP server."""
    return f"""upstream certdesk {{ server 127.0.0.1:{backend}; keepalive 32; }}
server {{
    listen 127.0.0.1:{port};
    merge_slashes off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;  # certdesk answers only its configured host names
    location /ocsp/ {{
        root {data}/ocsp-files;
        default_type application/ocsp-response;
        add_header Cache-Control "max-age=300, public, no-transform, must-revalidate";
        try_files $uri @certdesk;
    }}
    location / {{ proxy_pass http://certdesk; }}
    location @certdesk {{ proxy_pass http://certdesk; }}
}}
"""


@contextmanager
def nginx(prefix: Path, site: str, port: int) -> Iterator[int]:
    conf = nginx_main(prefix, site, 1)
    with running(nginx_args(prefix, conf), port, "nginx") as pid:
        yield pid


def peers(duration: str, conns: int) -> list[str]:
    env = {**os.environ, "DURATION": duration, "CONNS": str(conns)}
    lines: list[str] = []
    for script, keep in (
        ("openssl-ocsp.sh", "peer=openssl-ocsp"),
        ("cfssl-sign.sh", "peer=cfssl-ocspserve"),
    ):
        path = PEERS / script
        if not path.exists():
            lines.append(f"peer={script} missing ({path})")
            continue
        log(f"running peer {script}…")
        out = subprocess.run(
            ["bash", str(path)], env=env, capture_output=True, text=True, check=False
        )
        found = [line for line in out.stdout.splitlines() if line.startswith(keep)]
        lines += found or [f"peer={script} failed: {out.stderr.strip()[-300:]}"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="20s", help="wrk duration per run")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--certs", type=int, default=1_000_000, help="certificates to pre-sign")
    parser.add_argument("--files", action="store_true", help="write the N files when pre-signing")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    nginx_binary()
    lines = [f"machine before: {machine()}"]
    work = Path(tempfile.mkdtemp(prefix="certdesk-bench-ocsp-"))
    try:
        data = work / "var"
        backend, front = free_port(), free_port()
        env = environment(data, backend)
        init = subprocess.run(
            [CERTDESK, "init"], cwd=work, env=env, capture_output=True, check=False
        )
        if init.returncode != 0:
            raise SystemExit(init.stderr.decode()[-500:])
        pki = data / "pki"
        p12 = data / "demo" / f"{PERSON}.p12"
        cert = pkcs12.load_key_and_certificates(p12.read_bytes(), DEMO_PASSPHRASE.encode())[1]
        assert cert is not None
        holder = work / "holder.pem"
        holder.write_bytes(cert.public_bytes(Encoding.PEM))
        request = work / "req.der"
        subprocess.run(
            ["openssl", "ocsp", "-issuer", str(pki / "issuing.pem"), "-cert", str(holder),
             "-no_nonce", "-reqout", str(request)],
            capture_output=True, check=True,
        )  # fmt: skip
        path = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
        with ExitStack() as stack:
            stack.enter_context(running([CERTDESK, "serve"], backend, "certdesk serve", work, env))
            name = base64.b64encode(request.read_bytes()).decode()
            deadline = time.monotonic() + 60
            while not (data / "ocsp-files" / "ocsp" / name).exists():
                if time.monotonic() > deadline:
                    raise SystemExit("certdesk serve wrote no pre-signed file")
                time.sleep(0.1)
            prefix = work / "nginx"
            prefix.mkdir()
            stack.enter_context(nginx(prefix, files_site(data, front, backend), front))
            for shape, port in (("embedded", backend), ("nginx-files", front)):
                for method, url, body in (
                    ("GET", f"http://127.0.0.1:{port}/ocsp/{path}", None),
                    ("POST", f"http://127.0.0.1:{port}/ocsp", request),
                ):
                    checked = check(url, body, pki, work)
                    log(f"wrk {shape} {method}…")
                    got = wrk(url, args.duration, args.conns, body)
                    served_by = "certdesk (proxied)" if shape != "embedded" and body else shape
                    lines.append(
                        f"ocsp shape={shape} method={method} "
                        + " ".join(f"{k}={v}" for k, v in got.items())
                        + f" check={checked} served_by={served_by.replace(' ', '_')}"
                        f" conns={args.conns} dur={args.duration}"
                    )
        lines += presign_figures(data, args.certs, args.files)
        if not args.no_peers:
            lines += peers(args.duration, args.conns)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"machine after: {machine()}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
