"""Logging set-up: loguru to standard error, safe for journald and for secrets.

``diagnose`` stays off: loguru's default prints variable values in
tracebacks, which could put a PIN digit or a card number in the journal.
Card numbers in any message are masked (first 6, last 4) by a patcher.
Under journald each line starts with its syslog priority (``<4>``), which
journald reads as the entry's level and strips.
"""

from __future__ import annotations

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

    Each warning is attributed to the module that calls :meth:`warning`.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message`` unless ``key`` was logged within the interval; True if logged."""
        now = self._clock()
        last, suppressed = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.interval:
            self._seen[key] = (last, suppressed + 1)
            return False
        self._seen[key] = (now, 0)
        if suppressed:
            message += f" ({suppressed} more suppressed in the last {now - last:.0f} s)"
        logger.opt(depth=1).warning(message, *args)
        return True

    def flush(self) -> None:
        """Say how many of each warning were suppressed since it was last logged."""
        for key, (last, suppressed) in list(self._seen.items()):
            if suppressed:
                logger.opt(depth=1).warning("{} more '{}' warnings suppressed", suppressed, key)
                self._seen[key] = (last, 0)
