"""Bounds on connections that uvicorn does not have: the time to send a request head, and how
many connections may be open at once.

uvicorn closes a kept-alive connection that stays idle (`timeout_keep_alive`), but a client that
sends its request head a byte at a time, or nothing at all after connecting, holds the
connection for ever. This subclass of uvicorn's HTTP/1.1 protocol arms a timer while a request
head is incomplete (from the connection, or from the first byte of the next request on a
kept-alive one) and closes the connection when it fires. Connections beyond
`limits.max_connections` are closed as soon as they are made.

It is uvicorn's httptools protocol (llhttp, in C), as behind nginx, not the pure-Python h11 one
(docs/benchmarks.md, ninth pass).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from certdesk.config import LimitsConfig


class BoundedProtocol(HttpToolsProtocol):
    head_seconds: float = 10.0
    max_connections: int = 0  # 0: no bound
    head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections and len(self.connections) > self.max_connections:
            self.logger.warning("Closing a connection: %d are open", len(self.connections))
            transport.close()
            return
        self.arm_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.arm_head_timer()  # a request head has begun and is not complete yet

    def on_headers_complete(self) -> None:
        self.disarm_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if self.transport.is_closing():
            # closed after a refusal while the body was still coming in: reads were paused when
            # the application stopped taking it, and the TLS shutdown must read on to finish
            self.flow.resume_reading()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm_head_timer()
        super().connection_lost(exc)

    def arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_seconds, self.head_timed_out)

    def disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.logger.info("Closing a connection: no complete request head in time")
            self.transport.close()


def bounded(protocol: type[BoundedProtocol], limits: LimitsConfig) -> type[BoundedProtocol]:
    """`protocol` with the configured bounds (uvicorn builds protocols from a class)."""
    return type(
        protocol.__name__,
        (protocol,),
        {"head_seconds": float(limits.header_seconds), "max_connections": limits.max_connections},
    )
