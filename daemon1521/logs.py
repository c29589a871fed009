"""Logging set-up: loguru to standard error, safe for journald and for secrets.

``diagnose`` stays off: loguru's default prints variable values in
tracebacks, which could put a PIN digit or a card number in the journal.
Card numbers in any message are masked (first 6, last 4) by a patcher.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from loguru import logger

_CARD = re.compile(r"(?<!\d)(\d{6})(\d{6})(\d{4})(?!\d)")
_JOURNAL_FORMAT = "<level>{level: <7}</level> {name}: {message}"
_TERMINAL_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{name}</cyan>: {message}"
)


def mask_cards(text: str) -> str:
    """Any 16-digit run shown as its first 6 and last 4 digits."""
    return _CARD.sub(lambda m: f"{m[1]}******{m[3]}", text)


def _patch(record: dict[str, Any]) -> None:
    record["message"] = mask_cards(record["message"])


def setup_logging(level: str = "INFO") -> None:
    """One stderr sink; journald adds its own timestamps, a terminal gets them."""
    logger.remove()
    under_journal = "JOURNAL_STREAM" in os.environ
    logger.configure(patcher=_patch)
    logger.add(
        sys.stderr,
        level=level.upper(),
        format=_JOURNAL_FORMAT if under_journal else _TERMINAL_FORMAT,
        colorize=None if not under_journal else False,
        backtrace=False,
        diagnose=False,
    )
