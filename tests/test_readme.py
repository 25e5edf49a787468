"""The README's walkthrough is a test: its ```sh blocks run in order with bash against a fresh
data directory, a free port and a real `certdesk serve`, so a README that no longer works fails
the build.

Conventions (README.md, "The README is tested"): a block preceded by
`<!-- readme-test: skip (why) -->` is not run; every other block runs with `set -euo pipefail`
in one work directory (its `.venv` is this interpreter's, so `. .venv/bin/activate` works),
after `certdesk init` and with `certdesk serve` running, as `make run` leaves a reader; 8443 in a
block becomes the test's port; variables a block exports carry on to the next blocks.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import certdesk
from test_web import free_port, wait_for_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VENV = Path(sys.prefix)
CERTDESK = str(Path(sys.executable).parent / "certdesk")
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b")
STATE = ".readme-env"  # what a block exported, for the next ones


@dataclass(frozen=True)
class Block:
    number: int  # 1-based among the ```sh blocks
    line: int  # of the opening fence
    heading: str
    body: str
    skip: bool

    def name(self) -> str:
        return f"README.md block {self.number} (line {self.line}, under {self.heading!r})"


def sh_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, previous, i = "(top)", "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```sh":
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            number = len(blocks) + 1
            blocks.append(
                Block(number, start + 1, heading, "\n".join(body), bool(SKIP.search(previous)))
            )
        if line.strip():
            previous = line
        i += 1
    return blocks


def test_the_parser_sees_every_block_and_its_marks() -> None:
    text = "# A\n```sh\necho 1\n```\n<!-- readme-test: skip (x) -->\n```sh\nmake run\n```\n"
    first, second = sh_blocks(text)
    assert (first.body, first.skip, first.heading) == ("echo 1", False, "A")
    assert (second.body, second.skip, second.line) == ("make run", True, 6)
    blocks = sh_blocks(README.read_text(encoding="utf-8"))
    assert blocks[0].skip and "make run" in blocks[0].body  # the set-up commands
    assert sum(not b.skip for b in blocks) >= 5


@dataclass
class Reader:
    """A reader's machine: a work directory, their environment and the server `make run` left."""

    work: Path
    port: int
    env: dict[str, str]
    init_output: str
    log: Path

    def bash(self, script: str) -> subprocess.CompletedProcess[str]:
        wrapped = (
            f"set -euo pipefail\nif [ -f {STATE} ]; then . ./{STATE}; fi\n"
            f"{script}\nexport -p > {STATE}\n"
        )
        return subprocess.run(
            ["bash", "-c", wrapped],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
            check=False,
        )


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    work = tmp_path_factory.mktemp("readme")
    (work / ".venv").symlink_to(VENV)
    port = free_port()
    env = {
        "PATH": f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "COLUMNS": "200",
        "CERTDESK_SERVER_PORT": str(port),  # the only setting: the URLs follow the port
    }
    init = subprocess.run(
        [CERTDESK, "init"], cwd=work, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    log = work / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [CERTDESK, "serve"], cwd=work, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(server, port)
        yield Reader(work, port, env, init.stdout, log)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_readme_runs_block_by_block(reader: Reader) -> None:
    ran = 0
    for block in sh_blocks(README.read_text(encoding="utf-8")):
        if block.skip:
            continue
        script = block.body.replace("8443", str(reader.port))
        done = reader.bash(script)
        if done.returncode != 0:
            log = reader.log.read_text(errors="replace")[-3000:]
            pytest.fail(
                f"{block.name()} failed with exit status {done.returncode}\n"
                f"--- the block ---\n{block.body}\n--- its output ---\n{done.stdout}\n"
                f"--- the server's log (end) ---\n{log}",
                pytrace=False,
            )
        ran += 1
    assert ran >= 5


def _curl(reader: Reader, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--cacert", "var/pki/root.pem", *args,
         f"https://127.0.0.1:{reader.port}{path}"],
        cwd=reader.work, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_what_the_readme_says_the_server_answers(reader: Reader) -> None:
    """`/` is the portal (401 without a certificate), `/status` the status page, and /healthz
    tells the one version: certdesk.__version__ = the installed package's = CHANGELOG's newest."""
    codes = {
        path: _curl(reader, path, "-o", "/dev/null", "-w", "%{http_code}").stdout
        for path in ("/", "/status", "/api/docs", "/pki/issuing.crl")
    }
    assert codes == {"/": "401", "/status": "200", "/api/docs": "200", "/pki/issuing.crl": "200"}
    health = json.loads(_curl(reader, "/healthz", "--fail").stdout)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## (\d+\.\d+\.\d+)", changelog, re.MULTILINE)
    assert newest is not None
    assert health["version"] == certdesk.__version__ == importlib.metadata.version("certdesk")
    assert health["version"] == newest.group(1)
    assert f"version {newest.group(1)}" in README.read_text(encoding="utf-8")


def test_init_ends_with_the_url_the_people_and_their_files(reader: Reader) -> None:
    said = reader.init_output
    assert f"https://127.0.0.1:{reader.port}/" in said
    passphrase = re.search(r"passphrase (\S+):", said)
    assert passphrase is not None
    files = re.findall(r"^\s+(demo-\S+)\s.*?(var/demo/\S+\.p12)$", said, re.MULTILINE)
    assert {person for person, _ in files} >= {"demo-0002", "demo-ra", "demo-ca", "demo-audit"}
    for person, path in files:
        opened = subprocess.run(
            ["openssl", "pkcs12", "-in", path, "-nokeys", "-passin", f"pass:{passphrase[1]}"],
            cwd=reader.work, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        assert person in opened.stdout
