"""VoiceModem against every emulated modem personality, over real ptys.

Identification, rings and caller ID, answering, playing audio that is full of
DLE-sensitive bytes, barge-in, type-ahead, key collection with each chip's
DTMF framing, and an unreliable serial link. Each test is judged by what the
phone heard and what the driver returned; see ``voice_support`` for the site
and the time base (the clock at 50x, the driver told the same).
"""

from __future__ import annotations

import asyncio

import pytest
from loguru import logger

from daemon1521.dsp import codecs
from daemon1521.dsp.tones import tone
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.modem.dle import DLE
from tests.voice_support import (
    CALLER,
    EXPECTED_CODEC,
    EXPECTED_PROFILE,
    PERSONALITIES,
    awkward_audio,
    call_in,
    collect_keys,
    contains_exactly,
    emulated_site,
    sound_frames,
)

BARGE_LIMIT = 0.100
PROMPT_HZ = 1000.0


def prompt(modem_codec: str, seconds: float) -> bytes:
    """A steady tone standing in for a voice prompt (no DTMF, no 425 Hz)."""
    return codecs.encode(tone([PROMPT_HZ], seconds, level_dbm0=-12.0), modem_codec)


pytestmark = pytest.mark.parametrize("personality", PERSONALITIES)


async def test_open_identifies_the_chip_and_chooses_a_codec_from_its_listing(personality):
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        async with emulated_site(personality) as (_rig, modem):
            info = modem.info
            assert modem.state == "idle"
    finally:
        logger.remove(sink)
    assert info is not None
    assert info.profile == EXPECTED_PROFILE[personality]
    assert (info.codec, info.codec_code) == EXPECTED_CODEC[personality]
    assert f"{info.codec_code}:{info.codec}" in info.codecs
    assert info.caller_id
    if EXPECTED_PROFILE[personality] == "generic-v253":
        assert info.matched_by == "fallback"
        assert any("unknown modem" in w for w in warnings)  # said so, and carried on
    else:
        assert info.matched_by.startswith("ATI3")
        assert warnings == []


@pytest.mark.parametrize("presentation", ["number", "private", "unavailable"])
async def test_caller_id_in_the_chips_own_spacing(personality, presentation):
    async with emulated_site(personality) as (rig, modem):
        phone, incoming = await call_in(rig, modem, CALLER, presentation)
        assert incoming.rings == 2
        assert incoming.caller is not None
        assert incoming.caller.status == presentation
        assert incoming.number == (CALLER if presentation == "number" else None)
        await phone.hang_up()
        await modem.hang_up()


@pytest.mark.parametrize("rings", [1, 3])
async def test_answers_on_the_ring_it_was_told(personality, rings):
    async with emulated_site(personality, rings_to_answer=rings) as (rig, modem):
        phone, incoming = await call_in(rig, modem)
        assert incoming.rings == rings
        line = rig.lines[0].number
        events = [e.event for e in rig.exchange.events if e.line == line]
        assert events.count("ring") == rings
        assert events.index("answered") > max(i for i, e in enumerate(events) if e == "ring")
        # caller ID comes after the first ring: too late for a first-ring answer
        assert (incoming.number is None) == (rings == 1)
        await phone.hang_up()
        await modem.hang_up()


async def test_play_delivers_every_byte_value_sample_exact(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        audio = awkward_audio(modem.codec)
        assert audio.count(DLE) > 20 and b"\x10\x03" in audio and b"\x11" in audio
        mark = len(phone.heard)
        assert await modem.play(audio) is None
        await phone.wait(0.2)
        pad = codecs.decode(codecs.silence(modem.codec, 1), modem.codec)[0]
        expected = codecs.decode(audio, modem.codec)
        assert contains_exactly(phone.heard[mark:], expected, pad)
        # and the modem is back in command mode, still in the call
        assert await modem.play(audio[:800]) is None
        await phone.hang_up()
        await modem.hang_up()


async def test_barge_in_stops_the_prompt_within_100_ms_of_the_key(personality):
    async with emulated_site(personality, rings_to_answer=1) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        # answered on the first ring, the tail of the caller's last dialled
        # digit reaches the modem: forget it
        await phone.wait(0.3)
        modem.flush_keys()
        emulated = rig.modems[0]
        detected: list[int] = []
        # The instrument: the frame in which the chip reported the key.
        to_host = emulated._sink
        assert to_host is not None

        def tap(data: bytes) -> None:
            if not detected and (DLE + b"7" in data or DLE + b"/" in data):
                detected.append(rig.clock.frame)
            to_host(data)

        emulated._sink = tap

        async def caller() -> None:
            await phone.wait(1.0)
            await phone.press("7")

        mark = len(phone.heard)
        started = rig.clock.now()
        pressing = asyncio.create_task(caller())
        try:
            key = await modem.play(prompt(modem.codec, 4.0))
            returned = rig.clock.now() - started
            await pressing
        finally:
            await wait_cancelled(pressing)
        assert key == "7"
        assert returned < 2.0
        await phone.wait(0.5)
        sound = sound_frames(rig, phone, mark)
        assert detected, "the chip never reported the key"
        # prompt audio was still flowing when the key came, and stopped soon after
        assert detected[0] - 1 in sound
        # every frame of prompt from the detecting one on counts (conservative:
        # that frame's audio was on the line before the chip had the key)
        late = sound[sound >= detected[0]]
        overrun = (late.max() - detected[0] + 1) * 0.02 if len(late) else 0.0
        assert overrun <= BARGE_LIMIT, f"prompt went on {overrun * 1000:.0f} ms after the key"
        assert modem.pending_keys() == 0
        await phone.hang_up()
        await modem.hang_up()


async def test_typed_ahead_keys_skip_the_next_prompt_and_are_kept(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        # keys pressed while the driver is between operations
        await phone.wait(0.5)
        await phone.press("42")
        await phone.wait(0.5)
        mark = len(phone.heard)
        assert await modem.play(prompt(modem.codec, 2.0)) is None
        await phone.wait(0.3)
        assert len(sound_frames(rig, phone, mark)) == 0, "the prompt was played anyway"
        assert modem.pending_keys() == 2
        # keys pressed during a prompt without barge-in are queued, in order
        pressing = asyncio.create_task(phone.press("9"))
        assert await modem.play(prompt(modem.codec, 1.0), barge_in=False) is None
        await pressing
        assert await collect_keys(modem, 3) == ["4", "2", "9"]
        assert await modem.next_key(0.5) is None
        await phone.hang_up()
        await modem.hang_up()


async def test_key_collection_gives_one_key_per_press(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        presses = [
            ("123#", 0.12, 0.12),  # a typical entry
            ("1122*0", 0.12, 0.15),  # the same digit twice is two presses
            ("5#5", 0.5, 0.3),  # long presses: Conexant repeats the digit inside /~
        ]
        for keys, on, gap in presses:
            pressing = asyncio.create_task(phone.press(keys, on=on, gap=gap))
            try:
                got = await collect_keys(modem, len(keys))
                await pressing
            finally:
                await wait_cancelled(pressing)
            assert "".join(got) == keys
            assert await modem.next_key(1.0) is None, "a held key was counted twice"
        await phone.hang_up()
        await modem.hang_up()


async def test_split_reads_and_line_noise_while_idle_do_not_upset_it(personality):
    async with emulated_site(personality) as (rig, modem):
        emulated = rig.modems[0]
        # every answer of a whole re-initialisation arrives a byte per read
        emulated.split_writes(1)
        emulated.inject(b"\x00\xfe\x7f~%$#@!\x1b[2J\xff\r\n\r\n\x13\x11garbage\x08\r")
        await modem.initialise()
        emulated.inject(bytes(range(0x20, 0x7F)) + b"\r\n\x00\xff\xfe")
        # rings, caller ID and the answer a byte at a time, 20 ms apart
        emulated.split_writes(1, 0.02)
        phone = rig.phone(CALLER)
        dialling = asyncio.create_task(phone.dial(rig.service_number))
        try:
            await phone.wait(0.5)
            emulated.inject(b"\xff\xfe\xfd noise \x7f\r")
            incoming = await modem.wait_for_call(timeout=30)
            await modem.answer()
            assert await dialling == "answered"
        finally:
            await wait_cancelled(dialling)
        assert incoming is not None and incoming.number == CALLER
        emulated.split_writes(64)  # audio streams too fast for byte-sized pieces
        pressing = asyncio.create_task(phone.press("80#"))
        try:
            assert await collect_keys(modem, 3) == ["8", "0", "#"]
        finally:
            await wait_cancelled(pressing)
        await phone.hang_up()
        await modem.hang_up()
        assert modem.state == "idle"


async def test_a_timeout_due_between_rings_waits_for_the_ringing_call(personality):
    """The daemon's idle health check is a wait_for_call timeout; one that fell due
    between the first ring and the answering one dropped the ring counted, and
    the call was answered a whole ring cadence (5 s) late."""
    async with emulated_site(personality) as (rig, modem):
        phone = rig.phone(CALLER)
        dialling = asyncio.create_task(phone.dial(rig.service_number))
        try:
            while rig.exchange.alerting_since(rig.lines[0]) is None:
                await rig.clock.sleep(0.1)
            await rig.clock.sleep(0.5)  # the first ring has come
            incoming = await modem.wait_for_call(timeout=1.0)  # due long before the second
            assert incoming is not None and incoming.rings == 2
            assert rig.clock.now() - rig.exchange.alerting_since(rig.lines[0]) < 6.0
            await modem.answer()
            assert await dialling == "answered"
        finally:
            await wait_cancelled(dialling)
        await phone.hang_up()
        await modem.hang_up()
        # not ringing: the timeout is a timeout
        assert await modem.wait_for_call(timeout=1.0) is None


async def test_a_ring_that_comes_while_the_line_hangs_up_is_kept_for_the_next_call(personality):
    """A busy hunt group rings a line the moment it is on hook, while the driver
    still sends the rest of its hang-up; that ring was drained with the call's
    leftovers, and the next call answered a ring cadence late."""
    async with emulated_site(personality, rings_to_answer=1) as (rig, modem):
        emulated = rig.modems[0]
        phone, _ = await call_in(rig, modem)
        await phone.hang_up()
        hanging = asyncio.create_task(modem.hang_up())
        try:
            while emulated.off_hook:
                await asyncio.sleep(0)
            emulated.inject(b"\r\nRING\r\n")  # on hook, the rest of the hang-up to come
            await hanging
        finally:
            await wait_cancelled(hanging)
        incoming = await modem.wait_for_call(timeout=0.5)
        assert incoming is not None and incoming.rings == 1


async def test_answered_calls_are_not_mistaken_for_new_ones(personality):
    """RING that lags the hook change (USR, field reports) and DLE H after VLS=1."""
    async with emulated_site(personality, rings_to_answer=1) as (rig, modem):
        for round_ in range(2):
            phone, _ = await call_in(rig, modem, f"0912000000{round_}")
            await phone.wait(0.3)
            modem.flush_keys()  # the tail of the caller's last dialled digit
            pressing = asyncio.create_task(phone.press("3"))
            try:
                assert await modem.next_key(5.0) == "3"
            finally:
                await wait_cancelled(pressing)
            await phone.hang_up()
            await modem.hang_up()
        # a single stray ring would be a call here (rings_to_answer=1)
        assert await modem.wait_for_call(timeout=3) is None
