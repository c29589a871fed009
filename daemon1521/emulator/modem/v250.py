"""ITU-T V.250 command lines: collecting them byte by byte and splitting them.

A DCE in command state watches the host's bytes for the ``AT`` prefix
(either case), collects the body up to S3 (CR), lets S5 (backspace) edit it,
echoes every byte when echo is on, and runs ``A/`` (repeat the last line)
at once without a CR. The body holds basic commands (``E0``, ``&F``,
``S0=2``, ``D...``), which follow each other directly, and extended ones
(``+FCLASS=8``), which are separated by ``;`` and come as action ``+X``,
set ``+X=v``, read ``+X?`` or test ``+X=?``.

Spaces are ignored outside quoted strings and the body is case-insensitive
outside them, as V.250 section 5.3 says. A syntax error stops the line: the
commands before it still run (chips parse as they execute), then ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

EXTENDED_PREFIXES = "+-!#$"
"""First characters of extended-syntax names: ``+`` is V.250's, the rest are
vendor extensions (``AT-SCID``, ``AT!4886`` on Conexant, ``#`` on Rockwell)."""
BASIC_PREFIXES = "&%\\"
"""Characters that prefix a basic command letter (``&F``, ``%C``, ``\\N``)."""
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!%-./:_")


@dataclass(frozen=True)
class Command:
    """One command of a command line, in upper case.

    ``name`` is ``E``, ``&F``, ``S7`` (a numbered S-register), ``S`` (the
    currently selected register: bare ``?`` and ``=n``), ``D`` or an extended
    name with its prefix (``+VLS``). ``op`` is ``""`` (action, or a basic
    command with its number in ``arg``), ``"="``, ``"?"`` or ``"=?"``. For
    ``D``, ``arg`` is the whole dial string including a final ``;``.
    """

    name: str
    op: str = ""
    arg: str = ""

    @property
    def key(self) -> str:
        """The command as a lookup key: name plus operator (``+FCLASS?``)."""
        return self.name + self.op


@dataclass(frozen=True)
class ParsedLine:
    """The commands of a line, and whether parsing stopped at an error."""

    commands: tuple[Command, ...]
    error: bool = False


def normalise(body: str) -> str:
    """Upper-case the body and drop spaces and control characters, except inside quotes."""
    out: list[str] = []
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
            out.append(ch)
        elif quoted:
            out.append(ch)
        elif ch == " " or ord(ch) < 0x20 or ord(ch) == 0x7F:
            continue
        else:
            out.append(ch.upper())
    return "".join(out)


def parse_line(body: str) -> ParsedLine:
    """Split a command-line body (the text between ``AT`` and CR) into commands."""
    s = normalise(body)
    commands: list[Command] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == ";":
            i += 1
            continue
        try:
            if ch in EXTENDED_PREFIXES:
                command, i = _extended(s, i)
            elif ch == "D":
                end = s.find(";", i + 1)
                end = n if end < 0 else end + 1
                command, i = Command("D", "", s[i + 1 : end]), end
            elif ch == "S":
                command, i = _s_register(s, i)
            elif ch in "=?":
                command, i = _current_register(s, i)
            elif ch in BASIC_PREFIXES:
                if i + 1 >= n or not s[i + 1].isalpha():
                    raise _SyntaxError
                command, i = _basic(s, i, 2)
            elif "A" <= ch <= "Z":
                command, i = _basic(s, i, 1)
            else:
                raise _SyntaxError
        except _SyntaxError:
            return ParsedLine(tuple(commands), error=True)
        commands.append(command)
    return ParsedLine(tuple(commands))


class _SyntaxError(Exception):
    pass


def _digits(s: str, i: int) -> tuple[str, int]:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    j = i
    while j < len(s) and s[j] in "0123456789":
        j += 1
    return s[i:j], j


def _basic(s: str, i: int, width: int) -> tuple[Command, int]:
    number, j = _digits(s, i + width)
    return Command(s[i : i + width], "", number), j


def _s_register(s: str, i: int) -> tuple[Command, int]:
    number, j = _digits(s, i + 1)
    if not number:
        raise _SyntaxError
    name = f"S{int(number)}"
    if j < len(s) and s[j] == "?":
        return Command(name, "?"), j + 1
    if j < len(s) and s[j] == "=":
        value, k = _digits(s, j + 1)
        return Command(name, "=", value), k
    return Command(name), j


def _current_register(s: str, i: int) -> tuple[Command, int]:
    if s[i] == "?":
        return Command("S", "?"), i + 1
    value, j = _digits(s, i + 1)
    return Command("S", "=", value), j


def _extended(s: str, i: int) -> tuple[Command, int]:
    j = i + 1
    while j < len(s) and s[j] not in "=?;":
        if s[j] not in _NAME_CHARS:
            raise _SyntaxError
        j += 1
    name = s[i:j]
    if len(name) < 2:
        raise _SyntaxError
    if s.startswith("=?", j):
        command, j = Command(name, "=?"), j + 2
    elif j < len(s) and s[j] == "=":
        value, j = _value(s, j + 1)
        command = Command(name, "=", value)
    elif j < len(s) and s[j] == "?":
        command, j = Command(name, "?"), j + 1
    else:
        command = Command(name)
    if j < len(s) and s[j] != ";":
        raise _SyntaxError
    return command, j


def _value(s: str, i: int) -> tuple[str, int]:
    """The argument text of ``+X=...``: up to a ``;`` outside quotes."""
    j = i
    quoted = False
    while j < len(s):
        if s[j] == '"':
            quoted = not quoted
        elif s[j] == ";" and not quoted:
            break
        j += 1
    if quoted:
        raise _SyntaxError
    return s[i:j], j


def split_args(arg: str) -> list[str]:
    """Comma-separated subparameters, commas inside quotes, brackets or braces kept."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for j, ch in enumerate(arg):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(arg[start:j])
            start = j + 1
    parts.append(arg[start:])
    return parts


# --- the command-line editor -------------------------------------------------


class _State(Enum):
    IDLE = auto()  # looking for the A of AT
    GOT_A = auto()  # saw A, want T (or / for repeat)
    IN_LINE = auto()  # collecting the body


REPEAT = object()
"""Returned by :meth:`LineEditor.feed` for ``A/``."""
OVERFLOW = object()
"""Returned by :meth:`LineEditor.feed` for a line longer than the buffer."""


class LineEditor:
    """Turns host bytes into command lines, one byte at a time.

    ``feed`` returns what to echo (when echo is on) and, at the end of a
    line, the body, :data:`REPEAT` or :data:`OVERFLOW`. The body keeps only
    ``max_length`` characters, as a chip's command buffer does; a longer line
    is answered ERROR when its CR comes.
    """

    def __init__(self, max_length: int, backspace_echo: bytes = b"\b \b") -> None:
        if max_length < 1:
            raise ValueError("command buffer must hold at least one character")
        self.max_length = max_length
        self.backspace_echo = backspace_echo
        self.reset()

    def reset(self) -> None:
        self._state = _State.IDLE
        self._body: list[str] = []
        self._overflow = False

    @property
    def collecting(self) -> bool:
        """True once ``AT`` has been seen and the line is not finished."""
        return self._state is _State.IN_LINE

    def feed(self, byte: int, cr: int = 13, bs: int = 8) -> tuple[bytes, object | str | None]:
        echo = bytes((byte,))
        if self._state is _State.IDLE:
            if byte in (0x41, 0x61):  # A a
                self._state = _State.GOT_A
            return echo, None
        if self._state is _State.GOT_A:
            if byte in (0x54, 0x74):  # T t
                self._state = _State.IN_LINE
                self._body = []
                self._overflow = False
            elif byte == 0x2F:  # /
                self._state = _State.IDLE
                return echo, REPEAT
            elif byte == bs:
                self._state = _State.IDLE
                return self.backspace_echo, None
            elif byte not in (0x41, 0x61):
                self._state = _State.IDLE
            return echo, None
        # collecting the body
        if byte == cr:
            self._state = _State.IDLE
            if self._overflow:
                return echo, OVERFLOW
            return echo, "".join(self._body)
        if byte == bs:
            if self._body:
                self._body.pop()
            else:
                self._state = _State.GOT_A
            return self.backspace_echo, None
        if byte < 0x20 or byte == 0x7F:
            return echo, None  # V.250: other control characters are ignored
        if len(self._body) >= self.max_length:
            self._overflow = True
        else:
            self._body.append(chr(byte))
        return echo, None
