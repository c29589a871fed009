"""Exceptions of the modem layer.

Messages name commands only by their verb (``AT+VTS=…``, ``ATD…``): the
arguments of a command may be DTMF digits of a PIN or a card, and audio or
digit payloads never appear in an exception message or a log line.
"""

from __future__ import annotations

import re

from daemon1521.schema import SchemaError

# Basic AT commands before a dial: ``ATE0V1DT123`` -> ``ATE0V1D…``.
_BASIC_BEFORE_DIAL = re.compile(r"AT((?:[A-CE-Z&\\%]\d*|S\d+\??)*)D", re.IGNORECASE)
_MAX_SHOWN = 24


def redact_command(command: str) -> str:
    """The part of an AT command that is safe to show: its verb, not its arguments."""
    text = "".join(ch for ch in command.strip() if ch.isprintable())
    if text[:2].upper() != "AT":
        return "<non-AT data>"
    dial = _BASIC_BEFORE_DIAL.match(text)
    if dial:
        return text[: dial.end()] + "…"
    head, eq, tail = text.partition("=")
    if eq:
        return head[:_MAX_SHOWN] + ("=?" if tail == "?" else "=…")
    return text[:_MAX_SHOWN] + ("…" if len(text) > _MAX_SHOWN else "")


class ModemError(Exception):
    """Anything that went wrong below the voice API."""


class PortError(ModemError):
    """The serial port failed: an I/O error, a device that vanished, a bad URL."""


class PortClosed(PortError):
    """The port is closed: closed by us, or the other end hung up (EOF, EIO)."""


class AtTimeout(ModemError):
    """A command got no final result in time (the modem may still answer late)."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = redact_command(command)
        self.timeout = timeout
        super().__init__(f"{self.command}: no final result within {timeout:.3g} s")


class AtError(ModemError):
    """A command ended with a final result the caller did not accept (ERROR, BUSY...)."""

    def __init__(self, command: str, final: str, lines: list[str] | tuple[str, ...]) -> None:
        self.command = redact_command(command)
        self.final = final
        self.lines = list(lines)
        super().__init__(f"{self.command}: {final}")


class NotResponding(ModemError):
    """The modem stopped answering and could not be brought back by a reset."""


class StreamError(ModemError):
    """A voice data stream was used wrongly or ended unexpectedly."""


class ProfileError(ModemError, SchemaError):
    """A firmware profile file is invalid; names the file, the key and the problem."""
