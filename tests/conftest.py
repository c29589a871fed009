"""Shared fixtures. Every test is checked for leftover tasks, threads and fds."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

import pytest

LONG_FIRST = (
    "tests/test_vgetty.py",
    "tests/faults/test_store_locked.py",
    "tests/test_flow1521_demo.py",
    "tests/test_rack_smoke.py",
    "tests/test_payment_e2e.py",
    "tests/test_emulated_bank.py",
    "tests/test_daemon_process.py",
)
"""Files whose tests take seconds each (real time, or many emulated minutes).
They are collected first so that, run on several workers (``make test``),
none of them is left for the end while the other workers stand idle."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


def _open_fds() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # pragma: no cover - non-Linux
        return set()


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves threads, ptys or other descriptors behind."""
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    yield
    deadline = time.monotonic() + 2.0
    collect = False  # a full collection costs ~50 ms in a big worker: only when needed
    while True:
        if collect:
            gc.collect()
        collect = True
        extra_threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        extra_fds = _open_fds() - fds_before
        # an fd listed during the listing itself may be gone already
        extra_fds = {fd for fd in extra_fds if _fd_target(fd) is not None}
        if not extra_threads and not extra_fds:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    details = [f"thread {t.name}" for t in extra_threads]
    details += [f"fd {fd} -> {_fd_target(fd)}" for fd in sorted(extra_fds)]
    pytest.fail("test left resources behind: " + ", ".join(details))


def _fd_target(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail an async test that leaves asyncio tasks running."""
    yield
    loop = asyncio.get_running_loop()
    current = asyncio.current_task(loop)
    for _ in range(20):
        pending = [t for t in asyncio.all_tasks(loop) if t is not current and not t.done()]
        if not pending:
            return
        await asyncio.sleep(0.01)
    names = ", ".join(sorted(t.get_name() + ":" + repr(t.get_coro()) for t in pending))
    for t in pending:
        t.cancel()
    pytest.fail(f"test left asyncio tasks running: {names}")
