"""The voice data streams ``+VTX`` / ``+VRX`` / ``+VTR``: taking shielded host
bytes and their DLE controls, paced playback from the transmit buffer with
underrun reporting, and recording with overrun when the host falls behind.
"""

from __future__ import annotations

import numpy as np

from daemon1521.dsp import codecs
from daemon1521.emulator.clock import FRAME
from daemon1521.emulator.modem import shielding
from daemon1521.emulator.modem.shielding import CAN, ETX, NUL, Control


class StreamsMixin:
    """Voice streaming for :class:`~.voicemodem.VoiceModem`."""

    def _stream_in(self, tx: bool) -> bool:
        """Take streamed bytes; False when the transmit buffer has no room."""
        if tx and self._draining:
            return False
        if tx:
            room = self.personality.voice.tx_buffer - len(self._tx_buf)
            if room <= 0:
                return False
            chunk = bytes(self._pending[:room])
        else:
            chunk = bytes(self._pending)
        items, used = self._decoder.feed_until_control(chunk)
        del self._pending[:used]
        for item in items:
            if isinstance(item, bytes):
                if tx and item:
                    if not self._tx_started and self.meter is not None:
                        self.meter.on_stream_audio()
                    self._tx_buf += item
                    self._tx_started = True
            else:
                self._stream_control(item)
        return True

    def _stream_control(self, control: Control) -> None:
        code = control.code
        mode = self._mode
        v = self.personality.voice
        if code == NUL:
            return
        if mode in ("tx", "duplex") and code == CAN:
            if self.meter is not None:
                self.meter.on_stream_stopped()
            self._tx_buf.clear()
            self._tx_started = False
            self._underrun = False
        elif mode in ("tx", "duplex") and code == ETX:
            # the chip plays what it buffered, then ends: with nothing left
            # (a DLE CAN just cleared it, or the prompt has played out) that is
            # now, since the last frame went to the line whole at the last
            # tick; waiting for the next tick would add up to a frame the
            # chip does not take
            self._draining = True
            self._end_if_drained()
        elif mode == "duplex" and control.char == "^":
            self._tx_buf.clear()
            self._end_stream(etx=True)
        elif mode == "rx" and control.char in v.rx_end_codes:
            self._end_stream(etx=True)
        # every other code is ignored, as chips ignore codes they do not know

    # -- streaming audio --------------------------------------------------------------

    def _bytes_per_frame(self) -> int:
        return FRAME * codecs.bytes_per_sample(self._format)

    @property
    def _format(self) -> str:
        assert self._codec.format is not None
        return self._codec.format

    def _play_frame(self) -> np.ndarray:
        fmt = self._format
        need = self._bytes_per_frame()
        width = codecs.bytes_per_sample(fmt)
        buf = self._tx_buf
        if len(buf) >= need:
            data = bytes(buf[:need])
            del buf[:need]
            if self._underrun and self.meter is not None:
                self.meter.on_resumed()
            self._underrun = False
        else:
            usable = len(buf) - len(buf) % width
            data = bytes(buf[:usable])
            del buf[:usable]
            if not self._draining and self._tx_started and self.meter is not None:
                self.meter.on_starved((need - usable) // width, new=not self._underrun)
            if not self._draining and self._tx_started and not self._underrun:
                self._underrun = True
                self._event("u")
            data += codecs.silence(fmt, (need - len(data)) // width)
        frame = codecs.decode(data, fmt)
        self._end_if_drained()
        self._wake_reader()
        return frame

    def _end_if_drained(self) -> None:
        """End a stream the host ended (``DLE ETX``) once its buffer is empty."""
        if not self._draining or self._tx_buf:
            return
        if self._mode == "tx":
            self._end_stream(etx=self.personality.voice.vtx_end_etx)
        elif self._mode == "duplex":
            self._end_stream(etx=True)

    def _record_frame(self, frame: np.ndarray, events: list[tuple[int, bytes]]) -> None:
        v = self.personality.voice
        audio = codecs.encode(frame, self._format)
        backlog = self._backlog()
        if backlog > v.rx_backlog:
            if not self._overrun:
                self._overrun = True
                if "o" in v.events and not self._silent_recording:
                    events.append((FRAME, shielding.event("o")))
            for _, data in sorted(events, key=lambda e: e[0]):
                self._write(data)
            return
        if backlog < v.rx_backlog // 2:
            self._overrun = False
        width = codecs.bytes_per_sample(self._format)
        out = bytearray()
        pos = 0
        for offset, data in sorted(events, key=lambda e: e[0]):
            cut = max(0, min(FRAME, offset)) * width
            if cut > pos:
                out += shielding.shield(audio[pos:cut], dle_sub=v.dle_sub)
                pos = cut
            out += data
        out += shielding.shield(audio[pos:], dle_sub=v.dle_sub)
        self._write(bytes(out))

    def _end_stream(self, etx: bool) -> None:
        self._end_activity()
        if etx:
            self._write(bytes((shielding.DLE, ETX)))
        self._final("OK")
        self._wake_reader()

    def _wake_reader(self) -> None:
        """Room in the transmit buffer: take waiting bytes, then let the port read again."""
        if self._pending and not self._processing:
            self._process()
        if self._room_cb is not None and self.input_room() != 0:
            self._room_cb()
