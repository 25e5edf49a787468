"""Many processes, many machines: the jobs lease, `serve --workers`, SQLite refused for more than
one server process, and two instances behind one nginx upstream on one PostgreSQL schema.

The two-instance test is the check of issue 14 at a size the suite can afford: two "machines"
(separate data directories; the same CA key file, copied, and one shared journal directory and
checkpoint key; nothing else shared on disk), instance B itself two worker processes, nginx
(docs/nginx-certdesk.conf with both in its upstream) in front. SCALE_HOLDERS holders (60 here; the
issue's 500 with `CERTDESK_SCALE_HOLDERS=500`) renew and confirm over HTTPS with signed requests;
instance A, the jobs lease holder, is SIGKILLed half-way; the clients retry what failed. Afterwards
every holder has exactly one active certificate (the new one), no serial is used twice, the audit
chain verifies, and the survivor took the jobs lease within the takeover time, published a CRL and,
alone behind nginx, serves that CRL and answers OCSP with the responder key kept in the database.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import text

from certdesk.client.signed import sign_request
from certdesk.config import Config
from certdesk.domain.clock import FixedClock, SystemClock
from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.services.demo import bootstrap
from certdesk.services.enrolment.officer import OfficerEnrolment
from certdesk.services.issuance import Issuance
from certdesk.services.jobs import JobRunner, jobs_lease, lease_holder
from certdesk.services.journal import attach
from certdesk.services.processes import cpus_of
from certdesk.services.registry import add_person, add_unit
from certdesk.store.db import Database
from certdesk.store.leases import advisory_holder
from certdesk.store.migrate import upgrade
from conftest import openssl, openssl_verify
from request_keys import FileRequestKey
from softhsm import SoftHSM
from test_nginx import CERTDESK, PROXY_ADDRESS, nginx_binary, nginx_config, start_nginx
from test_pkcs11_signer import uri as hsm_uri
from test_web import free_port, wait_for_port

PASSPHRASE = "scale passphrase"
BACK = dt.timedelta(days=340)  # certificates issued this long ago are in their renewal window
SCALE_HOLDERS = int(os.environ.get("CERTDESK_SCALE_HOLDERS", "60"))
TAKEOVER_SECONDS = 1
CLIENTS = 8


# -- the lease, in one process --------------------------------------------------------------


def test_one_lease_holder_and_takeover(db_url: str, tmp_path: Path) -> None:
    """Two runners on one database: only the lease holder runs the `once` job; when it lets go,
    the other takes the lease within its takeover time and runs the job at once."""
    config = Config().replace(paths={"data_dir": str(tmp_path / "var")}, database={"url": db_url})
    ctx = Context.open(config, "test")
    try:
        runs: dict[str, list[str]] = {"a": [], "b": []}
        first, second = JobRunner(jobs_lease(ctx), 0.1), JobRunner(jobs_lease(ctx), 0.1)
        assert first.lead() and not second.lead()
        assert lease_holder(ctx) is not None and f"pid {os.getpid()}" in str(lease_holder(ctx))
        done = threading.Event()
        first.add("job", 3600, lambda: runs["a"].append("ran"), once=True)
        second.add("job", 3600, lambda: (runs["b"].append("ran"), done.set()), once=True)
        second.add("local", 3600, lambda: runs["b"].append("local"))
        first.start()
        second.start()
        try:
            wait_until(lambda: runs["a"] == ["ran"] and "local" in runs["b"], 10)
            assert "ran" not in runs["b"]  # B runs its own jobs, not the installation's
            first.stop()  # releases the lease, as a dead process's connection would
            assert done.wait(10), "the second runner never took the lease over"
            assert second.leading
        finally:
            first.stop()
            second.stop()
        assert lease_holder(ctx) is None
    finally:
        ctx.db.dispose()


def test_servers_started_at_once_migrate_one_after_another(pg_url: str) -> None:
    """Two processes opening a new schema at the same moment: both end at head, neither fails
    on the other's half-made tables."""
    failures: list[BaseException] = []

    def open_one() -> None:
        db = Database(pg_url)
        try:
            upgrade(db)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def wait_until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)  # polling a condition
    raise AssertionError("condition not met in time")


# -- SQLite: one server process --------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CERTDESK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_sqlite_refuses_more_than_one_server_process(tmp_path: Path) -> None:
    """`--workers 2` on SQLite is refused with its code in both languages, and a second server
    on the same SQLite file from another data directory is refused too."""
    database = tmp_path / "shared" / "certdesk.db"
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "a"),
        "CERTDESK_DATABASE_URL": f"sqlite:///{database}",
        "CERTDESK_JOURNAL_PATH": str(tmp_path / "journal"),
        "CERTDESK_SERVER_PORT": str(free_port()),
    }
    refused = run_cli(env, "serve", "--plain-http", "--workers", "2", cwd=tmp_path)
    assert refused.returncode != 0
    assert "server.workers_need_postgres" in refused.stderr
    assert "need PostgreSQL" in refused.stderr
    zh = run_cli({**env, "CERTDESK_LANG": "zh"}, "serve", "--workers", "2", cwd=tmp_path)
    assert "server.workers_need_postgres" in zh.stderr and "内置的 SQLite" in zh.stderr
    assert run_cli(env, "init", cwd=tmp_path).returncode == 0
    server = subprocess.Popen(
        [CERTDESK, "serve", "--plain-http"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(server, int(env["CERTDESK_SERVER_PORT"]))
        other = {**env, "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "b")}
        other["CERTDESK_SERVER_PORT"] = str(free_port())
        second = run_cli(other, "serve", "--plain-http", cwd=tmp_path)
        assert second.returncode != 0
        said = second.stderr.replace("\n", "")  # the terminal width may wrap the path
        assert "server.already_running" in said and str(database) in said
        holder = json.loads(run_cli(env, "jobs", "--json", cwd=tmp_path).stdout)["holder"]
        assert holder is not None and f"pid {server.pid}" in holder
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_worker_runs_the_jobs_without_serving(tmp_path: Path) -> None:
    """`certdesk worker` takes the jobs lease (a later `serve` would find it held), runs the
    jobs (OCSP pre-signing writes the responses for nginx) and stops on SIGTERM."""
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CERTDESK_SERVER_JOBS_TAKEOVER_SECONDS": str(TAKEOVER_SECONDS),
    }
    assert run_cli(env, "init", cwd=tmp_path).returncode == 0
    files = tmp_path / "var" / "ocsp-files"
    assert not files.exists()
    worker = subprocess.Popen(
        [CERTDESK, "worker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        assert "lease held by this process" in worker.stdout.readline()
        assert holder_pid(env, tmp_path) == worker.pid
        wait_until(lambda: any(files.rglob("*")), 60)  # pre-signing ran (due at start)
    finally:
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    assert holder_pid(env, tmp_path) is None


def cpus_allowed(pid: int) -> set[str]:
    """The CPU lists the threads of process `pid` may run on (one entry if they agree)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        found.add(re.search(r"Cpus_allowed_list:\s*(\S+)", status).group(1))  # type: ignore[union-attr]
    return found


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (others may come and go while /proc is read)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if parent_of(int(entry.name)) == pid:
                    found.append(int(entry.name))
    return found


def jobs_thread_started(pid: int) -> bool:
    """A worker has a second thread (its jobs runner): its start-up, CPU included, is done."""
    return len(list(Path(f"/proc/{pid}/task").iterdir())) > 1


def test_cpu_lists_are_read_and_checked() -> None:
    """`server.cpus`: nothing, every CPU this process may use, a list with ranges; a CPU it may
    not use, or not a list, is refused in both languages."""
    allowed = sorted(os.sched_getaffinity(0))
    assert cpus_of("") == [] and cpus_of("auto") == allowed
    assert cpus_of(f"{allowed[-1]},{allowed[0]}-{allowed[0]}") == [allowed[-1], allowed[0]]
    for wrong in (f"{allowed[-1] + 1}", "one", "0;1", ",", "1-0", "-1", "0-"):
        with pytest.raises(CertdeskError) as refused:
            cpus_of(wrong)
        assert refused.value.code == "config.invalid"
        assert "server.cpus" in refused.value.message("en")
        assert "配置错误" in refused.value.message("zh-CN")


def test_pin_to_cpu_moves_every_thread_round_robin() -> None:
    """`pin_to_cpu` in a fresh interpreter: every thread, also one started before it, ends on
    the CPU process `index` gets (round-robin); with `cpus` empty nothing changes."""
    allowed = sorted(os.sched_getaffinity(0))
    script = """if True:
        import json, os, sys, threading, time
        from certdesk.config import Config
        from certdesk.services.processes import pin_to_cpu
        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()
        cpu = pin_to_cpu(Config().replace(server={"cpus": sys.argv[1]}), int(sys.argv[2]))
        on = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")}
        print(json.dumps([cpu, sorted(on)]))
    """

    def run(cpus: str, index: int) -> list[object]:
        done = subprocess.run(
            [sys.executable, "-c", script, cpus, str(index)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    last = allowed[-1]
    assert run(f"{allowed[0]},{last}", 3) == [last, [[last]]]  # two threads, one CPU
    assert run("", 0) == [None, [allowed]]


def test_workers_are_kept_on_their_cpus(pg_url: str, tmp_path: Path) -> None:
    """`server.cpus = "auto"`: each of `--workers 2` runs (all its threads) on a CPU of its
    own, round-robin over the CPUs this machine gives; a worker that dies is replaced on its
    CPU; the supervisor is not pinned. A CPU the process may not use is refused at start."""
    allowed = sorted(os.sched_getaffinity(0))
    port = free_port()
    env = {
        **os.environ,
        "CERTDESK_PATHS_DATA_DIR": str(tmp_path / "var"),
        "CERTDESK_DATABASE_URL": pg_url,
        "CERTDESK_SERVER_PORT": str(port),
        "CERTDESK_SERVER_CPUS": "auto",
    }
    assert run_cli(env, "init", cwd=tmp_path).returncode == 0
    stranger = {**env, "CERTDESK_SERVER_CPUS": str(max(allowed) + 1)}
    refused = run_cli(stranger, "serve", "--plain-http", "--workers", "2", cwd=tmp_path)
    assert refused.returncode != 0 and "config.invalid" in refused.stderr
    assert "server.cpus" in refused.stderr.replace("\n", "")
    supervisor = subprocess.Popen(
        [CERTDESK, "serve", "--plain-http", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(supervisor, port)
        wait_until(lambda: len(children_of(supervisor.pid)) == 2, 60)
        for worker in children_of(supervisor.pid):
            wait_until(lambda w=worker: jobs_thread_started(w), 60)
        placed = {pid: cpus_allowed(pid) for pid in children_of(supervisor.pid)}
        expected = [{str(cpu)} for cpu in (allowed[0], allowed[1 % len(allowed)])]
        assert sorted(placed.values(), key=sorted) == sorted(expected, key=sorted), placed
        assert cpus_allowed(supervisor.pid) == cpus_allowed(os.getpid())  # not pinned
        # the second worker dies: a replacement started as the first would land on its CPU
        victim, its_cpus = next((p, c) for p, c in placed.items() if c == expected[1])
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(set(children_of(supervisor.pid)) - set(placed)) == 1, 60)
        (heir,) = set(children_of(supervisor.pid)) - set(placed)
        wait_until(lambda: jobs_thread_started(heir), 60)
        assert cpus_allowed(heir) == its_cpus
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=30)


# -- two instances behind nginx ---------------------------------------------------------------


@dataclass
class Holder:
    person_id: str
    serial: str
    key: FileRequestKey
    new_key: FileRequestKey
    csr: str
    new_serial: str | None = None
    confirmed: bool = False


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_holders(ctx: Context, count: int) -> list[Holder]:
    """`count` people with a certificate each, issued at the context's clock (340 days back)."""
    add_unit(ctx, "SCALE", "Scale Unit", "Scale Contact", "it@scale.example", "0771-1")
    ids = [f"s{i:05d}" for i in range(count)]
    for pid in ids:
        add_person(ctx, pid, f"Holder {pid}", "SCALE", f"{pid}@scale.example")
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in ids]
    outcomes = Issuance(ctx).issue_batch(
        [OfficerEnrolment(ctx, pid, k.public_key()) for pid, k in zip(ids, keys, strict=True)]
    )
    holders = []
    for pid, key, issued in zip(ids, keys, outcomes, strict=True):
        assert not isinstance(issued, Exception), issued
        new = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        der = csr.sign(new, hashes.SHA256()).public_bytes(Encoding.DER)
        holders.append(
            Holder(pid, issued.serial, FileRequestKey(key), FileRequestKey(new), b64url(der))
        )
    return holders


@dataclass
class Instance:
    name: str
    data_dir: Path
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        with self.log.open("wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [CERTDESK, "serve", "--plain-http", *extra],
                env=self.env,
                cwd=self.data_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: SIGKILL reaches its workers
            )
        wait_for_port(self.proc, self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def renewals_served(self, access_log: Path) -> int:
        """Renewals nginx's access log says this instance answered (201 issued, 200 the one a
        lost answer had issued), also after nginx found another backend down (`a, b`)."""
        last = rf"(?:\S+, )*127\.0\.0\.1:{self.port}$"
        mine = re.compile(rf"POST /api/v1/renewal HTTP/1\.1 20[01] {last}")
        return sum(bool(mine.search(line)) for line in access_log.read_text().splitlines())


def holder_pid(env: dict[str, str], cwd: Path) -> int | None:
    done = run_cli(env, "jobs", "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    holder = json.loads(done.stdout)["holder"]
    found = re.search(r"pid (\d+)$", holder or "")
    return int(found.group(1)) if found else None


def requests_waiting(port: int) -> int:
    """Connections to `port` on loopback with bytes the server has not read (/proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port and state == "01":
            count += int(queues.split(":")[1], 16) > 0
    return count


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def pg_url(db_url: str) -> str:
    if db_url.startswith("sqlite"):
        pytest.skip("several machines share PostgreSQL")
    return db_url


def two_machines(
    pg_url: str, tmp_path: Path, base: str, ca: dict[str, str] | None = None
) -> tuple[Instance, Instance, list[Holder]]:
    """Two instances (not started) on one PostgreSQL schema, with separate data directories and
    the same CA key — a file copied to the second, or `ca`'s key in an HSM both reach — and
    SCALE_HOLDERS holders issued 340 days back, in their renewal window."""
    shared = tmp_path / "shared"  # one host here; a shared file system between machines
    a_dir, b_dir = tmp_path / "a" / "var", tmp_path / "b" / "var"
    ca = {"passphrase": PASSPHRASE, **(ca or {})}
    settings = {
        "CERTDESK_DATABASE_URL": pg_url,
        **{f"CERTDESK_CA_{key.upper()}": value for key, value in ca.items()},
        "CERTDESK_JOURNAL_PATH": str(shared / "journal"),
        "CERTDESK_JOURNAL_CHECKPOINT_KEY": str(shared / "checkpoint.key"),
        "CERTDESK_URLS_BASE": base,
        "CERTDESK_SERVER_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
        "CERTDESK_SERVER_JOBS_TAKEOVER_SECONDS": str(TAKEOVER_SECONDS),
    }
    config = Config().replace(
        paths={"data_dir": str(a_dir)},
        database={"url": pg_url},
        ca=ca,
        journal={
            "path": settings["CERTDESK_JOURNAL_PATH"],
            "checkpoint_key": settings["CERTDESK_JOURNAL_CHECKPOINT_KEY"],
        },
        urls={"base": base},
    )
    db = Database(pg_url)
    upgrade(db)
    past = FixedClock(dt.datetime.now(dt.UTC) - BACK)
    attach(config, db, SystemClock(), "test")
    ctx = Context(config, db, past, actor="test")
    bootstrap(ctx)
    holders = make_holders(ctx, SCALE_HOLDERS)
    db.dispose()
    b_dir.mkdir(parents=True)
    if config.ca.key_storage == "file":
        shutil.copytree(a_dir / "ca", b_dir / "ca")  # the same CA key file on the second machine
    instances = []
    for name, data_dir in (("a", a_dir), ("b", b_dir)):
        port = free_port()
        env = {
            **os.environ,
            **settings,
            "CERTDESK_PATHS_DATA_DIR": str(data_dir),
            "CERTDESK_SERVER_PORT": str(port),
        }
        instances.append(Instance(name, data_dir, port, env, tmp_path / f"{name}.log"))
    a, b = instances
    return a, b, holders


@pytest.fixture
def two_instances(
    pg_url: str, tmp_path: Path
) -> Iterator[tuple[Instance, Instance, str, list[Holder]]]:
    nginx_binary()
    nginx_port = free_port()
    base = f"https://127.0.0.1:{nginx_port}"
    a, b, holders = two_machines(pg_url, tmp_path, base)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        a.start()
        b.start("--workers", "2")
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        main = nginx_config(prefix, a.data_dir, nginx_port, a.port)
        logged = f"access_log {prefix / 'access.log'};"
        assert logged in main
        main = main.replace(
            logged,  # which backend answered each request
            f"log_format upstream '$request $status $upstream_addr';\n    {logged[:-1]} upstream;",
        )
        site = prefix / "certdesk.conf"
        one = f"server 127.0.0.1:{a.port};"
        both = "random;\n    " + "\n    ".join(
            f"server 127.0.0.1:{i.port} max_fails=1 fail_timeout=5s;" for i in (a, b)
        )
        site.write_text(site.read_text().replace(one, both))
        nginx = start_nginx(prefix, main, nginx_port)
        yield a, b, base, holders
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=30)
        for instance in (a, b):
            instance.stop()


class Load:
    """Holders renewing and confirming through nginx, retrying whatever fails."""

    def __init__(self, base: str, root: Path, holders: list[Holder], on_half: object) -> None:
        self.base, self.root, self.holders = base, root, holders
        self.on_half = on_half
        self.half = len(holders) // 2  # fixed: the holder handed back at the kill joins later
        self.finished = 0
        self.retries = 0

    async def signed(
        self,
        http: httpx.AsyncClient,
        path: str,
        key: FileRequestKey,
        serial: str,
        action: str,
        payload: dict[str, str],
    ) -> tuple[int, bytes]:
        got = await http.get("/api/v1/renewal/nonce")
        if got.status_code != 200:
            return got.status_code, got.content
        token = sign_request(
            key, serial=serial, nonce=got.headers["Replay-Nonce"], action=action, payload=payload
        )
        posted = await http.post(
            path, content=token.encode(), headers={"Content-Type": "application/jose"}
        )
        return posted.status_code, posted.content

    async def renew(self, http: httpx.AsyncClient, h: Holder) -> None:
        deadline = time.monotonic() + 120
        while not h.confirmed:
            assert time.monotonic() < deadline, f"{h.person_id} never finished"
            try:
                if h.new_serial is None:
                    status, body = await self.signed(
                        http, "/api/v1/renewal", h.key, h.serial, "renew", {"csr": h.csr}
                    )
                    if status == 201 or status == 200:
                        h.new_serial = json.loads(body)["serial"]
                        continue
                else:
                    status, body = await self.signed(
                        http, "/api/v1/renewal/confirm", h.new_key, h.new_serial, "confirm", {}
                    )
                    if status == 200:
                        h.confirmed = True
                        continue
                assert status in (409, 502, 503, 504), (status, body[:300])
            except httpx.TransportError:
                pass  # the connection to nginx broke: try again
            self.retries += 1
            await asyncio.sleep(0.2)  # a client backing off before its retry
        self.finished += 1
        if self.finished == self.half and callable(self.on_half):
            self.on_half()

    async def run(self, clients: int) -> None:
        context = ssl.create_default_context(cafile=str(self.root))
        todo = iter(self.holders)

        async def client() -> None:
            async with httpx.AsyncClient(base_url=self.base, verify=context, timeout=60) as http:
                for h in todo:
                    await self.renew(http, h)

        await asyncio.gather(*(client() for _ in range(clients)))


def test_two_instances_behind_nginx_survive_a_sigkill(
    two_instances: tuple[Instance, Instance, str, list[Holder]], pg_url: str
) -> None:
    a, b, base, holders = two_instances
    cwd = a.data_dir.parent
    assert a.proc is not None and b.proc is not None
    assert holder_pid(a.env, cwd) == a.proc.pid  # A started first and holds the jobs lease
    with Database(pg_url).engine.connect() as conn:
        crl_before = conn.execute(text("SELECT max(number) FROM crls")).scalar()
    killed: list[float] = []
    taken: list[tuple[float, int]] = []

    def watch_lease() -> None:
        """Who holds the lease, polled from the test's own session until someone else does."""
        db = Database(pg_url)
        dead = a.proc.pid if a.proc is not None else 0
        try:
            while time.monotonic() < killed[0] + 60:
                with db.read() as conn:
                    found = re.search(r"pid (\d+)$", advisory_holder(conn) or "")
                if found and int(found.group(1)) != dead:
                    taken.append((time.monotonic(), int(found.group(1))))
                    return
                time.sleep(0.05)  # polling the holder
        finally:
            db.dispose()

    root = a.data_dir / "pki" / "root.pem"
    *renewing, carried = holders  # `carried`'s renewal is in A's hands when A dies
    lost: list[bytes] = []

    def kill_a() -> None:
        """Freeze A, hand it one renewal directly (it sits unread on A's connection, with
        whatever nginx had sent A), SIGKILL A: all of it is lost, and the clients retry."""
        assert a.proc is not None
        nonce = httpx.get(f"{base}/api/v1/renewal/nonce", verify=str(root))
        token = sign_request(
            carried.key,
            serial=carried.serial,
            nonce=nonce.headers["Replay-Nonce"],
            action="renew",
            payload={"csr": carried.csr},
        ).encode()
        os.killpg(a.proc.pid, signal.SIGSTOP)
        with socket.create_connection(("127.0.0.1", a.port), timeout=30) as direct:
            head = (
                f"POST /api/v1/renewal HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/jose\r\nContent-Length: {len(token)}\r\n\r\n"
            )
            direct.sendall(head.encode() + token)
            wait_until(lambda: requests_waiting(a.port) >= 1, 30)
            a.kill()
            killed.append(time.monotonic())
            try:
                lost.append(direct.recv(1024))  # b"": closed without an answer
            except ConnectionResetError:
                lost.append(b"")
        renewing.append(carried)  # its holder retries through nginx, as every client does
        watch_lease()

    killer = threading.Thread(target=kill_a, daemon=True)
    load = Load(base, root, renewing, killer.start)
    asyncio.run(load.run(CLIENTS))
    killer.join(timeout=60)
    assert killed, "instance A was never killed"
    assert lost == [b""], "A answered although it was killed"
    assert carried.confirmed
    access_log = a.data_dir.parent.parent / "nginx" / "access.log"
    served_by_a, served_by_b = a.renewals_served(access_log), b.renewals_served(access_log)
    assert served_by_a > 0 and served_by_b > 0, (served_by_a, served_by_b)
    assert served_by_a + served_by_b >= len(holders)

    # the survivor took the jobs within the takeover time: one of B's workers holds the lease
    wait_until(lambda: bool(taken), 60)
    after, pid = taken[0][0] - killed[0], taken[0][1]
    assert parent_of(pid) == b.proc.pid and holder_pid(b.env, cwd) == pid
    assert after < TAKEOVER_SECONDS + 5, f"lease taken over after {after:.1f} s"
    print(  # the figures of this run (pytest -s)
        f"{len(holders)} holders: {served_by_a} renewals by A, {served_by_b} by B, "
        f"{load.retries} retries; lease taken over after {after:.2f} s"
    )
    # ... and published a CRL from its own data directory after the kill
    deadline = time.monotonic() + 45
    while True:
        with Database(pg_url).engine.connect() as conn:
            newest = conn.execute(text("SELECT max(number) FROM crls")).scalar()
        crl_file = b.data_dir / "pki" / "issuing.crl"
        if newest != crl_before and crl_file.exists():
            crl = x509.load_der_x509_crl(crl_file.read_bytes())
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            if number == newest:
                break
        assert time.monotonic() < deadline, "no CRL published by the survivor"
        time.sleep(0.2)  # polling for the job's result
    # B (the only one left behind nginx) serves that newest CRL and answers OCSP, signed by the
    # responder kept in the database: no machine holds a responder key or needs A's files
    served = httpx.get(f"{base}/pki/issuing.crl", verify=str(root))
    assert served.status_code == 200
    crl = x509.load_der_x509_crl(served.content)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number >= newest
    pki, answer = a.data_dir / "pki", cwd / "ocsp.der"
    said = openssl(
        "ocsp", "-issuer", pki / "issuing.pem", "-CAfile", pki / "root.pem",
        "-url", f"{base}/ocsp", "-serial", f"0x{holders[0].new_serial}", "-respout", answer,
    )  # fmt: skip
    assert "Response verify OK" in said.stderr and ": good" in said.stdout, said.stderr
    with Database(pg_url).engine.connect() as conn:
        current = conn.execute(
            text(
                "SELECT serial FROM ocsp_responders WHERE issuer = 'issuing' "
                "ORDER BY not_after DESC LIMIT 1"
            )
        ).scalar()
    signer = ocsp.load_der_ocsp_response(answer.read_bytes()).certificates[0]
    assert format(signer.serial_number, "x") == current
    assert not (a.data_dir / "ocsp").exists() and not (b.data_dir / "ocsp").exists()

    with Database(pg_url).engine.connect() as conn:
        rows = conn.execute(
            text("SELECT serial, person_id, state, der FROM certificates WHERE person_id LIKE 's%'")
        ).all()
    by_person: dict[str, list[str]] = {}
    for serial, person, state, _der in rows:
        if state == "active":
            by_person.setdefault(person, []).append(serial)
    for h in holders:
        assert by_person.get(h.person_id) == [h.new_serial], h.person_id
    serials = [x509.load_der_x509_certificate(der).serial_number for *_, der in rows if der]
    assert len(serials) == len(set(serials))
    verified = run_cli(b.env, "audit", "verify", "--json", cwd=cwd)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def test_two_instances_sign_with_one_key_in_softhsm(
    pg_url: str, softhsm: SoftHSM, tmp_path: Path
) -> None:
    """The issue's other shape: the CA key in one SoftHSM token both instances reach, no key file
    in either data directory. Holders renew and confirm against both at once: both sign with
    it (two processes' PKCS#11 sessions on one token), every new certificate verifies with
    openssl against the chain and is its holder's only active one."""
    softhsm.init_token("ca-hsm")
    hsm = {
        "key_storage": "pkcs11",
        "pkcs11_module": softhsm.module,
        "root_key_uri": hsm_uri("root"),
        "issuing_key_uri": hsm_uri("issuing"),
    }
    a, b, holders = two_machines(pg_url, tmp_path, "https://127.0.0.1:8443", hsm)
    half = len(holders) // 2
    try:
        a.start()
        b.start()
        root = a.data_dir / "pki" / "root.pem"
        loads = [
            Load(f"http://127.0.0.1:{i.port}", root, part, None)
            for i, part in ((a, holders[:half]), (b, holders[half:]))
        ]

        async def both() -> None:
            await asyncio.gather(*(load.run(4) for load in loads))

        asyncio.run(both())
    finally:
        a.stop()
        b.stop()
    for data_dir in (a.data_dir, b.data_dir):
        assert not list(data_dir.rglob("root.key")) and not list(data_dir.rglob("issuing.key"))
    keys = {o["label"] for o in softhsm.objects("ca-hsm") if o["kind"] == "Private Key"}
    assert {"root", "issuing"} <= keys
    with Database(pg_url).engine.connect() as conn:
        rows = conn.execute(
            text("SELECT person_id, serial, der FROM certificates WHERE state = 'active'")
        ).all()
    active = {person: (serial, der) for person, serial, der in rows if person}
    assert len(active) == len([r for r in rows if r[0]])  # one active certificate each
    now = dt.datetime.now(dt.UTC)
    for h in holders:
        assert h.confirmed and active[h.person_id][0] == h.new_serial, h.person_id
        leaf = tmp_path / f"{h.new_serial}.pem"
        der = active[h.person_id][1]
        leaf.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
        said = openssl_verify(a.data_dir / "pki", leaf, now)
        assert said.stdout.strip().endswith("OK"), said.stdout + said.stderr
