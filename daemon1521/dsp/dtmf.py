"""DTMF generation and detection, and single-frequency call-progress tone detection.

Key presses travel through the emulated exchange, and later the real lines, as
dual tones, so both ends need a generator and a detector that agree with ITU-T
Q.23 / Q.24: presses of 40 ms or more are detected, bursts of 20 ms or less
are not, a gap of 40 ms splits two presses of the same key, and a 10 ms
interruption does not.

Both detectors work on a fixed grid of overlapping analysis windows counted
from the first sample ever fed, so their output does not depend on how the
input was chunked: feeding a stream in one piece or sample by sample gives
the same events at the same sample indices.

DTMF detection, per 20 ms window every 5 ms:

- the power at each of the eight DTMF frequencies, taken as the best of
  three single-frequency DFT probes (nominal and +/-1.5 %, the Q.24 frequency
  tolerance), all windows at once as one matrix product;
- one row and one column tone, each at least -36 dBm0 and 6 dB above every
  other tone of its group;
- twist (column level minus row level) within +/-10 dB, so that 8 dB of
  twist is accepted even in noise;
- the two tones carry at least 75 % of the window's power: speech, noise and
  partly filled windows fail this, which is also what makes the duration
  limits sharp (a window must be three-quarters tone);
- no second harmonic within 10 dB of either fundamental (speech rejection),
  measured by a least-squares fit of both tones and both harmonics together,
  because the second harmonics of the row tones lie within 70 Hz of the
  column tones and a plain probe would mistake the column tone's leakage for
  a harmonic;
- four consecutive valid windows of one key make a press (``down``), six
  windows without it a release (``up``).

Levels follow the convention of :mod:`daemon1521.dsp.tones`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from daemon1521.dsp.tones import DBM0_POWER, RATE, amplitude, sines, to_int16

KEYS = "123A456B789C*0#D"
ROW_FREQS = (697, 770, 852, 941)
COL_FREQS = (1209, 1336, 1477, 1633)
DTMF_FREQS: dict[str, tuple[int, int]] = {
    key: (ROW_FREQS[i // 4], COL_FREQS[i % 4]) for i, key in enumerate(KEYS)
}

# --- DTMF detector tuning (at 8000 Hz; scaled for other rates) ----------------
DTMF_WINDOW_S = 0.020
DTMF_HOP_S = 0.005
DTMF_OFFSETS = (-0.015, 0.0, 0.015)
DTMF_MIN_TONE_DBM0 = -36.0
DTMF_DOMINANCE_DB = 6.0
DTMF_MAX_TWIST_DB = 10.0
DTMF_MIN_PURITY = 0.75
DTMF_HARMONIC_DB = 10.0
DTMF_DOWN_WINDOWS = 4
DTMF_UP_WINDOWS = 6

# --- call-progress tone detector tuning ----------------------------------------
TONE_WINDOW_S = 0.032
TONE_HOP_S = 0.010
TONE_OFFSETS = (-0.015, 0.0, 0.015)
TONE_MIN_PURITY = 0.7
TONE_ON_WINDOWS = 6
TONE_OFF_WINDOWS = 4


def dtmf_tone(
    key: str,
    seconds: float,
    level_dbm0: float = -7.0,
    twist_db: float = 0.0,
    rate: int = RATE,
) -> np.ndarray:
    """``seconds`` of the dual tone of ``key``.

    ``level_dbm0`` is the power of the pair together (so 0 dBm0 never clips);
    ``twist_db`` is the column (high-group) tone's level minus the row's.
    """
    try:
        low, high = DTMF_FREQS[key.upper()]
    except KeyError:
        raise ValueError(f"not a DTMF key: {key!r}") from None
    high_share = 1.0 / (1.0 + 10 ** (-twist_db / 10))
    total = amplitude(level_dbm0)
    amps = [total * np.sqrt(1.0 - high_share), total * np.sqrt(high_share)]
    n = max(0, round(seconds * rate))
    return to_int16(sines([low, high], amps, 0, n, rate))


@dataclass(frozen=True)
class DtmfEvent:
    """A key pressed (``down``) or released (``up``), at the detector input's
    sample index where that became certain."""

    key: str
    kind: Literal["down", "up"]
    sample: int


@dataclass(frozen=True)
class ToneEvent:
    """A call-progress tone starting (``on``) or stopping (``off``), at the
    estimated sample index of that edge in the detector's input."""

    kind: Literal["on", "off"]
    sample: int


class _Windows:
    """Cuts a stream into windows of ``size`` samples ending every ``hop``
    samples (first end at ``hop``, silence assumed before the stream)."""

    def __init__(self, size: int, hop: int) -> None:
        if not 0 < hop <= size:
            raise ValueError(f"bad window {size} / hop {hop}")
        self.size = size
        self.hop = hop
        # constants of the shape, reused on every push: frames are short and
        # building these arrays anew cost as much as the silent path itself
        self._steps = [hop * np.arange(m, dtype=np.int64) for m in range(9)]
        self._silent_windows: dict[int, np.ndarray] = {}
        self._zeros_kept = np.zeros(4 * size, dtype=np.float64)
        self._zeros_kept.flags.writeable = False
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(self.size - self.hop, dtype=np.float64)
        self._buf_start = -(self.size - self.hop)
        self._next_end = self.hop
        self.count = 0
        self.silent = False
        """Whether the windows of the last push were all exact zeros."""
        self._zeros = self.size - self.hop  # trailing zero samples (the assumed silence first)
        self._none = (np.empty((0, self.size)), np.empty(0, dtype=np.int64))

    def _zero_windows(self, m: int) -> np.ndarray:
        windows = self._silent_windows.get(m)
        if windows is None:
            windows = np.zeros((m, self.size), dtype=np.float64)
            windows.flags.writeable = False
            if m <= 8:
                self._silent_windows[m] = windows
        return windows

    def _zero_buf(self, length: int) -> np.ndarray:
        if length <= len(self._zeros_kept):
            return self._zeros_kept[:length]
        return np.zeros(length, dtype=np.float64)

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows completed by ``samples`` (one per row) and their end indices.

        The windows are a read-only strided view of the buffer, built directly:
        detectors push one 20 ms frame at a time, and the general-purpose
        ``sliding_window_view`` cost more than the detection it fed.
        """
        x = np.asarray(samples).ravel()
        n = len(x)
        self.count += n
        if n and not np.count_nonzero(x):
            self._zeros += n
            if self._zeros >= self.count - self._buf_start:
                self._buf = self._zero_buf(self.count - self._buf_start)  # no copying zeros
            else:
                self._buf = np.concatenate((self._buf, np.zeros(n)))
        elif n:
            self._zeros = n - 1 - int(np.flatnonzero(x)[-1])
            self._buf = np.concatenate((self._buf, x.astype(np.float64, copy=False)))
        self.silent = False
        if self.count < self._next_end:
            return self._none
        m = (self.count - self._next_end) // self.hop + 1
        first = self._next_end - self.size
        # every window in digital silence (a quiet line, or an emulated one):
        # a zero view, and the detectors skip the maths (see :attr:`silent`)
        self.silent = first >= self.count - self._zeros
        if self.silent:
            windows = self._zero_windows(m)
        else:
            item = self._buf.itemsize
            windows = np.ndarray(
                (m, self.size),
                dtype=np.float64,
                buffer=self._buf,
                offset=(first - self._buf_start) * item,
                strides=(self.hop * item, item),
            )
            windows.flags.writeable = False
        steps = self._steps[m] if m < len(self._steps) else self.hop * np.arange(m, dtype=np.int64)
        ends = self._next_end + steps
        self._next_end += m * self.hop
        keep_from = self._next_end - self.size
        self._buf = self._buf[keep_from - self._buf_start :]
        self._buf_start = keep_from
        return windows, ends


def _probe_basis(freqs: Sequence[float], size: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and sine columns (size x len(freqs)) of single-frequency DFT probes."""
    n = np.arange(size, dtype=np.float64)[:, None]
    w = 2 * np.pi * np.asarray(freqs, dtype=np.float64)[None, :] / rate
    return np.cos(w * n), np.sin(w * n)


def _probe_power(windows: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Mean power of the sinusoid at each probe frequency, per window.

    ``basis`` holds the probes' cosine columns, then their sine columns (one
    matrix product per push: the windows are few and short, so each numpy
    call costs more than its arithmetic).
    """
    size = windows.shape[1]
    k = basis.shape[1] // 2
    cs = windows @ basis
    cs *= cs
    return (cs[:, :k] + cs[:, k:]) * (2.0 / (size * size))


def _mean_power(windows: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", windows, windows) / windows.shape[1]


def _too_quiet(mean: np.ndarray, min_power: float) -> bool:
    """Whether no window (of mean power ``mean``) can hold a sinusoid of
    ``min_power``: a probe's power is at most twice the window's mean power
    (Cauchy-Schwarz), so this is exact, and it spares the probes on the
    silence that fills most of a call."""
    return bool(2.0 * mean.max() < min_power)


class DtmfDetector:
    """Streaming DTMF detector: feed samples, get key down/up events."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        size = round(DTMF_WINDOW_S * rate)
        self._win = _Windows(size, round(DTMF_HOP_S * rate))
        freqs = [f * (1 + o) for f in (*ROW_FREQS, *COL_FREQS) for o in DTMF_OFFSETS]
        self._probe_freqs = np.asarray(freqs)
        self._basis = np.hstack(_probe_basis(freqs, size, rate))
        self._fits: dict[tuple[int, int], np.ndarray] = {}
        self._min_power = DBM0_POWER * 10 ** (DTMF_MIN_TONE_DBM0 / 10)
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next sample fed is sample 0 again."""
        self._win.reset()
        self._key: str | None = None
        self._cand = -1
        self._run = 0
        self._miss = 0

    @property
    def key(self) -> str | None:
        """The key currently held down, if any."""
        return self._key

    def feed(self, samples: np.ndarray) -> list[DtmfEvent]:
        """Take the next samples of the stream; return the presses and releases they complete."""
        windows, ends = self._win.push(samples)
        if len(ends) == 0:
            return []
        if self._key is None and self._win.silent:
            return self._nothing(len(ends))
        mean = _mean_power(windows)
        if self._key is None and _too_quiet(mean, self._min_power):
            return self._nothing(len(ends))
        keys = self._classify(windows, mean)
        if self._key is None and not (keys >= 0).any():
            return self._nothing(len(keys))
        events: list[DtmfEvent] = []
        for end, k in zip(ends.tolist(), keys.tolist(), strict=True):
            if k == self._cand:
                self._run += 1
            else:
                self._cand, self._run = k, 1
            if self._key is not None:
                if k >= 0 and KEYS[k] == self._key:
                    self._miss = 0
                else:
                    self._miss += 1
                    if self._miss >= DTMF_UP_WINDOWS:
                        events.append(DtmfEvent(self._key, "up", end))
                        self._key = None
            if self._key is None and self._cand >= 0 and self._run >= DTMF_DOWN_WINDOWS:
                self._key = KEYS[self._cand]
                self._miss = 0
                events.append(DtmfEvent(self._key, "down", end))
        return events

    def _nothing(self, windows: int) -> list[DtmfEvent]:
        """What ``windows`` windows without a key do while no key is down."""
        self._cand = -1
        self._run += windows
        return []

    def _classify(self, windows: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Key index (into KEYS) per window, -1 where no valid DTMF.

        ``mean`` is each window's mean power. The conditions that speech and
        call-progress tones fail (both tones loud enough and together most of
        the window's power) are checked first, on the strongest row and column
        tone alone: most windows that are not silent are one of those, and
        this spares them the rest.
        """
        m = len(windows)
        probes = _probe_power(windows, self._basis).reshape(m, 8, len(DTMF_OFFSETS))
        power = probes.max(axis=2)
        rows, cols = power[:, :4], power[:, 4:]
        pr = rows.max(axis=1)
        pc = cols.max(axis=1)
        ok = (pr >= self._min_power) & (pc >= self._min_power)
        ok &= pr + pc >= DTMF_MIN_PURITY * mean
        if not ok.any():
            return np.full(m, -1)
        row = rows.argmax(axis=1)
        col = cols.argmax(axis=1)
        dominance = 10 ** (DTMF_DOMINANCE_DB / 10)
        twist = 10 ** (DTMF_MAX_TWIST_DB / 10)
        ok &= pr >= dominance * np.sort(rows, axis=1)[:, -2]
        ok &= pc >= dominance * np.sort(cols, axis=1)[:, -2]
        ok &= (pc <= twist * pr) & (pr <= twist * pc)
        keys = np.where(ok, row * 4 + col, -1)
        if ok.any():
            idx = np.arange(m)
            best_offset = probes.argmax(axis=2)
            n_off = len(DTMF_OFFSETS)
            row_probe = row * n_off + best_offset[idx, row]
            col_probe = (4 + col) * n_off + best_offset[idx, 4 + col]
            for i in np.flatnonzero(ok):
                if not self._harmonics_low(windows[i], int(row_probe[i]), int(col_probe[i])):
                    keys[i] = -1
        return keys

    def _harmonics_low(self, window: np.ndarray, row_probe: int, col_probe: int) -> bool:
        """True when neither tone has a second harmonic within DTMF_HARMONIC_DB."""
        pinv = self._fits.get((row_probe, col_probe))
        if pinv is None:
            f = self._probe_freqs
            freqs = [f[row_probe], f[col_probe], 2 * f[row_probe], 2 * f[col_probe]]
            cos, sin = _probe_basis(freqs, len(window), self.rate)
            pinv = np.linalg.pinv(np.hstack((cos, sin)))
            self._fits[(row_probe, col_probe)] = pinv
        coef = pinv @ window
        p = coef[:4] ** 2 + coef[4:] ** 2
        limit = 10 ** (-DTMF_HARMONIC_DB / 10)
        return bool(p[2] <= limit * p[0] and p[3] <= limit * p[1])


class ToneDetector:
    """Streaming detector of one call-progress tone (e.g. 425 Hz) as on/off edges.

    A window counts as tone when the tone is at least ``min_level_dbm0`` and
    carries 70 % of the window's power, which rejects DTMF, speech and noise.
    The tone must last about 60 ms to be reported. Edges are reported once
    certain but dated where they happened (within about 10 ms), so cadences
    can be measured from the event samples.
    """

    def __init__(self, freq: float, rate: int = RATE, min_level_dbm0: float = -35.0) -> None:
        self.freq = float(freq)
        self.rate = rate
        size = round(TONE_WINDOW_S * rate)
        hop = round(TONE_HOP_S * rate)
        self._win = _Windows(size, hop)
        self._basis = np.hstack(_probe_basis([freq * (1 + o) for o in TONE_OFFSETS], size, rate))
        self._min_power = DBM0_POWER * 10 ** (min_level_dbm0 / 10)
        # a window is valid when about TONE_MIN_PURITY of it is tone, so the
        # first valid window ends that far into the tone (on average half a
        # hop later), and the last one ends that far before its end
        self._on_lag = round(TONE_MIN_PURITY * size + hop / 2)
        self._off_lag = round((1 - TONE_MIN_PURITY) * size - hop / 2)
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next sample fed is sample 0 again."""
        self._win.reset()
        self._on = False
        self._run = 0
        self._run_first_end = 0
        self._last_valid_end = 0

    @property
    def on(self) -> bool:
        """Whether the tone is present (as far as confirmed)."""
        return self._on

    def feed(self, samples: np.ndarray) -> list[ToneEvent]:
        """Take the next samples of the stream; return the edges they confirm."""
        windows, ends = self._win.push(samples)
        if len(ends) == 0:
            return []
        if not self._on and self._win.silent:
            self._run = 0  # what every window below the level does while off
            return []
        mean = _mean_power(windows)
        if not self._on and _too_quiet(mean, self._min_power):
            self._run = 0
            return []
        power = _probe_power(windows, self._basis).max(axis=1)
        valid = (power >= self._min_power) & (power >= TONE_MIN_PURITY * mean)
        events: list[ToneEvent] = []
        for end, v in zip(ends.tolist(), valid.tolist(), strict=True):
            if v == self._on:
                self._run = 0
                if v:
                    self._last_valid_end = end
                continue
            if self._run == 0:
                self._run_first_end = end
            self._run += 1
            if v:
                self._last_valid_end = end
            if not self._on and self._run >= TONE_ON_WINDOWS:
                self._on, self._run = True, 0
                events.append(ToneEvent("on", max(0, self._run_first_end - self._on_lag)))
            elif self._on and self._run >= TONE_OFF_WINDOWS:
                self._on, self._run = False, 0
                events.append(ToneEvent("off", self._last_valid_end - self._off_lag))
        return events
