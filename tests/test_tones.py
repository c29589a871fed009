"""Tone synthesis: levels in dBm0, cadences, and reads that do not depend on chunking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.dsp.tones import (
    DBM0_POWER,
    CadencedTone,
    amplitude,
    power_dbm0,
    sines,
    tone,
)


def component_level(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Level in dBm0 of the sinusoid at ``freq`` in ``x`` (single DFT probe)."""
    n = np.arange(len(x))
    c = np.sum(x * np.cos(2 * np.pi * freq * n / rate))
    s = np.sum(x * np.sin(2 * np.pi * freq * n / rate))
    return float(power_dbm0(2 * (c * c + s * s) / len(x) ** 2))


def test_level_convention():
    # G.711: a full-scale sine is +3.14 dBm0
    assert amplitude(3.14) == pytest.approx(32767)
    assert amplitude(0.0) == pytest.approx(32767 * 10 ** (-3.14 / 20))
    assert pytest.approx(amplitude(0.0) ** 2 / 2) == DBM0_POWER
    assert power_dbm0(DBM0_POWER) == pytest.approx(0.0)


@pytest.mark.parametrize("level", [-30.0, -10.0, 0.0, 3.14])
def test_single_tone_level(level):
    x = tone([1000], 1.0, level)
    assert x.dtype == np.int16 and len(x) == 8000
    assert power_dbm0(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(level, abs=0.02)


def test_full_scale_tone_peaks_at_full_scale():
    x = tone([1000], 0.1, 3.14)
    assert x.max() == 32767


def test_each_component_at_the_level():
    x = tone([350, 440], 1.0, -13.0).astype(np.float64)
    assert component_level(x, 350) == pytest.approx(-13.0, abs=0.05)
    assert component_level(x, 440) == pytest.approx(-13.0, abs=0.05)


def test_default_level_is_minus_10():
    x = tone([425], 1.0).astype(np.float64)
    assert component_level(x, 425) == pytest.approx(-10.0, abs=0.05)


def test_no_frequencies_is_silence():
    x = tone([], 0.25)
    assert x.dtype == np.int16 and len(x) == 2000 and not x.any()


def test_duration_rounds_to_samples_and_rate_is_honoured():
    assert len(tone([425], 0.0201)) == 161
    assert len(tone([425], 0.5, rate=16000)) == 8000
    assert len(tone([425], 0.0)) == 0


def test_continuous_cadenced_tone_equals_tone():
    ct = CadencedTone([425], None, -12.0)
    assert np.array_equal(ct.read(12345), tone([425], 12345 / 8000, -12.0))


def on_mask(x: np.ndarray, block: int = 40) -> np.ndarray:
    """Per block of samples: whether the tone is sounding."""
    blocks = x[: len(x) // block * block].reshape(-1, block)
    return np.abs(blocks).max(axis=1) > 0


def test_busy_cadence():
    ct = CadencedTone([425], [(0.5, 0.5)], -10.0)
    x = ct.read(8000 * 3)
    mask = on_mask(x)
    expected = np.tile(np.r_[np.ones(100, bool), np.zeros(100, bool)], 3)
    assert np.array_equal(mask, expected)


def test_ringback_cadence_and_position():
    ct = CadencedTone([425], [(1.0, 4.0)], -10.0)
    x = ct.read(8000 * 6)
    assert ct.position == 48000
    assert np.abs(x[:8000]).max() > 0
    assert not x[8000:40000].any()
    assert np.abs(x[40000:48000]).max() > 0


def test_multi_element_cadence():
    ct = CadencedTone([400], [(0.2, 0.1), (0.3, 0.4)])
    x = ct.read(8000)
    mask = on_mask(x)  # 5 ms blocks
    expected = np.r_[np.ones(40, bool), np.zeros(20, bool), np.ones(60, bool), np.zeros(80, bool)]
    assert np.array_equal(mask, expected)


def test_tone_is_gated_not_restarted():
    # the oscillator runs through the off periods: the 'on' samples equal a
    # continuous tone's samples at the same positions
    gated = CadencedTone([425, 450], [(0.25, 0.25)], -10.0).read(8000)
    steady = tone([425, 450], 1.0, -10.0)
    on = np.r_[np.ones(2000, bool), np.zeros(2000, bool), np.ones(2000, bool), np.zeros(2000, bool)]
    assert np.array_equal(gated[on], steady[on])
    assert not gated[~on].any()


def test_reset_restarts_cadence():
    ct = CadencedTone([425], [(0.5, 0.5)])
    first = ct.read(6000)
    ct.reset()
    assert ct.position == 0
    assert np.array_equal(ct.read(6000), first)


def test_read_zero_and_negative():
    ct = CadencedTone([425])
    assert len(ct.read(0)) == 0
    with pytest.raises(ValueError):
        ct.read(-1)


def test_bad_cadences():
    with pytest.raises(ValueError):
        CadencedTone([425], [(0.0, 0.0)])
    with pytest.raises(ValueError):
        CadencedTone([425], [(-0.1, 0.5)])


def test_long_running_tone_keeps_its_phase():
    # a day in, the samples are still those of the ideal sine
    day = 8000 * 86400
    a = amplitude(-10.0)
    x = sines([425.5], [a], day, 200, 8000)
    n = np.arange(day, day + 200)
    ideal = a * np.sin(2 * np.pi * ((425.5 * n) % 8000) / 8000)
    assert np.abs(x - ideal).max() < 1e-6 * a


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 24000), max_size=12),
    cadence=st.sampled_from([None, [(0.5, 0.5)], [(1.0, 4.0)], [(0.2, 0.2), (0.2, 1.0)]]),
)
def test_reads_do_not_depend_on_chunking(cuts, cadence):
    whole = CadencedTone([425], cadence, -15.0).read(24000)
    ct = CadencedTone([425], cadence, -15.0)
    bounds = [0, *sorted(cuts), 24000]
    pieces = [ct.read(b - a) for a, b in itertools.pairwise(bounds)]
    assert np.array_equal(np.concatenate(pieces), whole)
