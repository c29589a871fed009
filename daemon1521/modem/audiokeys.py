"""Key presses found in the received audio, for chips that report none while recording.

Some MultiTech units send no DLE events during ``+VRX`` (VOICE-MODEMS.md
section 3), so for profiles that say so the voice layer runs its own DTMF
detector on what it records. Those chips still report keys in command mode
and during ``+VTX``, and other units of the same family report them during
``+VRX`` as well, so one press can reach the host twice: as the chip's digit
and as tones in the audio, or as the chip's digit between two recordings and
then as the tail of the tone at the start of the next one. :class:`AudioKeys`
keeps one detector for the whole call (a press held across two recordings
stays one press) and merges both sources into one key per press.

Positions are counted in samples of analysed audio, not in clock time: audio
arrives in bursts, and an emulated line runs many times faster than real
time, so only the stream itself dates a press reliably.
"""

from __future__ import annotations

import numpy as np

from daemon1521.dsp.dtmf import DtmfDetector

RATE = 8000
SAME_PRESS_SECONDS = 0.06
"""Largest distance, in analysed audio, between the chip's report of a key and
the detector's press of that key for the two to be one press. The detector
needs about 30 ms of tone (also at the start of a recording that begins
mid-press); two presses of one key are at least 40 ms of silence and 40 ms of
tone apart (ITU-T Q.24), so they never fall inside it."""


class AudioKeys:
    """One call's key presses from its received audio, merged with the chip's reports."""

    def __init__(self, rate: int = RATE) -> None:
        self._detector = DtmfDetector(rate)
        self._same_press = round(SAME_PRESS_SECONDS * rate)
        self._position = 0
        self._chip: tuple[str, int] | None = None
        """The chip's latest key, at the position it came, until the audio gives it too."""
        self._heard: tuple[str, int] | None = None
        """The detector's latest press, until the chip reports it too."""

    def audio(self, samples: np.ndarray) -> list[str]:
        """Presses that begin in the next received samples, leaving out those the chip gave."""
        keys: list[str] = []
        for event in self._detector.feed(samples):
            if event.kind != "down":
                continue
            chip = self._chip
            if chip and chip[0] == event.key and event.sample - chip[1] <= self._same_press:
                self._chip = None
                continue
            self._heard = (event.key, event.sample)
            keys.append(event.key)
        self._position += len(samples)
        return keys

    def chip_key(self, key: str) -> bool:
        """Whether a key the chip reported is a new press (not one the audio already gave)."""
        heard = self._heard
        if heard and heard[0] == key and self._position - heard[1] <= self._same_press:
            self._heard = None
            return False
        self._chip = (key, self._position)
        return True
