"""Everything the chip writes to the host: result codes in verbose or numeric
form, information text, DLE events now, and the fault log for callbacks
that :func:`~.chipbase.guarded` catches.
"""

from __future__ import annotations

from loguru import logger

from daemon1521.emulator.modem import shielding

FAULT_LOG_EVERY = 1000
"""A fault that keeps recurring is logged at its first time and then every this many."""


class HostOutputMixin:
    """Output to the host and fault logging for :class:`~.voicemodem.VoiceModem`."""

    # -- output to the host ----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and self._sink is not None and not self._muted:
            self._sink(data)

    @property
    def _crlf(self) -> bytes:
        return bytes((self._sregs[3], self._sregs[4]))

    def _event(self, code: str) -> None:
        """Report a DLE event now, if the chip reports it (voice mode only)."""
        reported = self._fclass == "8" and code in self.personality.voice.events
        if reported and not self._silent_recording:
            self._write(shielding.event(code))

    @property
    def _silent_recording(self) -> bool:
        """Recording (+VRX) on a chip that reports no DLE events meanwhile.

        Its detectors keep running, so a key already down when the stream ends
        is not reported again afterwards: that press is only in the audio.
        """
        return self._mode == "rx" and not self.personality.voice.events_during_vrx

    def _format_result(self, name: str) -> bytes:
        numeric = self.personality.results.numeric
        if self._v or name not in numeric:
            head = b"" if self._compact else self._crlf
            return head + name.encode() + self._crlf
        return str(numeric[name]).encode() + bytes((self._sregs[3],))

    def _final(self, name: str) -> None:
        if not self._q:
            self._write(self._format_result(name))
        self._compact = False
        after, self._after_final = self._after_final, []
        for data in after:
            self._write(data)

    def _unsolicited(self, name: str) -> None:
        if not self._q:
            self._compact = False
            self._write(self._format_result(name))

    def _info(self, lines: tuple[str, ...], key: str) -> None:
        if not lines:
            return
        crlf = self._crlf
        body = crlf.join(line.encode("latin-1", "replace") for line in lines) + crlf
        self._write(crlf + body if self._v else body)
        self._compact = bool(self._v) and key in self.personality.command_line.compact_info

    # -- faults --------------------------------------------------------------------------

    @property
    def _label(self) -> str:
        return self.line.label if self.line is not None else self.personality.name

    def _fault(self, where: str, exc: BaseException) -> None:
        count = self.faults.get(where, 0) + 1
        self.faults[where] = count
        if count == 1 or count % FAULT_LOG_EVERY == 0:
            logger.opt(exception=exc).error(
                "emulated modem {} failed in {} ({} time(s))", self._label, where, count
            )
