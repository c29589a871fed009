"""Hang-up evidence, from the chip's events and from the audio itself.

Real chips disagree on what they report when the far end hangs up (a busy
tone reported once or repeatedly, a loop-current break, a dial tone, or
nothing at all on Conexant ACF, which also ignores +VSD). The voice layer
therefore listens to the received audio too: the exchange's 425 Hz busy or
congestion cadence, a steady dial tone, and long silence, and reports one
:class:`HungUp` whatever the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon1521.dsp.dtmf import ToneDetector
from daemon1521.modem.dle import DleEvent
from daemon1521.modem.profile import Capabilities

RATE = 8000
SILENCE_PEAK = 150
"""A received chunk whose peak stays below this is silence (about -45 dBm0)."""
BUSY_ON = (0.15, 0.85)
"""Seconds a busy/congestion burst lasts (Iran: 0.5/0.5 busy, 0.25/0.25 congestion)."""
BUSY_BURSTS = 2
"""Bursts of cadenced tone that make a hang-up: one could be noise."""
DIAL_TONE_SECONDS = 2.0
"""A steady tone this long is dial tone: the exchange has cleared the call."""
BLOCK_SAMPLES = 800
"""Received audio is judged in blocks of 100 ms: a listening line receives a
chunk every 20 ms, and judging each alone cost more in numpy calls than the
judgement itself; a hang-up verdict may well come up to 100 ms later."""
CHIP_BUSY_REPORTS = 2
"""Busy tone is reported repeatedly while it lasts; two reports make it certain."""


@dataclass(frozen=True)
class HungUp:
    """The far end has gone; ``reason`` says how we know."""

    reason: str  # busy_tone, loop_break, dial_tone, silence, port_failure


class LineWatch:
    """Collects hang-up evidence for one call; pure apart from its sample counter."""

    def __init__(
        self,
        capabilities: Capabilities,
        *,
        tone_hz: float = 425.0,
        silence_hangup: float = 30.0,
        chip_silence: bool = False,
    ) -> None:
        self.capabilities = capabilities
        self.chip_silence = chip_silence
        """DLE s / DLE q end the call: the chip was told the silence limit with +VSD."""
        self.tone_hz = tone_hz
        self.silence_hangup = silence_hangup
        self.reset()

    def reset(self) -> None:
        self.hung_up: HungUp | None = None
        self._busy_reports = 0
        self._detector = ToneDetector(self.tone_hz)
        self._samples = 0
        self._tone_on_at: int | None = None
        self._bursts = 0
        self._silent_samples = 0
        self._block: list[np.ndarray] = []
        self._block_len = 0

    def restart_audio(self) -> None:
        """A new listening period: audio analysis starts afresh (the chip's counts stay)."""
        self._detector.reset()
        self._block.clear()
        self._block_len = 0
        self._samples = 0
        self._tone_on_at = None
        self._bursts = 0
        self._silent_samples = 0

    def chip_event(self, event: DleEvent, *, playing: bool = False) -> HungUp | None:
        """Judge one DLE event from the modem."""
        code = event.code
        events = self.capabilities.hangup_events
        if code == "b" and "busy" in events:
            self._busy_reports += 1
            if self._busy_reports >= CHIP_BUSY_REPORTS:
                return self._decide("busy_tone")
        elif code == "l" and "loop_break" in events:
            return self._decide("loop_break")
        elif code == "d" and "dial_tone" in events:
            if not (playing and self.capabilities.false_dle_d_during_play):
                return self._decide("dial_tone")
        elif code in ("s", "q") and self.chip_silence:
            return self._decide("silence")
        return None

    def audio(self, samples: np.ndarray) -> HungUp | None:
        """Judge received audio (decoded, 8 kHz), a block of :data:`BLOCK_SAMPLES` at a time."""
        if self.hung_up is not None:
            return self.hung_up
        self._block.append(samples)
        self._block_len += len(samples)
        if self._block_len < BLOCK_SAMPLES:
            return None
        block = self._block[0] if len(self._block) == 1 else np.concatenate(self._block)
        self._block.clear()
        self._block_len = 0
        return self._judge(block)

    def _judge(self, samples: np.ndarray) -> HungUp | None:
        for edge in self._detector.feed(samples):
            if edge.kind == "on":
                self._tone_on_at = edge.sample
            elif self._tone_on_at is not None:
                length = (edge.sample - self._tone_on_at) / RATE
                self._tone_on_at = None
                if BUSY_ON[0] <= length <= BUSY_ON[1]:
                    self._bursts += 1
                    if self._bursts >= BUSY_BURSTS:
                        return self._decide("busy_tone")
                else:
                    self._bursts = 0
        self._samples += len(samples)
        steady = self._tone_on_at is not None and self._samples - self._tone_on_at
        if steady and steady / RATE >= DIAL_TONE_SECONDS:
            return self._decide("dial_tone")
        if len(samples) and int(np.abs(samples.astype(np.int32)).max()) < SILENCE_PEAK:
            self._silent_samples += len(samples)
            if self._silent_samples / RATE >= self.silence_hangup:
                return self._decide("silence")
        else:
            self._silent_samples = 0
        return None

    def port_failed(self) -> HungUp:
        return self._decide("port_failure")

    def _decide(self, reason: str) -> HungUp:
        if self.hung_up is None:
            self.hung_up = HungUp(reason)
        return self.hung_up
