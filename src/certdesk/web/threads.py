"""Blocking work off the event loop, on the process's own thread pools: `server.threads` for a
request's own work (the login, a read) and `server.issuing_threads` for requests that wait on
the group committer (renewal, EST), so those waits never hold up a page.

Plain executors rather than anyio's `to_thread`: a hand-off costs ~32 µs of CPU through one
against ~75 µs through anyio's bookkeeping, and a page or a renewal makes one or more. Routes
FastAPI runs in its own pool (plain `def`) keep anyio's, limited to `server.threads` too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import Request

from certdesk.config import Config

T = TypeVar("T")


class Threads:
    """The two pools, made at first use: an application served again after a stop (a second
    lifespan) gets new ones."""

    def __init__(self, config: Config) -> None:
        self.sizes = {"request": config.server.threads, "issuing": config.server.issuing_threads}
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def pool(self, name: str) -> ThreadPoolExecutor:
        """The pool `name` ("request" or "issuing"); only the event loop asks for one."""
        if name not in self._pools:
            self._pools[name] = ThreadPoolExecutor(self.sizes[name], f"certdesk-{name}")
        return self._pools[name]

    def stop(self) -> None:
        """Let the work under way finish (a renewal being committed), then end the threads."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown()


async def _run_in(request: Request, pool: str, work: Callable[..., T], *args: object) -> T:
    threads: Threads = request.app.state.threads
    return await asyncio.get_running_loop().run_in_executor(threads.pool(pool), work, *args)


async def in_thread(request: Request, work: Callable[..., T], *args: object) -> T:
    """`work(*args)` in one of the request threads."""
    return await _run_in(request, "request", work, *args)


async def issuing(request: Request, use_case: Callable[..., T], *args: object) -> T:
    """A use case that may wait on the group committer, in the threads kept for that."""
    return await _run_in(request, "issuing", use_case, *args)
