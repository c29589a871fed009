"""Line traces: the dialogue with a modem, written for someone debugging a chip.

A trace records, with a UTC timestamp per entry, the commands the host sent,
the modem's responses and unsolicited lines, and DLE events both ways. Audio
is never written, only how many bytes of it went each way. Every DTMF digit
is written as ``*``, in both directions: the keys a caller presses (DLE
events) are card numbers and PINs, and the digits the host makes the modem
send (``+VTS``, dial strings, and their echo) are the same secrets passed on
to the bank. Caller-ID numbers and names are masked as the logs mask them,
keeping their layout. The file is rotated by size so a trace left on in the field
cannot fill the disk.

:class:`TracedPort` wraps any :class:`~daemon1521.modem.transport.Port` and
follows the stream the way the modem does: text until a ``CONNECT`` answers
``+VTX`` / ``+VRX`` / ``+VTR``, then shielded audio until ``DLE ETX``. Audio
is counted, and the count written when an event or the stream's end comes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from daemon1521.modem.transport import Port

DLE = 0x10
ETX = 0x03
DTMF_KEYS = frozenset("0123456789*#ABCD")
"""DLE codes that are key presses (V.253), hence secrets."""
EVENT_NAMES = {0x03: "ETX", 0x18: "CAN", 0x1A: "SUB", 0x00: "NUL"}
MAX_BYTES = 1 << 20
"""Size at which a trace file is rotated."""
BACKUPS = 3
"""Rotated files kept (``FILE.1`` newest ... ``FILE.3`` oldest)."""
MAX_LINE = 512
"""Longest text line kept whole; a modem emitting garbage cannot grow one without end."""

_SECRET_CHARS = re.compile(r"[0-9*#A-Da-d]")
_CALLER_FIELD = re.compile(r"^(\s*(?:DDN_)?(?:NMBR|NAME)\s*=\s*)(.*)$", re.IGNORECASE)
_DIAL_OR_VTS = re.compile(r"D|\+VTS", re.IGNORECASE)


def mask_command(text: str) -> str:
    """An AT command line with every digit of a dial string or ``+VTS`` as ``*``.

    Basic and extended commands are walked as V.250 splits them, so ``&D2``,
    ``S7=50`` or ``+VDR=1,15`` stay readable while ``D`` and ``+VTS`` values
    are hidden; anything that cannot be walked is masked whole.
    """
    if not _DIAL_OR_VTS.search(text):
        return text
    upper = text.upper()
    start = upper.find("AT")
    if start < 0:
        return _SECRET_CHARS.sub("*", text)
    out = list(text)
    i = start + 2
    while i < len(upper):
        ch = upper[i]
        if ch in "+-!#$":
            end = upper.find(";", i)
            end = len(upper) if end < 0 else end
            if upper.startswith("+VTS", i):
                _mask(out, i + 4, end)
            i = end + 1
        elif ch == "D":
            end = upper.find(";", i)
            end = len(upper) if end < 0 else end
            _mask(out, i + 1, end)
            i = end + 1
        elif ch in "&%\\":
            i += 2
            while i < len(upper) and upper[i].isdigit():
                i += 1
        elif ch.isalpha() or ch in " ;=?":
            i += 1
            while i < len(upper) and (upper[i].isdigit() or upper[i] in "=?"):
                i += 1
        else:
            return _SECRET_CHARS.sub("*", text)
    return "".join(out)


def mask_caller_id(line: str) -> str:
    """A caller-ID line with the caller's number and name hidden, its layout kept.

    The number's digits become ``*`` (``P`` / ``O`` and the spacing stay, which
    is what a chip's dialect is about); the logs show callers only masked too.
    """
    match = _CALLER_FIELD.match(line)
    if match is None:
        return line
    field, value = match.groups()
    if "NAME" in field.upper():
        return field + re.sub(r"\S", "*", value)
    return field + re.sub(r"\d", "*", value)


def _mask(chars: list[str], start: int, end: int) -> None:
    for j in range(start, end):
        if _SECRET_CHARS.fullmatch(chars[j]):
            chars[j] = "*"


def dle_name(code: int) -> str:
    """How a DLE event is written: its character, ``*`` for any key, or its control name."""
    char = chr(code)
    if char in DTMF_KEYS:
        return "*"
    if code in EVENT_NAMES:
        return EVENT_NAMES[code]
    if 0x20 < code < 0x7F:
        return char
    return f"0x{code:02x}"


class TraceFile:
    """An append-only trace file, rotated by size."""

    def __init__(self, path: str | Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, direction: str, kind: str, text: str = "") -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{stamp} {direction} {kind} {text}".rstrip() + "\n"
        if self._file.tell() + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path if n == 1 else self.path.with_name(f"{self.path.name}.{n - 1}")
            if newer.exists():
                newer.replace(older)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()


class _Direction:
    """One direction of the stream: text lines, or audio with DLE events."""

    def __init__(self, trace: LineTrace, arrow: str) -> None:
        self.trace = trace
        self.arrow = arrow
        self.audio = False
        self.text = bytearray()
        self.dle = False
        self.count = 0
        self.skip_lf = False  # the LF of the CONNECT that opened the stream

    def feed(self, data: bytes) -> None:
        for byte in data:
            if self.skip_lf:
                self.skip_lf = False
                if byte == 0x0A:
                    continue
            if self.dle:
                self.dle = False
                if self.audio and byte == DLE:
                    self.count += 1
                else:
                    self.event(byte)
            elif byte == DLE:
                self.dle = True
            elif self.audio:
                self.count += 1
            elif byte in (0x0D, 0x0A):
                self.end_line()
            elif len(self.text) < MAX_LINE:
                self.text.append(byte)

    def event(self, code: int) -> None:
        self.flush_audio()
        self.end_line()
        self.trace.file.write(self.arrow, "dle", dle_name(code))
        self.trace.dle_event(self, code)

    def end_line(self) -> None:
        if not self.text:
            return
        line = self.text.decode("latin-1")
        self.text.clear()
        self.trace.line(self, line)

    def flush_audio(self) -> None:
        if self.count:
            self.trace.file.write(self.arrow, "audio", f"{self.count} bytes")
            self.count = 0


class LineTrace:
    """Follows both directions of one modem's port and writes them to a :class:`TraceFile`."""

    def __init__(self, file: TraceFile) -> None:
        self.file = file
        self.host = _Direction(self, ">")
        self.modem = _Direction(self, "<")
        self._pending: str | None = None  # the stream a sent command will open on CONNECT

    def sent(self, data: bytes) -> None:
        self.host.feed(data)

    def received(self, data: bytes) -> None:
        self.modem.feed(data)

    def line(self, side: _Direction, text: str) -> None:
        """A whole text line: a command (host) or a response (modem).

        Lines are written only when their CR or LF comes, never at a read's
        end, so a command split across reads is still masked as a whole.
        Host text that is not a command line is masked entirely.
        """
        kind = "cmd" if side is self.host else "line"
        if text.upper().lstrip().startswith("AT"):
            masked = mask_command(text)
        elif side is self.host:
            masked = _SECRET_CHARS.sub("*", text)
        else:
            masked = mask_caller_id(text)
        self.file.write(side.arrow, kind, masked)
        if side is self.host:
            command = text.upper()
            for name, stream in (("+VTR", "duplex"), ("+VTX", "tx"), ("+VRX", "rx")):
                if name in command:
                    self._pending = stream
                    break
            else:
                self._pending = None
        elif text.strip().upper() == "CONNECT" and self._pending is not None:
            self.host.audio = self._pending in ("tx", "duplex")
            self.modem.audio = self._pending in ("rx", "duplex")
            self.modem.skip_lf = True
            self._pending = None

    def dle_event(self, side: _Direction, code: int) -> None:
        """End of a stream: the host's DLE ETX (or ^) ends its audio, the modem's its own."""
        if side is self.host and code in (ETX, ord("^")):
            self.host.flush_audio()
            self.host.audio = False
        elif side is self.modem and code == ETX:
            self.modem.audio = False

    def close(self) -> None:
        self.host.flush_audio()
        self.modem.flush_audio()
        self.host.end_line()
        self.modem.end_line()
        self.file.close()


class TracedPort(Port):
    """A port whose every byte, both ways, goes through a :class:`LineTrace`."""

    def __init__(self, port: Port, path: str | Path, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(port.url, port.usb_id)
        self._port = port
        self.trace = LineTrace(TraceFile(path, max_bytes))
        self.trace.file.write("-", "open", port.url)

    async def read(self) -> bytes:
        data = await self._port.read()
        self.trace.received(data)
        return data

    async def write(self, data: bytes) -> None:
        self.trace.sent(data)
        await self._port.write(data)

    async def drain(self) -> None:
        await self._port.drain()

    async def pulse_dtr(self, seconds: float) -> bool:
        self.trace.file.write(">", "dtr", f"drop {seconds:g} s")
        return await self._port.pulse_dtr(seconds)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._port.close()
        finally:
            self.trace.file.write("-", "close", self.url)
            self.trace.close()

    @property
    def closed(self) -> bool:
        return self._closed or self._port.closed
