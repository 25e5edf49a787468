"""The application's own CPU per request, without a server or a network: the ASGI app exactly
as `certdesk serve --plain-http` builds it, called in process with the scope nginx's proxy
would produce (the holder's certificate in X-SSL-Client-Cert from a trusted address), on
PostgreSQL. What the HTTP server, nginx and the socket cost is left out: this is the part the
code decides, measured the same way each time, for working on it.

    python bench/app_cpu.py [--requests 4000] [--clients 8] [--path /] [--profile out.prof]
    python bench/app_cpu.py --renew [--requests 2000] [--clients 32] [--rounds 3]

--renew measures the renewal path instead: nonce, then the signed renewal (JWS, CSR, group
committer, signing, the record with its OCSP response, audit), then the confirmation under the
nonce the renewal handed over (the old certificate superseded, its OCSP answer re-signed), with
the background jobs running as in `serve`.

Prints CPU microseconds per request (all threads of the process: time.process_time()).
--profile writes a cProfile of the event loop's thread (the thread pool is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvloop

from issue import database
from portal import CERTDESK, PERSON_NAME, holder_files, log


class Driver:
    """Calls the ASGI app directly: lifespan, then GETs with the proxy's header."""

    def __init__(self, app: Any, cert_pem: bytes) -> None:
        self.app = app
        self.header = quote(cert_pem.decode()).encode()
        self.events = asyncio.Queue[dict[str, Any]]()
        self.answers = asyncio.Queue[dict[str, Any]]()
        self.task: asyncio.Future[None] | None = None

    async def lifespan(self, event: str) -> None:
        """Send lifespan.`event` and wait for the app's answer (failed: stop)."""
        if self.task is None:
            scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
            self.task = asyncio.ensure_future(self.app(scope, self.events.get, self.answers.put))
        await self.events.put({"type": f"lifespan.{event}"})
        answer = await self.answers.get()
        if answer["type"] != f"lifespan.{event}.complete":
            raise SystemExit(f"lifespan {event}: {answer}")
        if event == "shutdown":
            await self.task

    async def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = await self.request("GET", path)
        return status, body

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: bytes = b""
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """(status, response headers, body) of one request as nginx would pass it on."""
        headers = [(b"host", b"127.0.0.1"), (b"accept", b"text/html")]
        if self.header:  # the holder's certificate, as nginx passes it on (none: the API)
            headers.append((b"x-ssl-client-cert", self.header))
        if body:
            headers += [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        status, answer, chunks = 0, {}, []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, answer
            if message["type"] == "http.response.start":
                status = message["status"]
                answer = dict(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, answer, b"".join(chunks)


async def run(driver: Driver, path: str, requests: int, clients: int, expect: bytes) -> float:
    left = requests

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, body = await driver.get(path)
            if status != 200 or expect not in body:
                raise SystemExit(f"GET {path} answered {status}: {body[:200]!r}")

    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.process_time() - cpu


async def each(clients: int, jobs: list[Any], call: Any) -> list[Any]:
    """`call(job)` for every job, `clients` at a time; the answers in the order of `jobs`."""
    answers: list[Any] = [None] * len(jobs)
    todo = iter(enumerate(jobs))

    async def client() -> None:
        for index, job in todo:
            answers[index] = await call(job)

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


def renewals(opts: argparse.Namespace, work: Path, url: str) -> None:
    """--renew: the renewal path in process, as `serve` wires it (group committer, OCSP
    responder, background jobs): CPU per nonce and per signed renewal (the JWS is signed by the
    bench before the clock starts), holders issued 340 days back so each is in its window."""
    from certdesk.client.signed import sign_request
    from certdesk.config import load_config
    from certdesk.domain.clock import FixedClock
    from certdesk.services.context import Context
    from certdesk.services.demo import bootstrap
    from certdesk.services.jobs import runner_for
    from certdesk.services.maintenance import add_background_jobs
    from certdesk.services.ocsp import OcspResponder
    from certdesk.services.ocsp_responders import ensure_responders
    from certdesk.services.registry import add_unit
    from certdesk.store.db import Database
    from certdesk.store.migrate import upgrade
    from certdesk.web.server import application
    from renew import BACK, PASSPHRASE, make_holders

    data = work / "var"
    env = {
        "CERTDESK_PATHS_DATA_DIR": str(data),
        "CERTDESK_DATABASE_URL": url,
        "CERTDESK_CA_PASSPHRASE": PASSPHRASE,
        "CERTDESK_URLS_BASE": "https://127.0.0.1",
    }
    os.environ.update(env)
    config = load_config(None)
    db = Database(url)
    upgrade(db)
    back = Context(config, db, FixedClock(dt.datetime.now(dt.UTC) - BACK), actor="bench")
    bootstrap(back)
    add_unit(back, "BENCH", "Bench Unit", "Bench Contact", "it@bench.example", "0771-1")
    log(f"set-up: {opts.requests * (opts.rounds + 1)} holders, 340 days ago …")
    holders = make_holders(back, opts.requests * (opts.rounds + 1))
    db.dispose()
    ctx = Context.open(config, actor="bench")
    ensure_responders(ctx)
    ocsp = OcspResponder(ctx)
    ocsp.presign()  # the start-up round `serve` runs, before the clock starts
    runner = runner_for(ctx)
    runner.lead()
    add_background_jobs(runner, ctx, ocsp)
    runner.start()
    driver = Driver(application(ctx, ocsp), b"")
    jose = b"application/jose"

    async def nonce(_: object) -> str:
        _status, headers, _body = await driver.request("GET", "/api/v1/renewal/nonce")
        return headers[b"replay-nonce"].decode()

    async def renew(token: bytes) -> tuple[str, str]:
        """(new serial, the nonce handed over for the confirmation)."""
        status, headers, body = await driver.request("POST", "/api/v1/renewal", token, jose)
        if status != 201:
            raise SystemExit(f"renewal answered {status}: {body[:300]!r}")
        return json.loads(body)["serial"], headers[b"replay-nonce"].decode()

    async def confirm(token: bytes) -> None:
        status, _, body = await driver.request("POST", "/api/v1/renewal/confirm", token, jose)
        if status != 200:
            raise SystemExit(f"confirmation answered {status}: {body[:300]!r}")

    async def timed(jobs: list[Any], call: Any) -> tuple[float, list[Any]]:
        """CPU µs per job, the change feed's next poll included (it reads what they changed)."""
        cpu = time.process_time()
        answers = await each(opts.clients, jobs, call)
        await asyncio.sleep(ctx.config.ocsp.poll_seconds + 0.5)
        return (time.process_time() - cpu) / len(jobs) * 1e6, answers

    async def go() -> None:
        await driver.lifespan("startup")
        rounds: list[tuple[float, float, float]] = []
        for round_ in range(opts.rounds + 1):  # the first warms up
            group = holders[round_ * opts.requests : (round_ + 1) * opts.requests]
            cpu = time.process_time()
            nonces = await each(opts.clients, group, nonce)
            per_nonce = (time.process_time() - cpu) / len(group) * 1e6
            tokens = [
                sign_request(
                    h.key, serial=h.serial, nonce=n, action="renew", payload={"csr": h.csr}
                ).encode()
                for h, n in zip(group, nonces, strict=True)
            ]
            per_renewal, issued = await timed(tokens, renew)
            tokens = [
                sign_request(
                    h.new_key, serial=serial, nonce=n, action="confirm", payload={}
                ).encode()
                for h, (serial, n) in zip(group, issued, strict=True)
            ]
            per_confirm, _ = await timed(tokens, confirm)
            if round_:
                rounds.append((per_nonce, per_renewal, per_confirm))
                log(
                    f"nonce {per_nonce:.0f} us, renewal {per_renewal:.0f} us, "
                    f"confirmation {per_confirm:.0f} us CPU"
                )
        await driver.lifespan("shutdown")
        n, r, c = min(rounds, key=sum)
        print(
            f"renewal in process: nonce {n:.0f} us + renewal {r:.0f} us = {n + r:.0f} us; "
            f"confirmation {c:.0f} us CPU (best of {opts.rounds} rounds of {opts.requests}, "
            f"{opts.clients} clients, PostgreSQL)"
        )

    try:
        uvloop.run(go())
    finally:
        runner.stop()
        ctx.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the event loop thread here")
    parser.add_argument(
        "--renew", action="store_true", help="renewals instead of pages (--requests per round)"
    )
    opts = parser.parse_args()
    if opts.renew:
        work = Path(tempfile.mkdtemp(prefix="certdesk-bench-renew-"))
        try:
            with database("postgres", work) as url:
                renewals(opts, work, url)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    expect = PERSON_NAME.encode() if opts.path == "/" else b""
    work = Path(tempfile.mkdtemp(prefix="certdesk-bench-app-"))
    data = work / "var"
    try:
        with database("postgres", work) as url:
            os.environ.update(
                CERTDESK_PATHS_DATA_DIR=str(data),
                CERTDESK_DATABASE_URL=url,
                CERTDESK_SERVER_TRUSTED_PROXIES="127.0.0.1/32",
            )
            log("certdesk init (PostgreSQL) …")
            subprocess.run([CERTDESK, "init"], cwd=work, check=True, stdout=subprocess.DEVNULL)
            cert, _ = holder_files(data, work)
            from stack_app import make

            driver = Driver(make(), cert.read_bytes())

            async def go() -> None:
                await driver.lifespan("startup")
                await run(driver, opts.path, 500, opts.clients, expect)  # warm up
                figures = []
                profile = cProfile.Profile() if opts.profile else None
                for _ in range(opts.rounds):
                    if profile:
                        profile.enable()
                    cpu = await run(driver, opts.path, opts.requests, opts.clients, expect)
                    if profile:
                        profile.disable()
                    figures.append(cpu / opts.requests * 1e6)
                    log(f"GET {opts.path}: {figures[-1]:.0f} us CPU/request")
                if profile:
                    profile.dump_stats(opts.profile)
                await driver.lifespan("shutdown")
                print(
                    f"GET {opts.path}: {min(figures):.0f} us CPU/request (best of {opts.rounds}, "
                    f"{opts.requests} requests, {opts.clients} clients, in process, PostgreSQL)"
                )

            uvloop.run(go())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
