"""Faults of the emulated modems (hung modem, garbage, a vanishing port, split and
delayed reads, a host closing the port, internal errors), and the modem's
frame-level pacing checked directly, without a pty."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import numpy as np
import pytest

from daemon1521.dsp import codecs
from daemon1521.emulator.clock import FRAME, EmuClock
from daemon1521.emulator.line import CallerId, Line
from daemon1521.emulator.modem import VoiceModem
from tests.test_emulated_modem import (
    CALLER,
    MODEM_NUMBER,
    RawClient,
    make_bed,
    unshield,
    until,
)

__all__ = ["make_bed"]  # the fixture, shared with the conversation tests


async def test_a_hung_modem_answers_nothing_until_it_recovers(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.host.command(b"ATE0")
    bed.modem.stop_answering()
    await bed.host.send(b"AT\r")
    assert await bed.host.quiet(0.1) == b""
    dial = asyncio.create_task(bed.caller.dial(MODEM_NUMBER))
    await bed.wait(7.0)
    assert await bed.host.quiet(0.02) == b""  # no RING either
    await bed.caller.hang_up()
    await asyncio.gather(dial, return_exceptions=True)
    bed.modem.resume()
    assert await bed.host.command(b"AT") == b"\r\nOK\r\n"


async def test_garbage_from_the_modem_and_from_the_host(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    bed.modem.inject(b"\x00\xff\x10garbage\r\n")
    await bed.host.exactly(b"\x00\xff\x10garbage\r\n")
    # noise without an "A" never forms a command line, so it is all ignored
    # (random "AT..." lines could legitimately set Q1 or S3 and silence the modem)
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    noise = noise.replace(b"A", b"").replace(b"a", b"")
    await bed.host.send(noise)
    await bed.host.send(b"\r")
    await asyncio.sleep(0.05)
    bed.host.skip()
    await bed.host.command(b"ATE0")
    assert await bed.host.command(b"AT") == b"\r\nOK\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) in ("idle", "dialtone")


async def test_the_port_vanishes_and_comes_back(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    link = Path(bed.modem.link)
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.modem.vanish()
    await until(lambda: bed.host.eof)  # the host's read sees the hang-up
    assert not link.exists() and not link.is_symlink()
    assert bed.modem.pty_path is None and not bed.modem.present
    await bed.wait(0.5)
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"  # the modem dropped the line
    assert bed.caller.loop_breaks == 1
    with pytest.raises(OSError):
        os.write(bed.host.fd, b"AT\r")  # type: ignore[arg-type]
    bed.host.close()
    await bed.modem.reappear()
    assert link.is_symlink() and Path(os.readlink(link)) == Path(bed.modem.pty_path)
    host = await RawClient(link).open()
    bed.host = host
    await host.send(b"AT+FCLASS?\r")  # power-on state: echo on, data mode
    await host.exactly(b"AT+FCLASS?\r\r\n0\r\nOK\r\n")


async def test_split_and_delayed_output(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.voice_mode()
    bed.modem.split_writes(3, 0.05)
    reads = bed.host.reads
    assert await bed.host.command(b"ATI3") == b"\r\nU.S. Robotics 56K FAX USB V1.2.23\r\n\r\nOK\r\n"
    assert bed.host.reads - reads >= 10
    dial = await bed.incoming_call()
    block = await bed.host.expect(rb"NMBR=\d+\r\n", timeout=15)
    assert block.endswith(b"\r\nDATE=0304\r\nTIME=1230\r\nNMBR=5550001\r\n")
    bed.modem.split_writes(None)
    await bed.answer(dial)
    bed.modem.split_writes(101, 0.0)  # DLE pairs split across reads
    await bed.host.command(b"AT+VRX")
    bed.caller.say(codecs.decode(bytes([0x10, 0x90, 0x10]) * 400, "u8"))
    await bed.wait(0.5)
    await bed.host.send(b"\x10!")
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    audio, events = unshield(stream)
    assert bytes([0x10, 0x90, 0x10]) * 400 in audio
    assert [code for _, code in events] == ["\x03"]


async def test_host_closing_the_port_hangs_up_and_leaves_no_stale_bytes(make_bed) -> None:
    bed = await make_bed("usr-5637")
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VRX")
    await bed.wait(0.3)
    bed.host.close()  # like DTR dropping on close
    await until(lambda: bed.exchange.line_state(MODEM_NUMBER) == "idle")
    assert bed.caller.loop_breaks == 1
    await bed.wait(1.0)
    bed.host = await RawClient(bed.modem.link).open()
    assert bed.modem.mode == "command"
    await bed.host.send(b"AT\r")
    await bed.host.exactly(b"\r\nOK\r\n")  # E0 still set; no audio left over


async def test_an_error_inside_the_modem_does_not_stop_the_exchange(make_bed) -> None:
    bed = await make_bed("usr-5637")
    other = bed.phone("2222")
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    await bed.host.command(b"AT+VRX")

    def broken(*args: object) -> None:
        raise RuntimeError("injected fault")

    bed.modem._record_frame = broken  # type: ignore[method-assign]
    start = bed.clock.frame
    await bed.wait(1.0)
    # in whole frames: now() is a float, and 3.8 + 1.0 > 4.8 in binary
    assert bed.clock.frame - start >= bed.clock.frames(1.0)
    assert bed.modem.faults["receive"] >= 40
    assert bed.exchange.faults(MODEM_NUMBER) == {}  # nothing escaped to the exchange
    del bed.modem._record_frame
    caller2 = bed.phone("2223")
    dialling = asyncio.create_task(caller2.dial("2222"))
    assert await other.wait_for_ring(30) is not None
    await other.answer()
    assert await asyncio.wait_for(dialling, 15) == "answered"
    await bed.host.send(b"\x10!")
    assert (await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)).endswith(b"OK\r\n")


async def test_a_caller_who_hangs_up_while_ringing(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    await bed.host.command(b"ATE0")
    await bed.host.command(b"AT+FCLASS=8;+VCID=1;-SCID=1")
    dial = await bed.incoming_call()
    await bed.host.expect(rb"NMBR = 5550001\r\n", timeout=15)
    assert await bed.host.command(b"ATS1?") == b"\r\n001\r\n\r\nOK\r\n"
    await bed.caller.hang_up()
    await asyncio.gather(dial, return_exceptions=True)
    await bed.wait(9.0)
    assert await bed.host.command(b"ATS1?") == b"\r\n000\r\n\r\nOK\r\n"
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"
    assert b"\x10R" not in bed.host.skip()


async def test_inactivity_timer_drops_the_line(make_bed) -> None:
    bed = await make_bed("conexant-cx93001")
    await bed.voice_mode(caller_id=False)
    dial = await bed.incoming_call()
    await bed.answer(dial)
    assert await bed.host.command(b"AT+VIT=2;+VRX") == b"\r\nCONNECT\r\n"
    stream = await bed.host.expect(rb"\x10\x03\r\nOK\r\n", timeout=15)
    assert len(stream) > 8000  # about 2 s of audio first
    assert bed.exchange.line_state(MODEM_NUMBER) == "idle"
    assert await bed.host.command(b"AT+FCLASS?") == b"\r\n0\r\nOK\r\n"


# --- the modem without a pty: frame-level pacing --------------------------------------------------


class _Harness:
    """A modem on a line of its own, ticked by hand."""

    def __init__(self, personality: str) -> None:
        self.clock = EmuClock(1.0)
        self.modem = VoiceModem(self.clock, personality)
        self.hook: list[bool] = []
        self.line = Line("1", self.modem, lambda line: self.hook.append(line.off_hook))
        self.out = bytearray()
        self.modem.connect_port(self.out.extend)

    def say(self, data: bytes) -> bytes:
        mark = len(self.out)
        self.modem.host_bytes(data)
        return bytes(self.out[mark:])

    def tick(self, heard: np.ndarray | None = None) -> np.ndarray | None:
        frame = self.modem.transmit()
        self.modem.receive(np.zeros(FRAME, np.int16) if heard is None else heard)
        self.clock.advance()
        return frame


def test_playback_takes_one_frame_per_tick_and_can_cuts_within_the_frame() -> None:
    h = _Harness("conexant-cx93001")
    h.say(b"ATE0\rAT+FCLASS=8;+VLS=1\r")
    assert h.hook == [True]
    assert h.say(b"AT+VTX\r") == b"\r\nCONNECT\r\n\x10u"  # the chip's stray underrun
    room = h.modem.input_room()
    assert room == 2048
    h.say(bytes([0xC0]) * 1000)
    assert h.modem.input_room() == 1048
    frame = h.tick()
    assert frame is not None and (frame == 0x4000).all()
    assert h.modem.input_room() == 1048 + FRAME
    h.say(b"\x10\x18")  # DLE CAN: the rest is gone before the next frame
    frame = h.tick()
    assert frame is not None and not frame.any()
    # nothing left to play: DLE ETX ends the stream at once, not at the next tick
    assert h.say(b"\x10\x03") == b"\r\nOK\r\n"
    assert h.modem.mode == "command"


def test_the_end_of_a_stream_waits_for_the_audio_still_buffered_and_no_longer() -> None:
    h = _Harness("conexant-cx93001")
    h.say(b"ATE0\rAT+FCLASS=8;+VLS=1\r")
    h.say(b"AT+VTX\r")
    h.say(bytes([0xC0]) * 2 * FRAME)
    assert h.say(b"\x10\x03") == b""  # two frames to play first
    h.tick()
    assert h.modem.mode == "tx"
    frame = h.tick()
    assert frame is not None and (frame == 0x4000).all()
    assert bytes(h.out).endswith(b"\r\nOK\r\n")
    assert h.modem.mode == "command"


def test_back_pressure_and_underrun_once() -> None:
    h = _Harness("usr-5637")
    h.say(b"ATE0\rAT+FCLASS=8;+VLS=1\r")
    h.say(b"AT+VTX\r")
    h.out.clear()
    h.say(bytes([0x90]) * 1500)  # more than the 1 KB buffer: the rest waits
    assert h.modem.input_room() == 0
    for _ in range(3):
        h.tick()
    # what waited moved into the room the three frames made
    assert h.modem.input_room() == 1024 - (1500 - 3 * FRAME)
    for _ in range(12):
        h.tick()
    assert h.out == b"\x10u"  # ran dry once, reported once
    assert h.modem.mode == "tx"
    h.say(b"\x10\x10" * 160)  # 0x10 audio bytes arrive doubled
    frame = h.tick()
    assert frame is not None and (frame == (0x10 - 128) << 8).all()
    h.say(b"\x10\x03")
    h.tick()
    assert h.out.endswith(b"\x10\x03\r\nOK\r\n")


def test_recording_produces_one_frame_of_bytes_per_tick() -> None:
    h = _Harness("generic-v253")
    h.say(b"ATE0\rAT+FCLASS=8;+VLS=1\rAT+VSM=4,8000\rAT+VRX\r")
    h.out.clear()
    sound = np.full(FRAME, 1000, np.int16)
    for _ in range(5):
        h.tick(sound)
    audio, events = unshield(bytes(h.out))
    assert events == []
    assert audio == codecs.encode(np.tile(sound, 5), "ulaw")
    h.say(b"\x10!")
    assert h.out.endswith(b"\x10\x03\r\nOK\r\n")


def test_faults_inside_the_modem_are_contained() -> None:
    h = _Harness("usr-5637")

    def broken_sink(data: bytes) -> None:
        raise OSError("port broke")

    h.modem.connect_port(broken_sink)
    h.modem.host_bytes(b"AT\r")
    h.modem.ringing(True)
    h.modem.caller_id(CallerId.of(CALLER))
    assert h.modem.faults == {"host_bytes": 1, "ringing": 1}
    h.modem.connect_port(h.out.extend)
    assert h.say(b"AT\r").endswith(b"\r\nOK\r\n")


def test_caller_id_block_formats() -> None:
    from datetime import datetime

    when = datetime(2025, 1, 17, 9, 5)
    usr = VoiceModem(EmuClock(), "usr-5637")
    fq = VoiceModem(EmuClock(), "field-quirks")
    named = CallerId("number", "02155551234", name="A VERY LONG CALLER NAME", when=when)
    assert usr.format_caller_id(named) == (
        "\r\nDATE=0117\r\nTIME=0905\r\nNMBR=02155551234\r\nNAME=A VERY LONG CALLER NAME\r\n"
    )
    assert fq.format_caller_id(named) == (
        "\r\nMESG = 030101\r\nDATE = 0117\r\nTIME = 0905\r\n"
        "NAME = A VERY LONG CAL\r\nNMBR = 02155551234\r\n"
    )
    assert re.search(r"NMBR=O\r\n$", usr.format_caller_id(CallerId("unavailable", when=when)))
