"""The application's own CPU per request, without a server or a network: the ASGI app exactly
as `certdesk serve --plain-http` builds it, called in process with the scope nginx's proxy
would produce (the holder's certificate in X-SSL-Client-Cert from a trusted address), on
PostgreSQL. What the HTTP server, nginx and the socket cost is left out: this is the part the
code decides, measured the same way each time, for working on it.

    python bench/app_cpu.py [--requests 4000] [--clients 8] [--path /] [--profile out.prof]

Prints CPU microseconds per request (all threads of the process: time.process_time()).
--profile writes a cProfile of the event loop's thread (the thread pool is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"accept", b"text/html"),
                (b"x-ssl-client-cert", self.header),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        status, body = 0, []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(body)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the event loop thread here")
    opts = parser.parse_args()
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
            import uvloop

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
