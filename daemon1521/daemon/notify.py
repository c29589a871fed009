"""systemd's notification protocol: READY, STATUS, WATCHDOG, STOPPING, RELOADING.

Datagrams of ``KEY=value`` lines to the socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract socket written with a leading ``@``). Outside systemd
the variable is unset and every call does nothing, so the daemon needs no
special mode to run in a terminal.

The watchdog ping is what makes systemd restart a daemon that is alive but
useless: :func:`watchdog_loop` pings only while a health check passes (every
line task running) and the event loop itself keeps time; a stuck loop or a
dead line task lets the ping lapse and systemd acts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

from loguru import logger

NOTIFY_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
PINGS_PER_PERIOD = 2
"""Pings per watchdog period, as sd_watchdog_enabled(3) recommends."""
LAG_TOLERANCE = 0.5
"""Fraction of the ping interval the loop may be late before it counts as stuck."""


class Notifier:
    """Sends notifications to systemd; silent when there is no ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._last_status: str | None = None
        self._warned = False
        if self.address:
            target = self.address
            if not (target.startswith("/") or target.startswith("@")):
                logger.warning(
                    "NOTIFY_SOCKET {!r} is neither a path nor @abstract; ignored", target
                )
                self.address = None
                return
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        return cls((env if env is not None else os.environ).get(NOTIFY_ENV))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` fields; False when it could not be sent."""
        if self._sock is None or self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            if not self._warned:
                logger.warning("cannot notify systemd at {}: {}", self.address, exc)
                self._warned = True
            return False
        return True

    def _status_field(self, status: str | None) -> list[str]:
        if not status:
            return []
        self._last_status = status
        return [f"STATUS={status}"]

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *self._status_field(status))

    def status(self, text: str) -> bool:
        """STATUS=, sent only when the text changed."""
        if text == self._last_status:
            return True
        self._last_status = text
        return self.send(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *self._status_field(status))

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd's start/stop timeout fires."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings systemd expects, or None when the watchdog is off.

    ``WATCHDOG_PID``, when set, must be this process (sd_watchdog_enabled(3)).
    """
    env = env if env is not None else os.environ
    usec = env.get(WATCHDOG_USEC_ENV, "")
    pid = env.get(WATCHDOG_PID_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / PINGS_PER_PERIOD


async def watchdog_loop(notifier: Notifier, interval: float, healthy: Callable[[], bool]) -> None:
    """Ping every ``interval`` seconds while ``healthy()`` holds and the loop keeps time.

    Runs until cancelled. A missed ping is logged once per episode, so the
    journal says why systemd is about to restart the daemon.
    """
    loop = asyncio.get_running_loop()
    tick = interval / 4
    expected = loop.time() + tick
    last_ping = float("-inf")
    lapsed = False
    while True:
        await asyncio.sleep(max(0.0, expected - loop.time()))
        now = loop.time()
        lag = now - expected
        expected = now + tick
        if now - last_ping < interval:
            continue
        if lag > interval * LAG_TOLERANCE:
            reason = f"event loop stalled for {lag:.2f} s"
        elif not healthy():
            reason = "a line task is not running"
        else:
            notifier.watchdog()
            last_ping = now
            if lapsed:
                logger.info("watchdog: healthy again")
            lapsed = False
            continue
        if not lapsed:
            logger.error("watchdog: not pinging systemd: {}", reason)
            lapsed = True
