"""The emulated caller's ears: recordings recognised in the audio a phone received."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from daemon1521.dsp import codecs
from daemon1521.dsp.dtmf import dtmf_tone
from daemon1521.dsp.tones import CadencedTone, amplitude, tone
from daemon1521.emulator.recognizer import Heard, PromptRecognizer

RATE = 8000

PHRASES = {
    "welcome": "به سامانه پرداخت قبض برق خوش آمدید",
    "enter_bill": "لطفا شناسه قبض را وارد کنید",
    "amount_is": "مبلغ قابل پرداخت",
    "rials": "ریال",
    "thanks": "با تشکر از تماس شما",
    "invalid": "شماره وارد شده صحیح نیست",
    "n20": "بیست",
    "n100": "صد",
    "n1000": "هزار",
}
DIGITS = ["صفر", "یک", "دو", "سه", "چهار", "پنج", "شش", "هفت", "هشت", "نه"]
LONG = ["welcome", "enter_bill", "amount_is", "thanks", "invalid"]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.int16)


def speak(text: str, wav: Path) -> np.ndarray:
    """``text`` spoken in Persian by espeak-ng, at 8 kHz, peaking near -6 dBFS."""
    subprocess.run(["espeak-ng", "-v", "fa", "-w", str(wav), text], check=True, capture_output=True)
    x, rate = soundfile.read(wav, dtype="float64")
    y = soxr.resample(x, rate, RATE) * 0.5 * 32767
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def chime() -> np.ndarray:
    """Three decaying notes."""
    n = np.arange(round(0.15 * RATE))
    notes = [
        amplitude(-12.0) * np.exp(-n / 600) * np.sin(2 * np.pi * f * n / RATE)
        for f in (660, 880, 1320)
    ]
    return np.rint(np.concatenate(notes)).astype(np.int16)


def sweep() -> np.ndarray:
    """A 0.6 s rising sweep, 300 to 3000 Hz."""
    t = np.arange(round(0.6 * RATE)) / RATE
    phase = 2 * np.pi * (300 * t + (3000 - 300) / (2 * 0.6) * t**2)
    return np.rint(amplitude(-15.0) * np.sin(phase)).astype(np.int16)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, np.ndarray]:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for the recogniser tests (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("prompts")
    recs = {name: speak(text, folder / f"{name}.wav") for name, text in PHRASES.items()}
    for i, word in enumerate(DIGITS):
        recs[f"d{i}"] = speak(word, folder / f"d{i}.wav")
    recs["chime"] = chime()
    recs["sweep"] = sweep()
    return recs


@pytest.fixture(scope="module")
def recognizer(recordings) -> PromptRecognizer:
    return PromptRecognizer(recordings)


def through(codec: str, x: np.ndarray) -> np.ndarray:
    return codecs.decode(codecs.encode(x, codec), codec)


def add_noise(x: np.ndarray, level_dbm0: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sigma = amplitude(level_dbm0) / np.sqrt(2)
    return np.clip(np.rint(x + rng.normal(0.0, sigma, len(x))), -32768, 32767).astype(np.int16)


def sound_start(x: np.ndarray) -> int:
    """Index of the first clearly audible sample of a recording."""
    return int(np.flatnonzero(np.abs(x.astype(np.int32)) > 1000)[0])


def summary(heard: list[Heard]) -> list[tuple[str | None, bool]]:
    return [(h.name, h.complete) for h in heard if h.name is not None]


# --- basics ---------------------------------------------------------------------


def test_heard_is_a_frozen_record():
    h = Heard("welcome", 0.5, 3.0, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.name = "other"  # type: ignore[misc]


def test_silence_and_empty_audio(recognizer):
    assert recognizer.transcribe(np.zeros(0, np.int16)) == []
    assert recognizer.transcribe(silence(3.0)) == []
    assert recognizer.transcribe(add_noise(silence(3.0), -60.0)) == []


def test_each_recording_alone_with_its_place(recognizer, recordings):
    for name, rec in recordings.items():
        audio = np.concatenate([silence(0.3712), rec, silence(0.5)])
        heard = recognizer.transcribe(through("alaw", audio))
        assert [(h.name, h.complete) for h in heard] == [(name, True)], name
        assert heard[0].start == pytest.approx(0.3712, abs=0.012)
        assert heard[0].end == pytest.approx(0.3712 + len(rec) / RATE, abs=0.012)


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_prompts_with_gaps_through_each_codec(recognizer, recordings, codec):
    rng = np.random.default_rng(len(codec))
    order = ["welcome", "enter_bill", "d7", "d0", "chime", "amount_is", "n100", "rials", "thanks"]
    parts = [silence(0.2)]
    for name in order:
        parts += [recordings[name], silence(rng.uniform(0.01, 2.0))]
    heard = recognizer.transcribe(through(codec, np.concatenate(parts)))
    assert summary(heard) == [(name, True) for name in order]
    assert all(h.name is not None for h in heard)


def test_number_words_back_to_back(recognizer, recordings):
    # a card number read digit by digit, then an amount, with no gaps at all
    words = [f"d{c}" for c in "6037991234567890"] + ["n100", "n20", "d5", "n1000", "rials"]
    audio = np.concatenate([silence(0.25), *(recordings[w] for w in words), silence(0.3)])
    heard = recognizer.transcribe(through("u8", audio))
    assert summary(heard) == [(w, True) for w in words]
    # back to back: each one starts where the previous ended
    for a, b in itertools.pairwise(heard):
        assert b.start == pytest.approx(a.end, abs=0.012)


def test_names_skips_unrecognised_sound(recognizer, recordings):
    audio = np.concatenate(
        [tone([425], 1.0), silence(0.3), recordings["welcome"], dtmf_tone("5", 0.1)]
    )
    assert recognizer.names(audio) == ["welcome"]
    assert [h.name for h in recognizer.transcribe(audio)] == [None, "welcome", None]


# --- barge-in -------------------------------------------------------------------


@pytest.mark.parametrize("heard_s", [0.45, 1.0])
@pytest.mark.parametrize("then", ["silence", "back_to_back", "dtmf"])
def test_cut_prompts_are_reported_incomplete(recognizer, recordings, heard_s, then):
    for name in LONG:
        rec = recordings[name]
        cut = sound_start(rec) + round(heard_s * RATE)
        follow = {
            "silence": [silence(0.7)],
            "back_to_back": [],
            "dtmf": [dtmf_tone("1", 0.08), silence(0.1)],
        }[then]
        audio = np.concatenate(
            [silence(0.5), rec[:cut], *follow, recordings["invalid" if name != "invalid" else "d3"]]
        )
        heard = recognizer.transcribe(through("ulaw", audio))
        nxt = "invalid" if name != "invalid" else "d3"
        assert summary(heard) == [(name, False), (nxt, True)], (name, heard)
        first = next(h for h in heard if h.name == name)
        assert first.end == pytest.approx(0.5 + cut / RATE, abs=0.04)


def test_prompt_cut_too_early_is_not_named(recognizer, recordings):
    rec = recordings["welcome"]
    audio = np.concatenate([silence(0.5), rec[: sound_start(rec) + 1200], silence(0.5)])
    heard = recognizer.transcribe(audio)
    assert recognizer.names(audio) == []
    assert [h.name for h in heard] == [None]


def test_cut_in_trailing_silence_is_complete(recognizer, recordings):
    rec = recordings["thanks"]
    last = int(np.flatnonzero(np.abs(rec.astype(np.int32)) > 300)[-1])
    audio = np.concatenate([rec[: last + 200], recordings["d1"]])
    assert summary(recognizer.transcribe(audio)) == [("thanks", True), ("d1", True)]


# --- other sound, noise, level ------------------------------------------------------


def test_tones_and_dtmf_between_prompts(recognizer, recordings):
    ring = CadencedTone([425], [(1.0, 4.0)], -10.0).read(round(1.5 * RATE))
    busy = CadencedTone([425], [(0.5, 0.5)], -10.0).read(2 * RATE)
    parts = [
        ring,
        recordings["welcome"],
        silence(0.2),
        dtmf_tone("1", 0.1),
        silence(0.05),
        recordings["enter_bill"],
        dtmf_tone("#", 0.1),
        recordings["d4"],
        tone([425], 0.3),
        recordings["thanks"],
        busy,
    ]
    heard = recognizer.transcribe(through("alaw", np.concatenate(parts)))
    assert summary(heard) == [(n, True) for n in ("welcome", "enter_bill", "d4", "thanks")]
    unknown = [h for h in heard if h.name is None]
    # ring burst, two key presses, one tone burst, two busy bursts
    assert len(unknown) == 6
    assert unknown[0].start == pytest.approx(0.0, abs=0.02)
    assert unknown[0].end == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("codec", codecs.CODECS)
@pytest.mark.parametrize("noise_dbm0", [-60.0, -50.0])
def test_light_noise(recognizer, recordings, codec, noise_dbm0):
    order = ["d1", "d5", "amount_is", "n20", "d3", "n1000", "rials", "sweep", "thanks"]
    parts = [silence(0.3)]
    for i, name in enumerate(order):
        parts += [recordings[name], silence(0.4 if i % 3 == 0 else 0.0)]
    audio = add_noise(np.concatenate(parts), noise_dbm0, seed=int(-noise_dbm0))
    heard = recognizer.transcribe(through(codec, audio))
    assert summary(heard) == [(n, True) for n in order]


@pytest.mark.parametrize("gain_db", [-4.0, 2.0])
def test_level_changes_on_the_line(recognizer, recordings, gain_db):
    order = ["enter_bill", "d9", "d8", "d7", "invalid"]
    audio = np.concatenate([silence(0.2), *(recordings[n] for n in order)]).astype(np.float64)
    scaled = np.clip(np.rint(audio * 10 ** (gain_db / 20)), -32768, 32767).astype(np.int16)
    assert recognizer.names(through("alaw", scaled)) == order


def test_slightly_misaligned_copies(recognizer, recordings):
    # every sub-frame offset of the audio grid
    for offset in range(0, 80, 9):
        audio = np.concatenate([silence(offset / RATE), recordings["d2"], recordings["d6"]])
        assert recognizer.names(audio) == ["d2", "d6"], offset


# --- odd recording sets ----------------------------------------------------------


def test_silent_and_tiny_recordings_are_ignored(recordings):
    rz = PromptRecognizer(
        {"pause": silence(0.5), "click": np.full(40, 8000, np.int16), "rials": recordings["rials"]}
    )
    audio = np.concatenate([silence(0.2), recordings["rials"], silence(0.2)])
    assert rz.names(audio) == ["rials"]


def test_no_recordings_at_all(recordings):
    rz = PromptRecognizer({})
    heard = rz.transcribe(np.concatenate([silence(0.2), recordings["rials"]]))
    assert [h.name for h in heard] == [None]


def test_recording_that_begins_another(recordings):
    # "d1 then d2" recorded as one prompt, next to "d1" alone: the longer one
    # wins when it was played, the shorter one when only it was
    both = np.concatenate([recordings["d1"], recordings["d2"]])
    rz = PromptRecognizer({"one": recordings["d1"], "one_two": both, "two": recordings["d2"]})
    assert rz.names(np.concatenate([silence(0.1), both, silence(0.3)])) == ["one_two"]
    assert rz.names(np.concatenate([silence(0.1), recordings["d1"], silence(0.5)])) == ["one"]
    audio = np.concatenate([silence(0.1), recordings["d1"], silence(0.5), recordings["d2"]])
    assert rz.names(audio) == ["one", "two"]


# --- a mixed bag, seeded ---------------------------------------------------------------


def test_random_sessions(recognizer, recordings):
    rng = np.random.default_rng(1521)
    names = list(recordings)
    for session in range(12):
        parts = [silence(rng.uniform(0.0, 0.5))]
        expected = []
        for _ in range(int(rng.integers(3, 10))):
            name = names[int(rng.integers(len(names)))]
            rec = recordings[name]
            if name in LONG and rng.random() < 0.3:
                rec = rec[: sound_start(rec) + int(rng.integers(4000, 8000))]
                expected.append((name, False))
            else:
                expected.append((name, True))
            parts.append(rec)
            pause = rng.random()
            if pause < 0.35:
                continue
            if pause < 0.7:
                parts.append(silence(rng.uniform(0.0, 1.5)))
            elif pause < 0.85:
                parts += [silence(0.1), tone([425], rng.uniform(0.2, 1.0)), silence(0.2)]
            else:
                parts += [silence(0.05), dtmf_tone("0123456789*#"[int(rng.integers(12))], 0.08)]
                parts.append(silence(rng.uniform(0.0, 0.2)))
        codec = codecs.CODECS[session % len(codecs.CODECS)]
        audio = add_noise(np.concatenate(parts), -55.0, seed=session)
        heard = recognizer.transcribe(through(codec, audio))
        assert summary(heard) == expected, (session, heard)
        starts = [h.start for h in heard]
        assert starts == sorted(starts)


def test_many_similar_recordings(tmp_path):
    # 40 spoken numbers: many share words ("bist o ...", "si o ...")
    numbers = [3 + 7 * i for i in range(40)]
    recs = {str(n): speak(str(n), tmp_path / f"{n}.wav") for n in numbers}
    rz = PromptRecognizer(recs)
    rng = np.random.default_rng(7)
    order = [str(numbers[int(i)]) for i in rng.integers(0, 40, 60)]
    parts = []
    for name in order:
        parts.append(recs[name])
        if rng.random() < 0.3:
            parts.append(silence(rng.uniform(0.0, 0.8)))
    assert rz.names(through("alaw", np.concatenate(parts))) == order
