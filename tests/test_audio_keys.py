"""Key presses found in the recorded audio, for chips that report none during +VRX.

VOICE-MODEMS.md section 3: some MultiTech units send no DLE events while
recording. Checked at three levels: the merger of the chip's digits with the
detector's presses (pure), the emulated MT5634ZPX's bytes frame by frame,
and the driver over a pty against that chip (its raw bytes tapped) and
against a chip that does report keys while recording, driven with a profile
that says it does not (every press then arrives twice and must count once).
"""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np

from daemon1521.dsp import codecs
from daemon1521.dsp.dtmf import DtmfDetector, dtmf_tone
from daemon1521.emulator.clock import FRAME, EmuClock
from daemon1521.emulator.line import Line
from daemon1521.emulator.modem import VoiceModem as EmulatedChip
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.modem.audiokeys import AudioKeys
from daemon1521.modem.dle import DLE
from daemon1521.modem.profile import load_profiles
from tests.voice_support import call_in, collect_keys, emulated_site

MT = "multitech-mt5634zpx"
RATE = 8000
ENTRIES = [
    ("123#", 0.12, 0.12),  # a typical entry
    ("1122*0", 0.12, 0.15),  # the same digit twice is two presses
    ("5#5", 0.5, 0.3),  # long presses, held across the end of a listen
]


def tone(key: str, seconds: float) -> np.ndarray:
    return dtmf_tone(key, seconds)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def dle_events(data: bytes) -> str:
    """The event codes in a modem-to-host stream (DLE DLE is a data byte)."""
    codes: list[str] = []
    i = 0
    while i < len(data) - 1:
        if data[i] == DLE[0]:
            if data[i + 1] != DLE[0]:
                codes.append(chr(data[i + 1]))
            i += 2
        else:
            i += 1
    return "".join(codes)


# --- the merger, pure ------------------------------------------------------------------


def test_a_press_split_between_two_listens_is_one_key() -> None:
    keys = AudioKeys()
    # 60 ms of the press, then the listen ends; the next one hears its tail
    assert keys.audio(tone("4", 0.06)) == ["4"]
    assert keys.audio(np.concatenate((tone("4", 0.08), quiet(0.1)))) == []
    # the same key again after a real gap is a second press
    assert keys.audio(np.concatenate((tone("4", 0.08), quiet(0.1)))) == ["4"]


def test_chip_digit_then_the_tail_of_its_tone_is_one_press() -> None:
    keys = AudioKeys()
    # reported between two recordings; the next one starts while it is held
    assert keys.chip_key("5")
    assert keys.audio(np.concatenate((tone("5", 0.08), quiet(0.1)))) == []
    # a later press of the same key, only in the audio, counts
    assert keys.audio(np.concatenate((tone("5", 0.1), quiet(0.1)))) == ["5"]
    # another key's tail is never taken for the chip's digit
    assert keys.chip_key("6")
    assert keys.audio(np.concatenate((tone("7", 0.08), quiet(0.1)))) == ["7"]


def test_tone_then_the_chips_digit_for_it_is_one_press() -> None:
    keys = AudioKeys()
    assert keys.audio(tone("8", 0.05)) == ["8"]
    assert not keys.chip_key("8")  # the chip reporting the same press
    assert keys.chip_key("8")  # a second report is a press the audio missed
    keys.audio(quiet(0.3))
    assert keys.audio(tone("9", 0.1)) == ["9"]
    keys.audio(quiet(0.3))
    assert keys.chip_key("9")  # long after the tone: a new press


# --- the emulated chip, frame by frame -------------------------------------------------------


class _Chip:
    """An emulated MT5634ZPX on a line of its own, ticked by hand."""

    def __init__(self) -> None:
        self.modem = EmulatedChip(EmuClock(1.0), MT)
        self.line = Line("1", self.modem, lambda line: None)
        self.out = bytearray()
        self.modem.connect_port(self.out.extend)

    def say(self, data: bytes) -> bytes:
        mark = len(self.out)
        self.modem.host_bytes(data)
        return bytes(self.out[mark:])

    def hear(self, audio: np.ndarray) -> bytes:
        mark = len(self.out)
        for start in range(0, len(audio) - FRAME + 1, FRAME):
            self.modem.transmit()
            self.modem.receive(audio[start : start + FRAME])
            self.modem.clock.advance()
        return bytes(self.out[mark:])


def test_the_emulated_mt5634zpx_reports_nothing_while_recording() -> None:
    chip = _Chip()
    chip.say(b"ATE0\rAT+FCLASS=8;+VSM=128,8000;+VLS=1\r")
    press = np.concatenate((tone("3", 0.1), quiet(0.1)))
    assert chip.hear(press) == DLE + b"3"  # voice command mode: reported
    assert chip.say(b"AT+VRX\r") == b"\r\nCONNECT\r\n"
    recorded = chip.hear(np.concatenate((press, tone("#", 0.1), quiet(0.2))))
    chip.modem.loop_break()
    recorded += chip.hear(quiet(0.1))
    assert dle_events(recorded) == ""  # no digit, no loop break
    audio = codecs.decode(recorded.replace(DLE + DLE, DLE), "u8")
    heard = [e.key for e in DtmfDetector().feed(audio) if e.kind == "down"]
    assert heard == ["3", "#"]  # the presses are in the audio
    assert chip.say(DLE + b"!") == DLE + b"\x03\r\nOK\r\n"
    chip.modem.loop_break()
    assert bytes(chip.out).endswith(DLE + b"l")  # and reported again after it


# --- the driver ------------------------------------------------------------------------------


async def test_mt5634zpx_sends_no_digit_while_recording_and_every_key_counts_once() -> None:
    async with emulated_site(MT) as (rig, modem):
        assert modem.profile.name == "agere-mt5634zpx"
        assert not modem.profile.capabilities.events_during_vrx
        emulated = rig.modems[0]
        recorded = bytearray()
        to_host = emulated._sink
        assert to_host is not None

        def tap(data: bytes) -> None:
            if emulated.mode == "rx":
                recorded.extend(data)
            to_host(data)

        emulated._sink = tap
        phone, _ = await call_in(rig, modem)
        await phone.wait(0.3)
        modem.flush_keys()  # the tail of the caller's dialling
        for keys, on, gap in ENTRIES:
            pressing = asyncio.create_task(phone.press(keys, on=on, gap=gap))
            try:
                got = await collect_keys(modem, len(keys))
                await pressing
            finally:
                await wait_cancelled(pressing)
            assert "".join(got) == keys
            assert await modem.next_key(1.0) is None, "a press was counted twice"
        await phone.hang_up()
        await modem.hang_up()
    stream = bytes(recorded).replace(b"\r\nCONNECT\r\n", b"")
    assert dle_events(stream) == ""  # not one DLE event while recording
    audio = codecs.decode(stream.replace(DLE + DLE, DLE), modem.codec)
    heard = [e.key for e in DtmfDetector().feed(audio) if e.kind == "down"]
    presses = sum(len(keys) for keys, _, _ in ENTRIES)
    assert len(heard) > presses // 2  # most presses were made while it recorded


async def test_keys_reported_by_the_chip_and_found_in_the_audio_count_once() -> None:
    profiles = [
        msgspec.structs.replace(
            p, capabilities=msgspec.structs.replace(p.capabilities, events_during_vrx=False)
        )
        if p.name == "generic-v253"
        else p
        for p in load_profiles()
    ]
    async with emulated_site("generic-v253", profiles=profiles) as (rig, modem):
        assert not modem.profile.capabilities.events_during_vrx
        phone, _ = await call_in(rig, modem)
        await phone.wait(0.3)
        modem.flush_keys()
        for keys, on, gap in ENTRIES:
            pressing = asyncio.create_task(phone.press(keys, on=on, gap=gap))
            try:
                got = await collect_keys(modem, len(keys))
                await pressing
            finally:
                await wait_cancelled(pressing)
            assert "".join(got) == keys
            assert await modem.next_key(1.0) is None, "a press was counted twice"
        await phone.hang_up()
        await modem.hang_up()
