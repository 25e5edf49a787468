"""`certdesk serve --workers N`: N application processes accepting on the one listening socket.

Each worker is a fresh interpreter (`certdesk serve --listen-fd`), not a fork: database pools,
PKCS#11 sessions and threads are never copied into a child. The kernel spreads connections over
the processes accepting on the shared socket. The supervisor restarts a worker that dies, and
on SIGTERM or SIGINT stops them all; a worker dies with it (PR_SET_PDEATHSIG), so a killed
supervisor leaves none behind. Workers share nothing but the database: the jobs that must run
once run in whichever holds the jobs lease (`services/jobs.py`).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger("certdesk.workers")

_PR_SET_PDEATHSIG = 1
_RESTART_PAUSE = 1.0  # a worker that dies at once is not restarted in a tight loop


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(listener: socket.socket, args: list[str], index: int) -> subprocess.Popen[bytes]:
    """Worker `index` (its CPU under `server.cpus`: a restarted one keeps its predecessor's)."""
    fd = listener.fileno()
    command = [sys.executable, "-c", "from certdesk.cli.main import main; main()"]
    return subprocess.Popen(
        [*command, *args, "--listen-fd", str(fd), "--worker-index", str(index)],
        pass_fds=(fd,),
        preexec_fn=_die_with_parent,
    )


def supervise(listener: socket.socket, count: int, args: list[str]) -> None:
    """Run `count` workers (`certdesk <args> --listen-fd <fd>`) until SIGTERM or SIGINT."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [_spawn(listener, args, i) for i in range(count)]
    while not stopping:
        time.sleep(0.2)  # checking on the children, not waiting for time to pass
        for i, worker in enumerate(workers):
            if worker.poll() is not None and not stopping:
                log.warning("worker %s ended (%s); starting another", worker.pid, worker.returncode)
                time.sleep(_RESTART_PAUSE)
                workers[i] = _spawn(listener, args, i)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
