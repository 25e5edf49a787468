"""`atomic_write`: the OCSP files nginx serves and the PKI copies are replaced whole, never
rewritten in place, with the mode asked for whatever the umask."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from certdesk.services.files import atomic_write


def test_replaced_whole_directories_made_mode_kept(tmp_path: Path) -> None:
    path = tmp_path / "ocsp" / "MEIw" / "QDA+" / "response"
    old_umask = os.umask(0o077)
    try:
        atomic_write(path, b"first", durable=False)  # its directories are made
        with path.open("rb") as reader:  # a reader that opened the old file (nginx)
            atomic_write(path, b"second, longer")
            assert reader.read() == b"first"  # a new file renamed over it, not rewritten
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by nginx despite the umask
        atomic_write(tmp_path / "secret.p12", b"key", mode=0o600)
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"second, longer"
    assert stat.S_IMODE((tmp_path / "secret.p12").stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["response"]  # no temporary left


def test_writers_in_threads_never_mix(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    contents = [bytes([65 + i]) * 200_000 for i in range(4)]
    start = threading.Barrier(len(contents))
    failed: list[BaseException] = []

    def write(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(20):
                atomic_write(path, data, durable=False)
        except BaseException as exc:  # e.g. a temporary file another thread renamed away
            failed.append(exc)

    threads = [threading.Thread(target=write, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    seen = set()
    while any(thread.is_alive() for thread in threads):
        if path.exists():
            seen.add(path.read_bytes())
    for thread in threads:
        thread.join()
    seen.add(path.read_bytes())
    assert not failed, failed
    assert seen <= set(contents)  # always one writer's whole file
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]
