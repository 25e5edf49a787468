"""Issuance throughput: CSR -> certificate, persisted and audited, per second and p99 latency.

Settings: database (SQLite file in WAL mode, PostgreSQL) x CA key (P-256 file key, P-256 key in
SoftHSM). Each setting prints the raw sign rate of the same key as the ceiling. With --peers it
runs cfssl and django-ca doing the same work in the same run (../shared/peers/) and prints their
lines next to ours.

    python bench/issue.py [--count 5000] [--db sqlite,postgres] [--keys file,softhsm] [--peers]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, event, insert, text

from certdesk.ca.csr import load_csr
from certdesk.ca.keys import as_public_key
from certdesk.config import Config
from certdesk.services.authorities import ISSUING, load_signer, require_authority
from certdesk.services.ca_hierarchy import init_hierarchy
from certdesk.services.context import Context
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.group_commit import Pipeline
from certdesk.services.issuance import Issuance
from certdesk.services.registry import add_unit
from certdesk.store.db import Database
from certdesk.store.migrate import upgrade
from certdesk.store.tables import people

PG_URL = os.environ.get("CERTDESK_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PEERS = Path(__file__).resolve().parents[1].parent / "shared" / "peers"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_child(script: str, url: str, workdir: Path) -> dict[str, Any]:
    """Run `script --child url workdir` in a fresh process (so its peak RSS measures that work
    alone) and return the JSON figures it prints last."""
    out = subprocess.run(
        [sys.executable, script, "--child", url, str(workdir)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


@contextmanager
def database(kind: str, workdir: Path, sqlite_file: str = "bench.db") -> Iterator[str]:
    """A database URL for one run: a SQLite file, or a fresh PostgreSQL schema dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / sqlite_file}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def softhsm_config(workdir: Path) -> dict[str, str]:
    """A private SoftHSM token for the CA keys; returns the [ca] overrides."""
    tokens = workdir / "tokens"
    tokens.mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "bench-ca",
            "--pin",
            "1234",
            "--so-pin",
            "12345678",
        ],
        check=True,
        capture_output=True,
    )
    return {
        "key_storage": "pkcs11",
        "pkcs11_module": SOFTHSM,
        "root_key_uri": "pkcs11:token=bench-ca;object=root?pin-value=1234",
        "issuing_key_uri": "pkcs11:token=bench-ca;object=issuing?pin-value=1234",
    }


def make_context(workdir: Path, url: str, keys: str, sync: str = "full") -> Context:
    ca: dict[str, str] = {"passphrase": "bench"}
    if keys == "softhsm":
        ca |= softhsm_config(workdir)
    cfg = Config().replace(
        paths={"data_dir": str(workdir / "var")},
        database={"url": url, "sqlite_synchronous": sync},
        ca=ca,
    )
    db = Database(url, sqlite_synchronous=sync)
    upgrade(db)
    return Context(cfg, db, actor="bench")


def populate(ctx: Context, count: int) -> list[bytes]:
    """`count` people in one unit, and one CSR (own P-256 key) for each."""
    add_unit(ctx, "BENCH", "Bench Unit")
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "person_id": f"b{i:07d}",
            "name": f"Person {i}",
            "unit_code": "BENCH",
            "email": f"p{i}@bench.example",
            "phone": "",
            "position_code": None,
            "state": "active",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    with ctx.db.write() as conn:
        conn.execute(insert(people), rows)
    csrs = []
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        csrs.append(csr.public_bytes(serialization.Encoding.DER))
    return csrs


def ceiling(ctx: Context, seconds: float = 2.0) -> float:
    """Raw signatures per second of the issuing key (the same key the CA uses)."""
    with ctx.db.read() as conn:
        info = require_authority(conn, ISSUING)
    signer = load_signer(ctx, info)
    sign: Callable[[bytes], object]
    if hasattr(signer, "sign_tbs"):
        sign = signer.sign_tbs
    else:
        key = signer._key  # the very key object in use
        sign = lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    data, n, end = os.urandom(300), 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        sign(data)
        n += 1
    return n / seconds


def issue_all(
    issuance: Issuance, csrs: list[bytes], mode: str, clients: int
) -> tuple[list[float], float]:
    """Issue one certificate per CSR; returns per-request latencies and the wall time.

    `sequential`: one request after the other. `group`: `clients` threads submit concurrently
    through the GroupCommitter, as web workers would.
    """
    latencies: list[float] = []

    def one(i: int) -> None:
        t0 = time.perf_counter()
        csr = load_csr(csrs[i])
        request = OfficerEnrolment(issuance.ctx, f"b{i:07d}", as_public_key(csr.public_key()))
        if committer is None:
            issuance.issue(request)
        else:
            committer.run(request)
        latencies.append(time.perf_counter() - t0)

    committer = Pipeline(issuance.advance, issuance.sign) if mode == "group" else None
    start = time.perf_counter()
    if committer is None:
        for i in range(len(csrs)):
            one(i)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(len(csrs))))
        committer.close()
    return latencies, time.perf_counter() - start


def run_setting(
    db_kind: str, keys: str, count: int, mode: str, clients: int, sync: str = "full"
) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="certdesk-bench-"))
    try:
        with database(db_kind, workdir) as url:
            ctx = make_context(workdir, url, keys, sync)
            init_hierarchy(ctx)
            log(f"[{db_kind}/{keys}] preparing {count} people and CSRs…")
            csrs = populate(ctx, count)
            issuance = Issuance(ctx)
            log(f"[{db_kind}/{keys}] issuing ({mode}, {clients} clients)…")
            commits = [0]
            event.listen(
                ctx.db.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1)
            )
            cpu = time.process_time()
            latencies, elapsed = issue_all(issuance, csrs, mode, clients)
            cpu = time.process_time() - cpu
            raw = ceiling(ctx)
            ctx.db.dispose()
        q = statistics.quantiles(latencies, n=100)
        return (
            f"tool=certdesk mode={mode} clients={clients if mode == 'group' else 1} "
            f"db={db_kind}{'/sync=' + sync if db_kind == 'sqlite' else ''} key={keys} "
            f"count={count} "
            f"certs_per_s={count / elapsed:.0f} "
            f"p50_ms={q[49] * 1000:.2f} p99_ms={q[98] * 1000:.2f} "
            f"cpu_us_per_cert={cpu / count * 1e6:.0f} commits_per_cert={commits[0] / count:.2f} "
            f"ceiling_raw_sign_per_s={raw:.0f}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_peer(script: str) -> list[str]:
    path = PEERS / script
    if not path.exists():
        return [f"peer={script} missing ({path})"]
    log(f"running peer {script}…")
    out = subprocess.run(["bash", str(path)], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("peer=")]
    return lines or [f"peer={script} failed: {out.stderr.strip()[-300:]}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--keys", default="file,softhsm")
    parser.add_argument("--modes", default="sequential,group")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (group)")
    parser.add_argument("--peers", action="store_true", help="also run cfssl and django-ca")
    parser.add_argument(
        "--sync", default="full", help="SQLite synchronous: full (default, durable) or normal"
    )
    args = parser.parse_args()
    for db_kind in args.db.split(","):
        for keys in args.keys.split(","):
            for mode in args.modes.split(","):
                line = run_setting(db_kind, keys, args.count, mode, args.clients, args.sync)
                print(line, flush=True)
    if args.peers:
        for script in ("cfssl-sign.sh", "django-ca-sign.sh"):
            for line in run_peer(script):
                print(line, flush=True)


if __name__ == "__main__":
    main()
