"""LineWatch: hang-up evidence from the chip's events and from the received audio.

Audio is fed in 20 ms pieces, as a +VRX stream delivers it; tones are the
Iranian plan's 425 Hz at -10 dBm0. The chip events it trusts come from the
profile's capabilities (VOICE-MODEMS.md sections 3 and 5).
"""

from __future__ import annotations

import numpy as np
import pytest

from daemon1521.dsp.tones import CadencedTone, tone
from daemon1521.modem.dle import DleEvent
from daemon1521.modem.linewatch import HungUp, LineWatch
from daemon1521.modem.profile import Capabilities

RATE = 8000
PIECE = 160
EVERYTHING = Capabilities(hangup_events=("busy", "loop_break", "dial_tone"))
NOTHING = Capabilities(hangup_events=(), silence_detection=False)  # Conexant ACF: trust none


def cadenced(cadence: list[tuple[float, float]] | None, seconds: float) -> np.ndarray:
    return CadencedTone([425.0], cadence, level_dbm0=-10.0).read(round(seconds * RATE))


def speech_like(seconds: float) -> np.ndarray:
    """Loud, tonal but wandering: not a call-progress tone, not silence."""
    rng = np.random.default_rng(7)
    n = round(seconds * RATE)
    freq = 300 + 900 * np.abs(np.sin(np.arange(n) / 2000.0))
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    noise = rng.normal(0, 800, n)
    return np.clip(6000 * np.sin(phase) + noise, -32768, 32767).astype(np.int16)


def listen(watch: LineWatch, audio: np.ndarray) -> tuple[HungUp | None, float | None]:
    """Feed audio piece by piece; the verdict and the second it came (or None)."""
    for start in range(0, len(audio), PIECE):
        verdict = watch.audio(audio[start : start + PIECE])
        if verdict is not None:
            return verdict, (start + PIECE) / RATE
    return None, None


def events(watch: LineWatch, codes: str, *, playing: bool = False) -> HungUp | None:
    verdict = None
    for code in codes:
        verdict = watch.chip_event(DleEvent(code), playing=playing) or verdict
    return verdict


# -- audio ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadence", "within"),
    [([(0.5, 0.5)], 2.2), ([(0.25, 0.25)], 1.2)],
    ids=["busy", "congestion"],
)
def test_busy_and_congestion_cadences_are_a_hang_up(cadence, within):
    verdict, at = listen(LineWatch(NOTHING), cadenced(cadence, 6.0))
    assert verdict == HungUp("busy_tone")
    assert at is not None and at <= within


def test_steady_tone_is_dial_tone_after_two_seconds():
    verdict, at = listen(LineWatch(NOTHING), cadenced(None, 5.0))
    assert verdict == HungUp("dial_tone")
    assert at is not None and 2.0 <= at <= 2.3


def test_ringback_speech_and_a_single_burst_are_not_a_hang_up():
    watch = LineWatch(NOTHING, silence_hangup=30.0)
    assert listen(watch, cadenced([(1.0, 4.0)], 11.0)) == (None, None)
    assert listen(watch, speech_like(5.0)) == (None, None)
    burst = np.concatenate((tone([425.0], 0.5), np.zeros(RATE * 2, dtype=np.int16)))
    assert listen(watch, burst) == (None, None)
    assert watch.hung_up is None


def test_silence_threshold_is_measured_from_the_last_sound():
    watch = LineWatch(NOTHING, silence_hangup=3.0)
    quiet = np.zeros(round(2.9 * RATE), dtype=np.int16)
    assert listen(watch, quiet) == (None, None)
    assert listen(watch, speech_like(0.2)) == (None, None)  # a word restarts the count
    hiss = np.random.default_rng(3).normal(0, 20, 4 * RATE).astype(np.int16)  # line noise
    verdict, at = listen(watch, hiss)
    assert verdict == HungUp("silence")
    assert at is not None and 3.0 <= at <= 3.05


def test_a_new_listening_period_starts_the_audio_analysis_afresh():
    watch = LineWatch(NOTHING, silence_hangup=3.0)
    assert listen(watch, np.zeros(2 * RATE, dtype=np.int16)) == (None, None)
    watch.restart_audio()  # e.g. a prompt played in between
    assert listen(watch, np.zeros(2 * RATE, dtype=np.int16)) == (None, None)


# -- chip events -------------------------------------------------------------------


def test_chip_events_count_only_where_the_profile_trusts_them():
    assert events(LineWatch(NOTHING), "bbbbldsqd") is None
    assert events(LineWatch(Capabilities(hangup_events=("busy",))), "ldsq") is None
    assert events(LineWatch(Capabilities(hangup_events=("loop_break",))), "l") == HungUp(
        "loop_break"
    )
    assert events(LineWatch(Capabilities(hangup_events=("dial_tone",))), "d") == HungUp("dial_tone")
    # silence reports count once the chip has been told the limit (+VSD)
    assert events(LineWatch(EVERYTHING), "sq") is None
    assert events(LineWatch(EVERYTHING, chip_silence=True), "s") == HungUp("silence")
    assert events(LineWatch(EVERYTHING, chip_silence=True), "q") == HungUp("silence")


def test_busy_must_be_reported_twice():
    watch = LineWatch(Capabilities(hangup_events=("busy",)))
    assert events(watch, "b") is None
    watch.restart_audio()  # the chip's count survives a new listening period
    assert events(watch, "b") == HungUp("busy_tone")


def test_false_dial_tone_during_play_is_ignored_where_the_profile_says():
    usr = Capabilities(hangup_events=("dial_tone",), false_dle_d_during_play=True)
    assert events(LineWatch(usr), "ddd", playing=True) is None
    assert events(LineWatch(usr), "d") == HungUp("dial_tone")  # while listening it counts
    honest = Capabilities(hangup_events=("dial_tone",))
    assert events(LineWatch(honest), "d", playing=True) == HungUp("dial_tone")


@pytest.mark.parametrize("caps", [EVERYTHING, NOTHING], ids=["trusting", "distrustful"])
def test_handset_and_other_events_are_never_a_hang_up(caps):
    """DLE H (the USR's right after VLS=1), ring, underrun, DTMF..."""
    assert events(LineWatch(caps, chip_silence=True), "HhRruoLc5/~") is None


def test_the_first_verdict_stands():
    watch = LineWatch(EVERYTHING)
    assert events(watch, "l") == HungUp("loop_break")
    assert events(watch, "bbd") == HungUp("loop_break")
    assert watch.port_failed() == HungUp("loop_break")
    assert watch.audio(np.zeros(PIECE, dtype=np.int16)) == HungUp("loop_break")
    watch.reset()
    assert watch.hung_up is None
    assert watch.port_failed() == HungUp("port_failure")
