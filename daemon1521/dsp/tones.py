"""Tone synthesis: steady tones and cadenced call-progress tones.

Level convention (used by every module that speaks of dBm0 here): a
full-scale sine wave of int16 samples is +3.14 dBm0, the G.711 maximum, so a
sine of level L dBm0 has amplitude ``32767 * 10 ** ((L - 3.14) / 20)``
(0 dBm0 is an amplitude of about 22 700). The mean power of a 0 dBm0 sine,
:data:`DBM0_POWER`, is the reference that detectors measure levels against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RATE = 8000
FULL_SCALE = 32767
#: Level of a full-scale sine (ITU-T G.711).
FULL_SCALE_DBM0 = 3.14
#: Mean power (in squared int16 units) of a 0 dBm0 sine.
DBM0_POWER = (FULL_SCALE * 10 ** (-FULL_SCALE_DBM0 / 20)) ** 2 / 2


def amplitude(level_dbm0: float) -> float:
    """Peak amplitude of a sine at ``level_dbm0``."""
    return FULL_SCALE * 10 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20)


def power_dbm0(power: float | np.ndarray) -> float | np.ndarray:
    """Level in dBm0 of a mean power in squared int16 units (-inf for 0)."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.asarray(power, dtype=np.float64) / DBM0_POWER)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and clip float samples to int16."""
    return np.clip(np.rint(x), -32768, FULL_SCALE).astype(np.int16)


def sines(
    freqs: Sequence[float], amplitudes: Sequence[float], start: int, n: int, rate: int
) -> np.ndarray:
    """Float sum of sines sampled at indices ``start .. start+n-1`` (phase 0 at index 0)."""
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    idx = np.arange(n, dtype=np.float64)
    for f, a in zip(freqs, amplitudes, strict=True):
        # reduce the starting phase exactly, so long runs keep full precision
        phase0 = 2 * np.pi * ((f * start) % rate) / rate
        out += a * np.sin(phase0 + 2 * np.pi * f / rate * idx)
    return out


def tone(
    freqs: Sequence[float], seconds: float, level_dbm0: float = -10.0, rate: int = RATE
) -> np.ndarray:
    """``seconds`` of a steady tone, each frequency at ``level_dbm0`` (no freqs: silence)."""
    n = max(0, round(seconds * rate))
    a = amplitude(level_dbm0)
    return to_int16(sines(freqs, [a] * len(freqs), 0, n, rate))


class CadencedTone:
    """An endless call-progress tone read in pieces: dial, ringback, busy.

    ``cadence`` is a repeating list of ``(on_seconds, off_seconds)``; ``None``
    means continuous. The oscillator runs through the off periods, so the
    signal depends only on the position since :meth:`reset`, never on how it
    was read.
    """

    def __init__(
        self,
        freqs: Sequence[float],
        cadence: Sequence[tuple[float, float]] | None = None,
        level_dbm0: float = -10.0,
        rate: int = RATE,
    ) -> None:
        self.freqs = tuple(float(f) for f in freqs)
        self.rate = rate
        self.level_dbm0 = level_dbm0
        self._amp = amplitude(level_dbm0)
        self._bounds: np.ndarray | None = None
        self._period = 0
        if cadence is not None:
            edges: list[int] = []
            pos = 0
            for on, off in cadence:
                if on < 0 or off < 0:
                    raise ValueError(f"negative cadence element {(on, off)}")
                pos += round(on * rate)
                edges.append(pos)
                pos += round(off * rate)
                edges.append(pos)
            if pos == 0:
                raise ValueError("cadence has zero length")
            # [0, e0) on, [e0, e1) off, [e1, e2) on, ...
            self._bounds = np.asarray(edges, dtype=np.int64)
            self._period = pos
        self._pos = 0

    @property
    def position(self) -> int:
        """Samples read since construction or the last :meth:`reset`."""
        return self._pos

    def reset(self) -> None:
        """Start again at the beginning of the cadence (and of the first 'on')."""
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples."""
        if n < 0:
            raise ValueError(f"negative sample count {n}")
        start = self._pos
        self._pos += n
        x = sines(self.freqs, [self._amp] * len(self.freqs), start, n, self.rate)
        if self._bounds is not None:
            phase = (start + np.arange(n, dtype=np.int64)) % self._period
            segment = np.searchsorted(self._bounds, phase, side="right")
            x[segment % 2 == 1] = 0.0
        return to_int16(x)
