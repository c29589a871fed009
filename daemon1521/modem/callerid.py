"""Formatted caller ID (``AT+VCID=1``) as real chips deliver it.

Lines come as ``KEY=value`` with or without spaces around ``=`` (``DATE = 1015``
on Conexant, ``DATE=0117`` on the USR 5637, ``DDN_NMBR= 123``), in any order
(NAME before NMBR happens), with ``P`` / ``O`` / ``WITHHELD`` for a hidden
number, a NAME cut at 15 characters and padded with spaces, a hex ``MESG``
line, and blocks split across reads. :class:`CallerIdAssembler` turns the
lines into one :class:`CallerInfo` per call; it is pure and takes the time
as an argument, so the AT engine drives it from its own clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["number", "private", "unavailable"]

KEYS = ("DATE", "TIME", "NMBR", "NAME", "MESG", "DDN_NMBR")
_LINE = re.compile(r"^\s*(DDN_NMBR|DATE|TIME|NMBR|NAME|MESG)\s*[=:]\s?(.*?)\s*$", re.IGNORECASE)
_BARE = re.compile(r"^\s*(WITHHELD|PRIVATE|UNAVAILABLE|OUT OF AREA)\s*$", re.IGNORECASE)
_PRIVATE = frozenset({"P", "WITHHELD", "PRIVATE", "ANONYMOUS", "RESTRICTED"})
_UNAVAILABLE = frozenset({"", "O", "UNAVAILABLE", "OUT OF AREA", "UNKNOWN"})
_NUMBER_KEYS = frozenset({"NMBR", "DDN_NMBR"})

NUMBER_QUIET_S = 0.3  # after NMBR: NAME may still follow, but not after a pause
BLOCK_QUIET_S = 1.5  # a block that never names a number is closed after this


@dataclass(frozen=True, slots=True)
class CallerIdLine:
    """One caller-ID line: normalised key (``NMBR``), value, and the line as received."""

    key: str
    value: str
    raw: str


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """Everything the exchange told about one call."""

    number: str | None
    status: Status
    name: str | None = None
    date: str | None = None  # MMDD as sent
    time: str | None = None  # HHMM as sent
    message: str | None = None
    raw: tuple[str, ...] = field(default=())


def parse_callerid_line(text: str) -> CallerIdLine | None:
    """Recognise a caller-ID line; ``None`` for anything else (RING, OK...)."""
    match = _LINE.match(text)
    if match:
        key = match.group(1).upper()
        value = match.group(2)
        if key in _NUMBER_KEYS:
            value = "".join(value.split())
        return CallerIdLine(key, value, text)
    bare = _BARE.match(text)
    if bare:
        return CallerIdLine("NMBR", bare.group(1).upper(), text)
    return None


def _number_status(value: str) -> tuple[str | None, Status]:
    upper = value.upper()
    if upper in _PRIVATE:
        return None, "private"
    if upper in _UNAVAILABLE:
        return None, "unavailable"
    return value, "number"


def build_caller_info(lines: list[CallerIdLine] | tuple[CallerIdLine, ...]) -> CallerInfo:
    """Combine a block's lines; the last of a repeated key wins, NMBR over DDN_NMBR."""
    values: dict[str, str] = {}
    for line in lines:
        values[line.key] = line.value
    number_text = values.get("NMBR", values.get("DDN_NMBR"))
    name = values.get("NAME")
    if number_text is None:
        number, status = None, "unavailable"
        if name is not None and name.strip().upper() in _PRIVATE:
            status = "private"
    else:
        number, status = _number_status(number_text)
    if name is not None:
        name = name.strip()
        if name.upper() in _PRIVATE | _UNAVAILABLE:
            name = None
    return CallerInfo(
        number=number,
        status=status,
        name=name or None,
        date=values.get("DATE") or None,
        time=values.get("TIME") or None,
        message=values.get("MESG") or None,
        raw=tuple(line.raw for line in lines),
    )


class CallerIdAssembler:
    """Collects caller-ID lines into blocks and decides when a block is complete.

    A block is complete at the next ring, when a key repeats (a new block has
    begun, e.g. call waiting), after ``number_quiet`` seconds without lines once
    the number has arrived, or after ``block_quiet`` seconds in any case.
    """

    def __init__(
        self, *, number_quiet: float = NUMBER_QUIET_S, block_quiet: float = BLOCK_QUIET_S
    ) -> None:
        self.number_quiet = number_quiet
        self.block_quiet = block_quiet
        self._lines: list[CallerIdLine] = []
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._lines)

    def add(self, line: CallerIdLine, now: float) -> CallerInfo | None:
        """Take a line; returns the previous block if this line starts a new one."""
        done = None
        if any(old.key == line.key for old in self._lines):
            done = self.flush()
        self._lines.append(line)
        self._last = now
        return done

    def ring(self) -> CallerInfo | None:
        """A ring arrived: the block before it (if any) is complete."""
        return self.flush()

    def poll(self, now: float) -> CallerInfo | None:
        """The block, if the line has been quiet long enough to call it complete."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            return self.flush()
        return None

    def deadline(self) -> float | None:
        """When :meth:`poll` should next be called, or ``None`` with nothing pending."""
        if not self._lines:
            return None
        has_number = any(line.key in _NUMBER_KEYS for line in self._lines)
        return self._last + (self.number_quiet if has_number else self.block_quiet)

    def flush(self) -> CallerInfo | None:
        """Complete the pending block now (port closing, call answered...)."""
        if not self._lines:
            return None
        info = build_caller_info(self._lines)
        self._lines = []
        return info
