"""DTMF generation and detection, and call-progress tone detection (ITU-T Q.23/Q.24)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.dsp import codecs
from daemon1521.dsp.dtmf import (
    DTMF_FREQS,
    KEYS,
    DtmfDetector,
    DtmfEvent,
    ToneDetector,
    ToneEvent,
    dtmf_tone,
)
from daemon1521.dsp.tones import CadencedTone, amplitude, power_dbm0, tone

RATE = 8000

PERSIAN_SENTENCES = [
    "به سامانه پرداخت قبض برق خوش آمدید",
    "لطفا شناسه قبض سیزده رقمی را وارد کنید و در پایان کلید مربع را فشار دهید",
    "مبلغ قابل پرداخت یک میلیون و دویست و سی و چهار هزار و پانصد و شصت و هفت ریال است",
    "برای پرداخت با کارت بانکی عدد یک و برای بازگشت عدد دو را فشار دهید",
    "شماره کارت شانزده رقمی خود را وارد کنید",
    "رمز دوم کارت را وارد کنید",
    "صفر یک دو سه چهار پنج شش هفت هشت نه",
    "پرداخت شما با موفقیت انجام شد. با تشکر از تماس شما، خدانگهدار",
]
#: espeak-ng voices (Persian with other speakers' timbres) and pitches
VOICES = [("fa", 50), ("fa+f3", 80), ("fa+m3", 20), ("fa+klatt", 70)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.int16)


def with_noise(x: np.ndarray, snr_db: float, signal_power: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, np.sqrt(signal_power / 10 ** (snr_db / 10)), len(x))
    return np.clip(np.rint(x + noise), -32768, 32767).astype(np.int16)


def detect(x: np.ndarray) -> list[DtmfEvent]:
    return DtmfDetector().feed(x)


def presses(events: list[DtmfEvent]) -> str:
    """The keys pressed, checking that downs and ups alternate properly."""
    keys = []
    held = None
    for e in events:
        if e.kind == "down":
            assert held is None, events
            held = e.key
            keys.append(e.key)
        else:
            assert held == e.key, events
            held = None
    assert held is None, events
    return "".join(keys)


def component_power(x: np.ndarray, freq: float) -> float:
    n = np.arange(len(x))
    c = np.sum(x * np.cos(2 * np.pi * freq * n / RATE))
    s = np.sum(x * np.sin(2 * np.pi * freq * n / RATE))
    return 2 * (c * c + s * s) / len(x) ** 2


@pytest.fixture(scope="module")
def persian_speech(tmp_path_factory) -> list[np.ndarray]:
    """Persian sentences spoken by espeak-ng, at 8 kHz, at about -16 dBm0."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for the speech tests (apt-get install espeak-ng)")
    folder: Path = tmp_path_factory.mktemp("speech")
    out = []
    for i, text in enumerate(PERSIAN_SENTENCES):
        voice, pitch = VOICES[i % len(VOICES)]
        wav = folder / f"s{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        x, rate = soundfile.read(wav, dtype="float64")
        y = soxr.resample(x, rate, RATE)
        y *= amplitude(-16.0) / np.sqrt(2) / np.sqrt(np.mean(y**2))
        out.append(np.clip(np.rint(y), -32768, 32767).astype(np.int16))
    return out


# --- generation ---------------------------------------------------------------


def test_keypad_table():
    assert KEYS == "123A456B789C*0#D"
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    for i, key in enumerate(KEYS):
        assert DTMF_FREQS[key] == (rows[i // 4], cols[i % 4])


@pytest.mark.parametrize("twist", [-6.0, 0.0, 4.0])
def test_dtmf_tone_levels_and_twist(twist):
    x = dtmf_tone("5", 1.0, -10.0, twist).astype(np.float64)
    assert len(x) == RATE
    low, high = component_power(x, 770), component_power(x, 1336)
    assert float(power_dbm0(low + high)) == pytest.approx(-10.0, abs=0.05)
    assert 10 * np.log10(high / low) == pytest.approx(twist, abs=0.05)


def test_dtmf_tone_at_0_dbm0_does_not_clip():
    for twist in (-8.0, 0.0, 8.0):
        x = dtmf_tone("D", 0.5, 0.0, twist)
        assert np.abs(x.astype(np.int32)).max() < 32767


def test_dtmf_tone_rejects_unknown_key():
    with pytest.raises(ValueError, match="E"):
        dtmf_tone("E", 0.1)
    assert np.array_equal(dtmf_tone("a", 0.05), dtmf_tone("A", 0.05))


# --- detection ----------------------------------------------------------------


@pytest.mark.parametrize("level", [-25.0, -20.0, -10.0, -3.0, 0.0])
@pytest.mark.parametrize("twist", [-6.0, 0.0, 6.0])
def test_every_key_at_every_level_and_twist(level, twist):
    x = np.concatenate(
        [np.concatenate([dtmf_tone(k, 0.06, level, twist), silence(0.06)]) for k in KEYS]
    )
    assert presses(detect(x)) == KEYS


@pytest.mark.parametrize("level", [-25.0, -15.0, -5.0])
@pytest.mark.parametrize("twist", [-6.0, 0.0, 6.0])
def test_every_key_in_white_noise_at_15_db_snr(level, twist):
    parts = [np.concatenate([dtmf_tone(k, 0.05, level, twist), silence(0.05)]) for k in KEYS]
    clean = np.concatenate([silence(0.1), *parts])
    power = float(np.mean(dtmf_tone("1", 1.0, level, twist).astype(np.float64) ** 2))
    noisy = with_noise(clean.astype(np.float64), 15.0, power, seed=int(-level * 10 + twist + 100))
    assert presses(detect(noisy)) == KEYS


@pytest.mark.parametrize("codec", ["u8", "alaw", "ulaw"])
def test_keys_through_modem_codecs(codec):
    x = np.concatenate([np.concatenate([dtmf_tone(k, 0.05, -20.0), silence(0.05)]) for k in KEYS])
    assert presses(detect(codecs.decode(codecs.encode(x, codec), codec))) == KEYS


@pytest.mark.parametrize("twist", [-8.0, 8.0])
def test_twist_of_8_db_is_accepted_even_in_noise(twist):
    parts = [np.concatenate([dtmf_tone(k, 0.05, -20.0, twist), silence(0.05)]) for k in KEYS]
    clean = np.concatenate([silence(0.1), *parts]).astype(np.float64)
    power = float(amplitude(-20.0) ** 2 / 2)
    assert presses(detect(clean.astype(np.int16))) == KEYS
    assert presses(detect(with_noise(clean, 15.0, power, seed=int(twist) + 50))) == KEYS


@pytest.mark.parametrize("twist", [-12.0, 12.0])
def test_excessive_twist_is_rejected(twist):
    assert detect(dtmf_tone("9", 0.3, -10.0, twist)) == []


@pytest.mark.parametrize("offset", range(0, 40, 7))
def test_40_ms_press_is_detected_and_20_ms_is_not(offset):
    for key in KEYS:
        lead = silence(0.1 + offset / RATE)
        long = np.concatenate([lead, dtmf_tone(key, 0.040), silence(0.1)])
        short = np.concatenate([lead, dtmf_tone(key, 0.020), silence(0.1)])
        assert presses(detect(long)) == key
        assert detect(short) == []


def test_40_ms_gap_splits_two_presses_of_one_key():
    x = np.concatenate(
        [silence(0.05), dtmf_tone("5", 0.05), silence(0.04), dtmf_tone("5", 0.05), silence(0.1)]
    )
    assert presses(detect(x)) == "55"


def test_fast_dialling_sequence():
    digits = "0912345678#*ABCD"
    x = np.concatenate([np.concatenate([dtmf_tone(k, 0.04), silence(0.04)]) for k in digits])
    assert presses(detect(x)) == digits


def test_key_change_without_a_gap():
    x = np.concatenate([dtmf_tone("1", 0.1), dtmf_tone("2", 0.1), silence(0.1)])
    events = detect(x)
    assert [(e.key, e.kind) for e in events] == [
        ("1", "down"),
        ("1", "up"),
        ("2", "down"),
        ("2", "up"),
    ]


def test_event_timing_and_held_key():
    det = DtmfDetector()
    x = np.concatenate([silence(0.1), dtmf_tone("#", 0.5)])
    events = det.feed(x)
    assert det.key == "#"
    (down,) = events
    assert down == DtmfEvent("#", "down", down.sample)
    assert 800 + 160 <= down.sample <= 800 + 480  # within 20-60 ms of the onset
    (up,) = det.feed(silence(0.2))
    assert up.kind == "up" and up.key == "#"
    assert 4800 <= up.sample <= 4800 + 480
    assert det.key is None


def test_long_press_is_one_press_and_short_dropout_does_not_split():
    x = np.concatenate([dtmf_tone("7", 1.0), silence(0.01), dtmf_tone("7", 0.5), silence(0.1)])
    assert presses(detect(x)) == "7"


def test_reset_restarts_sample_count():
    det = DtmfDetector()
    x = np.concatenate([silence(0.1), dtmf_tone("3", 0.1), silence(0.1)])
    first = det.feed(x)
    det.reset()
    assert det.feed(x) == first
    det.feed(dtmf_tone("4", 0.1))
    assert det.key == "4"
    det.reset()
    assert det.key is None


def test_empty_and_tiny_feeds():
    det = DtmfDetector()
    assert det.feed(np.zeros(0, np.int16)) == []
    assert det.feed(np.zeros(1, np.int16)) == []


def test_dual_tone_with_strong_second_harmonic_is_not_a_key():
    # a 697 + 1209 Hz pair whose row tone carries its octave at -6 dB: it
    # passes every other check (purity 89 %), but is no DTMF generator's output
    a = amplitude(-13.0)
    n = np.arange(RATE // 2)
    x = a * (
        np.sin(2 * np.pi * 697 * n / RATE)
        + np.sin(2 * np.pi * 1209 * n / RATE)
        + 10 ** (-6 / 20) * np.sin(2 * np.pi * 1394 * n / RATE)
    )
    assert detect(np.rint(x).astype(np.int16)) == []
    # the same pair without the harmonic is a key
    pure = a * (np.sin(2 * np.pi * 697 * n / RATE) + np.sin(2 * np.pi * 1209 * n / RATE))
    assert presses(detect(np.concatenate([np.rint(pure).astype(np.int16), silence(0.1)]))) == "1"


def test_single_tones_and_off_frequency_pairs_are_not_keys():
    assert detect(tone([697], 0.5, -10.0)) == []
    assert detect(tone([1209], 0.5, -10.0)) == []
    assert detect(tone([1000], 0.5, -10.0)) == []
    assert detect(tone([697 * 1.06, 1209 * 1.06], 0.5, -10.0)) == []
    assert detect(tone([697, 770, 1209], 0.5, -10.0)) == []


def test_weak_pair_is_ignored():
    assert detect(dtmf_tone("5", 0.5, -45.0)) == []


@pytest.mark.parametrize(
    "cadence",
    [None, [(1.0, 4.0)], [(0.5, 0.5)], [(0.3, 0.3)]],
    ids=["dial", "ring", "busy", "cong"],
)
@pytest.mark.parametrize("level", [-30.0, -10.0, 0.0])
def test_no_keys_on_call_progress_tones(cadence, level):
    x = CadencedTone([425], cadence, level).read(RATE * 6)
    assert detect(x) == []
    assert detect(with_noise(x.astype(np.float64), 15.0, float(np.mean(x**2.0)) + 1.0)) == []


def test_no_keys_in_noise():
    x = with_noise(np.zeros(RATE * 5), 0.0, float(amplitude(-20.0) ** 2 / 2))
    assert detect(x) == []


@pytest.mark.parametrize("gain_db", [-20.0, -10.0, 0.0, 6.0])
def test_no_false_digits_on_persian_speech(persian_speech, gain_db):
    for i, speech in enumerate(persian_speech):
        x = np.clip(np.rint(speech * 10 ** (gain_db / 20)), -32768, 32767).astype(np.int16)
        codec = codecs.CODECS[i % len(codecs.CODECS)]
        x = codecs.decode(codecs.encode(x, codec), codec)
        assert detect(x) == [], f"sentence {i}, {gain_db} dB, {codec}"


def test_keys_between_persian_speech_are_found(persian_speech):
    x = np.concatenate(
        [persian_speech[0], dtmf_tone("2", 0.06), persian_speech[1], dtmf_tone("#", 0.06)]
    )
    assert presses(detect(np.concatenate([x, silence(0.1)]))) == "2#"


def dialled_stream() -> np.ndarray:
    parts = [silence(0.013)]
    for i, key in enumerate("159#*0D"):
        parts += [dtmf_tone(key, 0.04 + 0.011 * i, -12.0 - i), silence(0.04 + 0.007 * i)]
    parts += [dtmf_tone("5", 0.05), silence(0.041), dtmf_tone("5", 0.05), silence(0.05)]
    clean = np.concatenate(parts).astype(np.float64)
    return with_noise(clean, 20.0, float(amplitude(-15.0) ** 2 / 2), seed=7)


DIALLED = dialled_stream()
DIALLED_EVENTS = DtmfDetector().feed(DIALLED)


def test_dialled_stream_is_recognised():
    assert presses(DIALLED_EVENTS) == "159#*0D55"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, len(DIALLED)), max_size=30))
def test_detection_does_not_depend_on_chunking(cuts):
    det = DtmfDetector()
    bounds = [0, *sorted(cuts), len(DIALLED)]
    events = []
    for a, b in itertools.pairwise(bounds):
        events += det.feed(DIALLED[a:b])
    assert events == DIALLED_EVENTS


def clean_dialled_stream() -> np.ndarray:
    """Keys between stretches of digital silence (exact zeros), as an emulated
    line or a quiet digital trunk carries them."""
    parts = [silence(0.3)]
    for i, key in enumerate("3#7A"):
        parts += [dtmf_tone(key, 0.045 + 0.01 * i, -14.0), silence(0.037 + 0.13 * i)]
    parts += [tone([425], 0.35, -20.0), silence(0.2), tone([425], 0.2, -20.0), silence(0.3)]
    return np.concatenate(parts).astype(np.float64)


CLEAN = clean_dialled_stream()
DITHER = np.random.default_rng(5).choice([-1.0, 1.0], size=len(CLEAN))
"""One step of dither: the same stream with no digital silence anywhere."""


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, len(CLEAN)), max_size=30))
def test_digital_silence_shortcut_changes_no_event(cuts):
    # The detectors skip the maths on windows of exact zeros; a press that
    # starts or ends inside a chunk of silence must be found at the same
    # sample as in the dithered stream, which never takes the shortcut.
    bounds = [0, *sorted(cuts), len(CLEAN)]
    dtmf, tones = DtmfDetector(), ToneDetector(425.0)
    events: list = []
    for a, b in itertools.pairwise(bounds):
        events += dtmf.feed(CLEAN[a:b]) + tones.feed(CLEAN[a:b])
    reference = DtmfDetector().feed(CLEAN + DITHER)
    reference += ToneDetector(425.0).feed(CLEAN + DITHER)
    assert presses([e for e in reference if isinstance(e, DtmfEvent)]) == "3#7A"
    assert [e.kind for e in reference if isinstance(e, ToneEvent)] == ["on", "off"] * 2
    key = lambda e: (type(e).__name__, e.sample, e.kind)  # noqa: E731
    assert sorted(events, key=key) == sorted(reference, key=key)


def test_sample_by_sample_feeding_matches():
    det = DtmfDetector()
    part = DIALLED[:6000]
    events = [e for i in range(len(part)) for e in det.feed(part[i : i + 1])]
    assert events == DtmfDetector().feed(part)


# --- call-progress tone detection ------------------------------------------------


def tone_events(x: np.ndarray, freq: float = 425.0, **kw) -> list[ToneEvent]:
    return ToneDetector(freq, **kw).feed(x)


def expected_edges(cadence: list[tuple[float, float]], seconds: float, start: int) -> list:
    edges = []
    pos = start
    while True:
        for on, off in cadence:
            if pos >= start + seconds * RATE:
                return edges
            edges.append(("on", pos))
            pos += round(on * RATE)
            edges.append(("off", pos))
            pos += round(off * RATE)


@pytest.mark.parametrize(
    "cadence",
    [[(1.0, 4.0)], [(0.5, 0.5)], [(0.2, 0.2)], [(0.4, 0.2), (0.4, 2.0)]],
    ids=["ringback", "busy", "congestion", "double"],
)
@pytest.mark.parametrize("level", [-30.0, -10.0])
def test_cadence_edges_are_where_they_happened(cadence, level):
    lead = 1234
    x = np.concatenate([silence(lead / RATE), CadencedTone([425], cadence, level).read(RATE * 7)])
    events = tone_events(x)
    expected = expected_edges(cadence, 7.0, lead)
    # the last 'off' of a tone still sounding at the end of the input is not seen
    if len(expected) > len(events):
        expected = expected[: len(events)]
    assert [e.kind for e in events] == [k for k, _ in expected]
    for e, (_, sample) in zip(events, expected, strict=True):
        assert abs(e.sample - sample) <= 80, (e, sample)  # 10 ms


def test_continuous_dial_tone_is_one_on():
    det = ToneDetector(425)
    events = det.feed(CadencedTone([425]).read(RATE * 5))
    assert [e.kind for e in events] == ["on"] and events[0].sample <= 80
    assert det.on
    (off,) = det.feed(silence(0.5))
    assert off.kind == "off" and abs(off.sample - 5 * RATE) <= 80
    assert not det.on


def test_tone_in_noise_and_through_codecs():
    x = np.concatenate([silence(0.5), tone([425], 1.0, -25.0), silence(1.0)])
    noisy = with_noise(x.astype(np.float64), 15.0, float(amplitude(-25.0) ** 2 / 2), seed=3)
    for codec in ("u8", "alaw", "ulaw"):
        y = codecs.decode(codecs.encode(noisy, codec), codec)
        events = tone_events(y)
        assert [e.kind for e in events] == ["on", "off"]
        assert abs(events[0].sample - 4000) <= 80 and abs(events[1].sample - 12000) <= 80


def test_minimum_level():
    x = np.concatenate([tone([425], 1.0, -40.0), silence(0.5)])
    assert tone_events(x) == []
    assert len(tone_events(x, min_level_dbm0=-45.0)) == 2
    assert len(tone_events(np.concatenate([tone([425], 1.0, -30.0), silence(0.5)]))) == 2


def test_other_frequencies_are_not_the_tone():
    assert tone_events(tone([480], 1.0, -10.0)) == []
    assert tone_events(tone([350, 440], 1.0, -10.0)) == []
    assert len(tone_events(tone([440], 1.0, -10.0), freq=440.0)) == 1


def test_very_short_bursts_are_not_the_tone():
    x = np.concatenate([silence(0.1), tone([425], 0.04, -10.0), silence(0.2)])
    assert tone_events(x) == []


def test_no_tone_in_dtmf():
    x = np.concatenate([np.concatenate([dtmf_tone(k, 0.2, 0.0), silence(0.05)]) for k in KEYS])
    assert tone_events(x) == []


def test_no_tone_in_persian_speech(persian_speech):
    for speech in persian_speech:
        for gain in (0.1, 1.0):
            assert tone_events(np.rint(speech * gain).astype(np.int16)) == []


def test_tone_after_speech_is_found(persian_speech):
    x = np.concatenate([persian_speech[2], CadencedTone([425], [(0.5, 0.5)]).read(RATE * 2)])
    events = tone_events(x)
    assert [e.kind for e in events] == ["on", "off", "on", "off"]
    assert abs(events[0].sample - len(persian_speech[2])) <= 160


def test_tone_detector_reset():
    det = ToneDetector(425)
    x = np.concatenate([silence(0.3), tone([425], 0.5, -10.0), silence(0.3)])
    first = det.feed(x)
    det.reset()
    assert det.feed(x) == first and not det.on


BUSY = np.concatenate(
    [silence(0.0123), CadencedTone([425], [(0.5, 0.5)], -20.0).read(RATE * 3)]
).astype(np.int16)
BUSY_NOISY = with_noise(BUSY.astype(np.float64), 20.0, float(amplitude(-20.0) ** 2 / 2), seed=9)
BUSY_EVENTS = ToneDetector(425).feed(BUSY_NOISY)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, len(BUSY_NOISY)), max_size=30))
def test_tone_detection_does_not_depend_on_chunking(cuts):
    assert len(BUSY_EVENTS) == 6
    det = ToneDetector(425)
    bounds = [0, *sorted(cuts), len(BUSY_NOISY)]
    events = []
    for a, b in itertools.pairwise(bounds):
        events += det.feed(BUSY_NOISY[a:b])
    assert events == BUSY_EVENTS
