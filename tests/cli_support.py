"""Running the installed ``daemon1521`` command in a subprocess, for CLI tests."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any


def console_script() -> str:
    """The ``daemon1521`` entry point of this environment (there is no ``__main__``)."""
    found = shutil.which("daemon1521", path=str(Path(sys.executable).parent)) or shutil.which(
        "daemon1521", path=os.path.join(sys.prefix, "bin")
    )
    if found is None:
        raise RuntimeError("the daemon1521 console script is not installed in this environment")
    return found


def read_json_lines(stream: IO[bytes], count: int, timeout: float) -> list[dict[str, Any]]:
    """``count`` JSON lines from a subprocess pipe, or fail after ``timeout`` real seconds.

    Reads the descriptor itself: a buffered ``readline`` would hide lines that
    arrived together from the selector.
    """
    fd = stream.fileno()
    pending = b""
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(records) < count:
            line, newline, rest = pending.partition(b"\n")
            if newline:
                pending = rest
                records.append(json.loads(line))
                continue
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"got {len(records)} of {count} JSON lines: {records}")
            data = os.read(fd, 65536)
            if not data:
                raise EOFError(f"the process ended after {len(records)} JSON lines")
            pending += data
    return records


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Interrupt the process as ^C would, wait for it, and close its pipes."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout)
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


_CAPPED = """\
import os, resource, signal, sys, time
peak_file, space, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    os.execv(sys.argv[4], sys.argv[4:])
deadline = time.monotonic() + timeout
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        status = 124 << 8
        break
    time.sleep(0.02)
with open(peak_file, "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_capped(
    argv: list[str], address_space: int, timeout: float, scratch: Path, **popen: Any
) -> tuple[int, int]:
    """Exit code (124 on timeout) and peak resident memory in bytes of ``argv``,
    run under an address-space limit.

    A small launcher forks the command and reports its peak: a child forked
    straight from the test process (a large one, late in a run) would count
    that process's pages in its own peak.
    """
    peak_file = scratch / "peak-rss-kb"
    completed = subprocess.run(
        [sys.executable, "-c", _CAPPED, str(peak_file), str(address_space), str(timeout), *argv],
        check=False,
        **popen,
    )
    return completed.returncode, int(peak_file.read_text()) * 1024
