"""What the chip hears on the line and reports as DLE events: DTMF (with the
personality's framing and repeats), call-progress tones, silence (``+VSD``),
and the ``+VIT`` inactivity timer.
"""

from __future__ import annotations

import numpy as np

from daemon1521.dsp.tones import power_dbm0
from daemon1521.emulator.clock import FRAME, RATE
from daemon1521.emulator.modem import shielding
from daemon1521.emulator.modem.progress import Progress
from daemon1521.emulator.modem.shielding import ETX

SILENCE_THRESHOLD_DBM0 = -43.0
"""Frame level under which +VSD counts silence at the nominal sensitivity 128;
each 4 steps of sensitivity move it by 1 dB (higher = more sensitive)."""


class DetectionMixin:
    """Event detection and DLE event framing for :class:`~.voicemodem.VoiceModem`."""

    # -- detection ----------------------------------------------------------------------

    def _hear_dtmf(self, frame: np.ndarray, start: int, events: list[tuple[int, bytes]]) -> None:
        dtmf = self.personality.voice.dtmf
        wrapped = dtmf.framing == "wrapped"
        period = max(1, round(dtmf.repeat_ms * RATE / 1000)) if dtmf.repeat_ms else 0

        def repeats_until(limit: int) -> None:
            if self._held is None or not period:
                return
            key, due = self._held
            while due < limit:
                events.append((due - start, shielding.event(key)))
                due += period
            self._held = (key, due)

        for event in self._dtmf.feed(frame):
            repeats_until(event.sample)
            offset = event.sample - start
            if event.kind == "down":
                if self.meter is not None:
                    self.meter.on_key()
                if wrapped:
                    events.append((offset, shielding.event("/") + shielding.event(event.key)))
                    self._held = (event.key, event.sample + period)
                else:
                    events.append((offset, shielding.event(event.key)))
            elif wrapped:
                self._held = None
                events.append((offset, shielding.event("~")))
        repeats_until(start + len(frame))

    def _progress_events(
        self, progress: list[Progress], start: int, events: list[tuple[int, bytes]]
    ) -> None:
        v = self.personality.voice
        context = {"tx": "tx", "rx": "rx", "duplex": "rx"}.get(self._mode, "command")
        for item in progress:
            if item.kind == "busy":
                if "b" not in v.events or context not in v.busy_contexts:
                    continue
                code = "b"
            else:
                code = "d" if item.kind == "dialtone" else "r"
                if code not in v.events:
                    continue
            events.append((item.sample - start, shielding.event(code)))

    def _silence_reset(self) -> None:
        self._sil_voice = False
        self._sil_quiet_from = self._rx_count
        self._sil_told = False

    def _detect_silence(self, frame: np.ndarray, events: list[tuple[int, bytes]]) -> None:
        v = self.personality.voice
        if not v.silence_detection:
            return
        sds, sdi = (int(x) for x in self._params["+VSD"])
        if sdi == 0:
            return
        if not np.count_nonzero(frame):
            level = -np.inf  # digital silence, the common case: no arithmetic
        else:
            level = power_dbm0(float(np.mean(frame.astype(np.float64) ** 2)))
        threshold = SILENCE_THRESHOLD_DBM0 - (sds - 128) / 4
        if level >= threshold:
            self._sil_voice = True
            self._sil_quiet_from = self._rx_count
            self._sil_told = False
            return
        if self._sil_told or self._rx_count - self._sil_quiet_from < sdi * 0.1 * RATE:
            return
        self._sil_told = True
        code = "q" if self._sil_voice else "s"
        if code in v.events:
            events.append((FRAME, shielding.event(code)))

    def _check_inactivity(self) -> None:
        vit = int(self._params["+VIT"][0])
        if not vit or self._fclass != "8":
            return
        if self.clock.now() - self._last_host < vit * self.personality.voice.vit_unit:
            return
        # V.253 inactivity timer: back to data mode and on hook
        streaming = self._mode in ("tx", "rx", "duplex")
        self._end_activity()
        self._hang_up()
        self._fclass = "0"
        self._last_host = self.clock.now()
        if streaming:
            self._write(bytes((shielding.DLE, ETX)))
            self._final("OK")
