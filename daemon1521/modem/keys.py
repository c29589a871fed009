"""One key press per key, whatever the chip's DTMF framing.

IS-101 chips wrap a press as ``DLE /`` ... ``DLE ~`` and may repeat the digit
inside (Conexant sends ``/000~`` for one press of 0); others send the bare
digit once. VOICE-MODEMS.md section 3: count one press per ``/ ... ~`` pair
and one per bare digit outside a pair. That reading is right for both kinds
of chip (a bare chip sends no frames), so it needs no profile setting, and a
chip whose profile is wrong or generic still gives one key per press.
"""

from __future__ import annotations

from daemon1521.modem.dle import DTMF_CODES, DleEvent

OPEN = "/"
CLOSE = "~"


class DtmfFramer:
    """Turns the chip's DTMF events into key presses; pure, no I/O."""

    def __init__(self) -> None:
        self._in_frame = False
        self._frame_key: str | None = None

    def reset(self) -> None:
        self._in_frame = False
        self._frame_key = None

    def feed(self, event: DleEvent) -> str | None:
        """The key pressed, when this event completes or starts a press; else None."""
        code = event.code
        if code == OPEN:
            # a second '/' without '~' means the chip lost the release: a new press
            self._in_frame = True
            self._frame_key = None
            return None
        if code == CLOSE:
            self._in_frame = False
            self._frame_key = None
            return None
        if code not in DTMF_CODES:
            return None
        if self._in_frame:
            if self._frame_key is None:
                self._frame_key = code
                return code
            if code == self._frame_key:
                return None  # the chip repeating the held digit
            self._frame_key = code  # another key inside one frame: a new press
            return code
        return code
