"""The modem's side of V.253 DLE shielding (VOICE-MODEMS.md section 3).

During voice streaming both directions carry raw audio bytes, so control
codes travel as a DLE (0x10) followed by one code byte, and an audio byte
equal to DLE travels doubled. This module is pure: bytes in, bytes or items
out, and a decoder that keeps a DLE split across two reads for the next one
(USB delivers streams in arbitrary pieces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DLE = 0x10
ETX = 0x03
CAN = 0x18
SUB = 0x1A
NUL = 0x00

_DLE_BYTE = b"\x10"
_DLE_DLE = b"\x10\x10"
_DLE_SUB = b"\x10\x1a"
_DLE_RUN = re.compile(b"\x10+")


def shield(data: bytes, *, dle_sub: bool = False) -> bytes:
    """Audio bytes as the modem sends them to the host.

    Each 0x10 is doubled. With ``dle_sub`` (a chip quirk, VOICE-MODEMS.md
    section 3) a pair of 0x10 audio bytes goes as ``DLE SUB`` instead of two
    doubled DLEs.
    """
    if _DLE_BYTE not in data:
        return data
    if not dle_sub:
        return data.replace(_DLE_BYTE, _DLE_DLE)

    def run(match: re.Match[bytes]) -> bytes:
        pairs, single = divmod(len(match.group()), 2)
        return _DLE_SUB * pairs + _DLE_DLE * single

    return _DLE_RUN.sub(run, data)


def event(code: str) -> bytes:
    """The two bytes of a DLE event, e.g. ``event("R")`` for ring."""
    if len(code) != 1:
        raise ValueError(f"a DLE event code is one character, got {code!r}")
    return bytes((DLE, ord(code)))


@dataclass(frozen=True)
class Control:
    """A DLE code the host sent (anything but DLE DLE / DLE SUB)."""

    code: int

    @property
    def char(self) -> str:
        return chr(self.code)


class HostDecoder:
    """Splits what the host sends during streaming into audio and controls.

    ``feed`` returns a list of ``bytes`` (audio, unshielded) and
    :class:`Control` items in the order they arrived. A DLE at the very end
    of a piece waits for the next piece. ``DLE SUB`` is two 0x10 audio bytes
    only when the chip understands it; otherwise it is an unknown control
    (which the modem ignores, as chips do).
    """

    def __init__(self, *, dle_sub: bool = False) -> None:
        self.dle_sub = dle_sub
        self._pending_dle = False

    def reset(self) -> None:
        self._pending_dle = False

    @property
    def pending(self) -> bool:
        """True when the last byte fed was a lone DLE."""
        return self._pending_dle

    def feed(self, data: bytes) -> list[bytes | Control]:
        """Decode all of ``data``."""
        return self._decode(data, stop=False)[0]

    def feed_until_control(self, data: bytes) -> tuple[list[bytes | Control], int]:
        """Decode ``data`` up to and including its first control code.

        Returns the items and how many bytes of ``data`` were used, so the
        caller can hand the rest to whatever the control switches to.
        """
        return self._decode(data, stop=True)

    def _decode(self, data: bytes, stop: bool) -> tuple[list[bytes | Control], int]:
        items: list[bytes | Control] = []
        audio = bytearray()
        start = 0
        if data and self._pending_dle:
            self._pending_dle = False
            start = 1
            if self._code(data[0], audio, items) and stop:
                return items, start
        while start < len(data):
            i = data.find(_DLE_BYTE, start)
            if i < 0:
                audio += data[start:]
                start = len(data)
                break
            audio += data[start:i]
            if i + 1 >= len(data):
                self._pending_dle = True
                start = len(data)
                break
            start = i + 2
            if self._code(data[i + 1], audio, items) and stop:
                return items, start
        if audio:
            items.append(bytes(audio))
        return items, start

    def _code(self, code: int, audio: bytearray, items: list[bytes | Control]) -> bool:
        """Handle the byte after a DLE; True when it was a control code."""
        if code == DLE:
            audio.append(DLE)
            return False
        if code == SUB and self.dle_sub:
            audio += _DLE_DLE
            return False
        if audio:
            items.append(bytes(audio))
            audio.clear()
        items.append(Control(code))
        return True
