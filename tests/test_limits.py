"""Limits before work, against a running `certdesk serve` (issue 13): body size from the declared
length and while streaming (the server's memory measured), the time to send a request head,
idle kept-alive connections, the number of connections, and the `Host` header."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certdesk.services.demo import DEMO_PASSPHRASE
from test_web import CERTDESK, curl, free_port, serving

HEAD_SECONDS = 2
KEEPALIVE_SECONDS = 1
MAX_CONNECTIONS = 6
ANONYMOUS_BYTES = 32 * 1024
BIG = 100 * 1024 * 1024


@dataclass(frozen=True)
class Server:
    port: int
    pid: int
    root: Path

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def connect(self) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(self.root))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
        # TLS 1.3 session tickets follow the handshake: read them now, so that the socket is
        # readable later only when the server answers (upload() watches for that)
        conn.settimeout(0.1)
        with contextlib.suppress(TimeoutError, ssl.SSLWantReadError):
            assert conn.recv(1) == b"", "the server spoke first"
        conn.settimeout(10)
        return conn

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("limits")
    port = free_port()
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(home / "var"),
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_LIMITS_HEADER_SECONDS": str(HEAD_SECONDS),
        "CERTDESK_LIMITS_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
        "CERTDESK_LIMITS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    init = subprocess.run(
        [CERTDESK, "init"], cwd=home, env=env, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    with serving(home, env, port) as proc:
        yield Server(port, proc.pid, home / "var" / "pki" / "root.pem")


def closed_within(conn: ssl.SSLSocket, seconds: float) -> float | None:
    """Seconds until the server closed `conn` (reading and discarding), None if it did not."""
    start = time.monotonic()
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except TimeoutError:
        return None
    except (ssl.SSLError, ConnectionResetError):
        pass
    return time.monotonic() - start


def read_answer(conn: ssl.SSLSocket) -> tuple[int | None, dict[str, str], bytes]:
    """Status, headers and body; status None when the connection was reset before an answer
    could be read (the server closed on an upload still coming in: the kernel resets)."""
    conn.settimeout(10)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return None, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def upload(
    server: Server, declared: bool, path: str = "/api/v1/renewal", total: int = BIG
) -> tuple[int | None, int, bytes]:
    """POST 100 MB without a client certificate: (status, bytes sent, body of the answer).
    With a declared length the answer comes before a byte of the body is sent."""
    conn = server.connect()
    length = f"Content-Length: {BIG}" if declared else "Transfer-Encoding: chunked"
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n"
        "Content-Type: application/jose\r\n\r\n".encode()
    )
    if declared:
        assert select.select([conn], [], [], 10)[0], "no answer to the declared length"
    chunk = b"A" * 65536
    sent = 0
    try:
        while sent < total and not select.select([conn], [], [], 0)[0]:
            conn.sendall(chunk if declared else b"10000\r\n" + chunk + b"\r\n")
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass
    status, _, body = read_answer(conn)
    conn.close()
    return status, sent, body


def test_big_bodies_are_refused_early_and_cost_no_memory(server: Server) -> None:
    status, sent, body = upload(server, declared=True)  # also warms the server up
    assert status == 413 and sent == 0  # refused from the declared length alone
    problem = json.loads(body)
    assert problem["code"] == "request.too_large"
    assert "请求内容过大" in problem["messages"]["zh-CN"]
    before = server.rss_kib()
    answers: list[tuple[int, int, bytes]] = []
    threads = [
        threading.Thread(target=lambda d=d: answers.append(upload(server, d)))
        for d in (True, False, True, False)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 4
    for status, sent, _ in answers:
        assert status in {413, None}  # None: reset while still sending, after the refusal
        assert sent < BIG // 4  # the server stopped reading long before the end
    grown = server.rss_kib() - before
    assert grown < 8 * 1024, f"the server grew by {grown} KiB"


def test_a_streamed_body_past_the_limit_is_refused(server: Server) -> None:
    # 1.5 times the limit in chunks, no length declared: counted while it comes in (small
    # enough that the server has read all of it when it closes, so the answer is not reset)
    status, sent, body = upload(server, False, total=ANONYMOUS_BYTES * 3 // 2)
    assert status == 413 and json.loads(body)["code"] == "request.too_large"
    assert sent > ANONYMOUS_BYTES


def test_an_answer_before_the_body_is_read_stops_the_upload(server: Server) -> None:
    # EST refuses the (missing) enrolment code before it reads the body: the connection is
    # closed after the answer instead of the server reading and dropping 100 MB
    status, sent, body = upload(server, False, "/.well-known/est/simpleenroll")
    assert status == 401 and json.loads(body)["code"] == "enrolcode.invalid"
    assert sent < BIG // 4


def test_an_incomplete_request_head_is_closed_in_time(server: Server) -> None:
    conn = server.connect()
    conn.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends
    took = closed_within(conn, HEAD_SECONDS + 5)
    assert took is not None, "the slow-header connection stayed open"
    assert took >= HEAD_SECONDS - 0.5
    silent = server.connect()  # connects and says nothing at all
    assert closed_within(silent, HEAD_SECONDS + 5) is not None


def test_the_next_head_on_a_kept_alive_connection_is_bounded_too(server: Server) -> None:
    """The head timer starts again at the first byte of the next request (not the idle bound,
    which stops there)."""
    conn = server.connect()
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    conn.settimeout(10)
    assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    conn.sendall(b"GET /status HTTP/1.1\r\nHost: 127.")  # never ends
    took = closed_within(conn, HEAD_SECONDS + 5)
    assert took is not None, "the slow-header connection stayed open"
    assert took >= HEAD_SECONDS - 0.5


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    conn = server.connect()
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    conn.settimeout(10)
    assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    took = closed_within(conn, KEEPALIVE_SECONDS + 5)
    assert took is not None and took < HEAD_SECONDS  # the idle bound, not the head bound


def test_connections_beyond_the_bound_are_closed_at_once(server: Server) -> None:
    held = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        extra = server.connect()
        took = closed_within(extra, HEAD_SECONDS + 5)
        assert took is not None and took < HEAD_SECONDS / 2
    finally:
        for conn in held:
            conn.close()
    fresh = server.connect()  # the held ones are gone: answered again
    fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert read_answer(fresh)[0] == 200


def test_only_configured_hostnames_are_answered(server: Server) -> None:
    cacert = ("--cacert", str(server.root))
    evil = subprocess.run(
        ["curl", "-sS", *cacert, "-H", "Host: evil.example", "-i", f"{server.base}/forms/"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert evil.stdout.startswith("HTTP/1.1 421"), evil.stdout[:200]
    assert "evil.example" not in evil.stdout
    assert "application/problem+json" in evil.stdout
    body = json.loads(evil.stdout.partition("\n\n")[2])
    assert body["code"] == "request.unknown_host" and body["messages"]["zh-CN"]
    ok = curl(*cacert, f"{server.base}/healthz")
    assert ok.returncode == 0, ok.stderr
    named = curl(*cacert, "-H", f"Host: 127.0.0.1:{server.port}", f"{server.base}/healthz")
    assert named.returncode == 0, named.stderr


def s_client(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_the_certificate_request_names_our_cas(server: Server, version: str) -> None:
    shown = s_client(server, version, "-CAfile", str(server.root))
    assert "Acceptable client certificate CA names" in shown.stdout, shown.stdout
    names = shown.stdout.split("Acceptable client certificate CA names")[1]
    assert "CN = certdesk Demo Issuing CA" in names.split("Requested Signature")[0]


def test_no_cbc_suites(server: Server) -> None:
    for cbc in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"):
        refused = s_client(server, "-tls1_2", "-cipher", cbc)
        assert refused.returncode != 0 and f"Cipher is {cbc}" not in refused.stdout
    aead = s_client(server, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in aead.stdout, aead.stdout[-500:]


def test_personal_answers_are_not_stored_and_no_banner(server: Server) -> None:
    p12 = server.root.parent.parent / "demo" / "demo-ra.p12"
    login = ("--cert-type", "P12", "--cert", f"{p12}:{DEMO_PASSPHRASE}")
    for path, who in (("/api/v1/me", login), ("/", login), ("/api/v1/me", ())):
        got = subprocess.run(
            ["curl", "-sS", "-i", "--cacert", str(server.root), *who, f"{server.base}{path}"],
            capture_output=True,
            text=True,
            check=False,
        )
        head = got.stdout.partition("\n\n")[0].lower()
        assert "cache-control: no-store" in head, got.stdout[:500]
        assert "\nserver:" not in head
    me = subprocess.run(
        ["curl", "-sS", "--cacert", str(server.root), *login, f"{server.base}/api/v1/me"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(me.stdout)["person_id"] == "demo-ra"  # the certificate did log in
    crl = subprocess.run(
        ["curl", "-sS", "-i", "--cacert", str(server.root), f"{server.base}/pki/issuing.crl"],
        capture_output=True,
        check=False,
    )
    assert b"cache-control" not in crl.stdout.partition(b"\r\n\r\n")[0].lower()
