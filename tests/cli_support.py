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
