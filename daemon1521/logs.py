"""Logging set-up: loguru to standard error, safe for journald and for secrets.

``diagnose`` stays off: loguru's default prints variable values in
tracebacks, which could put a PIN digit or a card number in the journal.
Card numbers in any message are masked (first 6, last 4) by a patcher.
Under journald each line starts with its syslog priority (``<4>``), which
journald reads as the entry's level and strips.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

_CARD = re.compile(r"(?<!\d)(\d{6})(\d{6})(\d{4})(?!\d)")
_JOURNAL_FORMAT = "<{extra[priority]}>{level: <7} {name}: {message}"
# loguru level -> syslog priority, for journald's SyslogLevelPrefix
_PRIORITY = {"TRACE": 7, "DEBUG": 7, "INFO": 6, "SUCCESS": 5, "WARNING": 4, "ERROR": 3}
_TERMINAL_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan>: {message}"
)


def mask_cards(text: str) -> str:
    """Any 16-digit run shown as its first 6 and last 4 digits."""
    return _CARD.sub(lambda m: f"{m[1]}******{m[3]}", text)


def mask_tail(text: str, tail: int = 4) -> str:
    """All but the last ``tail`` characters as ``*``, and never more than the
    second half shown: ``0100000012321`` -> ``*********2321``. The one rule for
    bill IDs and typed entries, wherever they are shown or logged."""
    keep = min(tail, max(0, len(text) - 4))
    return "*" * (len(text) - keep) + text[len(text) - keep :]


def _patch(record: dict[str, Any]) -> None:
    record["message"] = mask_cards(record["message"])
    record["extra"]["priority"] = _PRIORITY.get(record["level"].name, 2)


def setup_logging(level: str = "INFO", modules: Mapping[str, str] | None = None) -> None:
    """One stderr sink; journald adds its own timestamps, a terminal gets them.

    ``modules`` sets other levels for parts of the package
    (``{"daemon1521.modem.at": "DEBUG"}``); ``level`` holds for the rest.
    """
    logger.remove()
    under_journal = "JOURNAL_STREAM" in os.environ
    logger.configure(patcher=_patch)
    levels = {"": level.upper(), **{name: value.upper() for name, value in (modules or {}).items()}}
    lowest = min(levels.values(), key=lambda name: logger.level(name).no)
    logger.add(
        sys.stderr,
        level=lowest,
        filter=levels,
        format=_JOURNAL_FORMAT if under_journal else _TERMINAL_FORMAT,
        colorize=None if not under_journal else False,
        backtrace=False,
        diagnose=False,
    )


class LogThrottle:
    """Repeated warnings as one line, then at most one per ``interval`` saying
    how many were suppressed: a flood of bad input must not become a flood of
    log (13,005 identical warnings a second once filled a journal).

    Inside an event loop the count is also reported when the interval ends,
    so a flood that stops is still accounted for; :meth:`flush` does it on
    demand. Each line is attributed to the module that calls :meth:`warning`.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, _Throttled] = {}

    def warning(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message`` unless ``key`` was logged within the interval; True if logged."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.last < self.interval:
            seen.suppressed += 1
            if not seen.scheduled:
                seen.scheduled = _call_later(seen.last + self.interval - now, self._report, key)
            return False
        module = sys._getframe(1).f_globals.get("__name__", __name__)
        suppressed = seen.suppressed if seen is not None else 0
        self._seen[key] = _Throttled(now, module, message, args)
        if suppressed and seen is not None:
            message += f" ({suppressed} more suppressed in the last {now - seen.last:.0f} s)"
        _log_as(module, message, args)
        return True

    def flush(self) -> None:
        """Say how many of each warning were suppressed since it was last logged."""
        for key in list(self._seen):
            self._report(key)

    def _report(self, key: str) -> None:
        seen = self._seen[key]
        seen.scheduled = False
        if seen.suppressed:
            now = self._clock()
            note = f" ({seen.suppressed} more suppressed in the last {now - seen.last:.0f} s)"
            _log_as(seen.module, seen.message + note, seen.args)
            seen.last, seen.suppressed = now, 0


class _Throttled:
    __slots__ = ("args", "last", "message", "module", "scheduled", "suppressed")

    def __init__(self, last: float, module: str, message: str, args: tuple[Any, ...]) -> None:
        self.last = last
        self.module = module
        self.message = message
        self.args = args
        self.suppressed = 0
        self.scheduled = False


def _log_as(module: str, message: str, args: tuple[Any, ...]) -> None:
    logger.patch(lambda record: record.update(name=module)).warning(message, *args)


def _call_later(delay: float, callback: Callable[[str], None], key: str) -> bool:
    """Schedule ``callback(key)`` on the running loop; False outside one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_later(max(0.0, delay), callback, key)
    return True
