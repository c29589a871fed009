"""DLE shielding of voice data streams (V.253 section on <DLE> coding).

A pure incremental codec, no I/O: bytes from the modem go in, audio chunks and
:class:`DleEvent` come out, and the result does not depend on how the stream
was split across reads (a DLE at the end of one read waits for its partner in
the next). The transmit side only needs :func:`shield` and the terminators.
"""

from __future__ import annotations

from dataclasses import dataclass

DLE = b"\x10"
ETX = b"\x03"
SUB = b"\x1a"
CAN = b"\x18"

END_TX = DLE + ETX  # host: end of +VTX (modem plays its buffer, then OK)
CANCEL_TX = DLE + CAN  # host: drop the transmit buffer now (follow with END_TX)
ABORT_RX = DLE + b"!"  # host: stop +VRX (modem answers DLE ETX, then OK)
END_DUPLEX = DLE + b"^"  # host: end +VTR
NO_OP = DLE + b"\x00"  # host: does nothing but refresh the inactivity timer

DTMF_CODES = frozenset("0123456789*#ABCD")
COMPLEX_REPORT_LIMIT = 256  # bytes of a DLE X ... DLE . report kept before giving up

_DLE = 0x10
_ETX = 0x03
_SUB = 0x1A
_COMPLEX_START = ord("X")
_COMPLEX_END = ord(".")


@dataclass(frozen=True, slots=True, repr=False)
class DleEvent:
    """A ``DLE <c>`` pair from the modem: ``code`` is ``"ETX"`` or the character.

    ``data`` carries the text of a complex event report (``DLE X ... DLE .``).
    The repr hides DTMF digits: they may be a PIN.
    """

    code: str
    data: bytes = b""

    @property
    def is_dtmf(self) -> bool:
        return self.code in DTMF_CODES

    def __repr__(self) -> str:
        shown = "<dtmf>" if self.is_dtmf else repr(self.code)
        extra = f", {len(self.data)} bytes" if self.data else ""
        return f"DleEvent({shown}{extra})"


def _event_for(byte: int) -> DleEvent:
    return DleEvent("ETX" if byte == _ETX else chr(byte))


def shield(audio: bytes) -> bytes:
    """Audio as it must be sent to the modem: every 0x10 doubled."""
    return audio.replace(DLE, DLE + DLE)


class CodeSpotter:
    """Says, chunk by chunk, whether a stream from the modem holds a DLE code
    (DLE and anything but DLE): what a reader that batches audio must not
    hold back. Whole chunks are searched in C; audio is never walked byte by
    byte. A DLE ending a chunk is judged with the next chunk's first byte,
    and counts as a code at once (it may be one): never late, rarely early.
    """

    def __init__(self) -> None:
        self._open = False  # the stream so far ends in an unpaired DLE

    def feed(self, data: bytes) -> bool:
        if self._open:
            self._open = False
            if not data.startswith(DLE):
                return bool(data)  # the pending DLE began a code
            data = data[1:]  # it was a shielded DLE
        if DLE not in data:
            return False
        rest = data.replace(DLE + DLE, b"")
        if rest.endswith(DLE):
            self._open = True
        return DLE in rest


class DleDecoder:
    """Incremental decoder of a modem-to-host DLE-shielded stream.

    ``dle_sub``: ``DLE SUB`` stands for two 0x10 bytes (most chips; a profile
    can turn it off). ``complex_events``: collect ``DLE X ... DLE .`` into one
    event instead of treating the report text as audio.
    """

    def __init__(self, *, dle_sub: bool = True, complex_events: bool = True) -> None:
        self.dle_sub = dle_sub
        self.complex_events = complex_events
        self._held_dle = False
        self._report: bytearray | None = None

    @property
    def pending(self) -> bool:
        """True while a lone DLE or an unfinished complex report waits for more bytes."""
        return self._held_dle or self._report is not None

    def feed(self, data: bytes) -> list[bytes | DleEvent]:
        """Decode the next bytes; audio runs come out merged as ``bytes``."""
        items, _ = self._decode(data, stop_at_etx=False)
        return items

    def feed_until_etx(self, data: bytes) -> tuple[list[bytes | DleEvent], bytes | None]:
        """Decode up to and including a ``DLE ETX``.

        Returns the items and, when the ETX was found, the undecoded bytes that
        followed it (the modem is back in command mode there); ``None`` if not.
        """
        items, end = self._decode(data, stop_at_etx=True)
        return items, (None if end is None else bytes(data[end:]))

    def _decode(self, data: bytes, stop_at_etx: bool) -> tuple[list[bytes | DleEvent], int | None]:
        out: list[bytes | DleEvent] = []
        audio = bytearray()
        n = len(data)
        i = 0
        if self._held_dle and n:
            self._held_dle = False
            i = 1
            if self._pair(data[0], out, audio) and stop_at_etx:
                return self._flush(out, audio), i
        while i < n:
            j = data.find(DLE, i)
            stop = n if j < 0 else j
            if self._report is not None:
                room = COMPLEX_REPORT_LIMIT - len(self._report)
                if stop - i > room:
                    # an endless "report" is line noise: keep what fits, resume audio
                    self._report += data[i : i + room]
                    self._end_report(out, audio)
                    i += room
                    continue
                self._report += data[i:stop]
            else:
                audio += data[i:stop]
            if j < 0:
                break
            if j + 1 == n:
                self._held_dle = True
                break
            i = j + 2
            if self._pair(data[j + 1], out, audio) and stop_at_etx:
                return self._flush(out, audio), i
        return self._flush(out, audio), None

    def _pair(self, byte: int, out: list[bytes | DleEvent], audio: bytearray) -> bool:
        """Handle ``DLE <byte>``; True if it was the end of the stream (ETX)."""
        if self._report is not None:
            if byte == _COMPLEX_END:
                self._end_report(out, audio)
                return False
            if byte == _DLE and len(self._report) < COMPLEX_REPORT_LIMIT:
                self._report.append(_DLE)
                return False
            self._end_report(out, audio)
        if byte == _DLE:
            audio.append(_DLE)
        elif byte == _SUB and self.dle_sub:
            audio += b"\x10\x10"
        elif byte == _COMPLEX_START and self.complex_events:
            self._flush(out, audio)
            self._report = bytearray()
        else:
            self._flush(out, audio)
            out.append(_event_for(byte))
            return byte == _ETX
        return False

    def _end_report(self, out: list[bytes | DleEvent], audio: bytearray) -> None:
        self._flush(out, audio)
        out.append(DleEvent("X", bytes(self._report or b"")))
        self._report = None

    @staticmethod
    def _flush(out: list[bytes | DleEvent], audio: bytearray) -> list[bytes | DleEvent]:
        if audio:
            if out and isinstance(out[-1], bytes):
                out[-1] = out[-1] + bytes(audio)
            else:
                out.append(bytes(audio))
            audio.clear()
        return out
