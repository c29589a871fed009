"""Each kind of hang-up evidence, on every emulated personality.

The emulated exchange clears a call the way the tone plan says: a loop-current
break, then busy tone (425 Hz, 0.5/0.5 s) until it parks the line in silence.
Chips report different things (generic: DLE l; USR: DLE b while it lasts,
also during +VTX; Conexant: DLE b only while recording, and its profile trusts
none of it; field-quirks: nothing at all; MultiTech: like generic, but nothing
while recording), so the driver must reach the same
verdict from its own analysis of the received audio where the chip is silent.
A second tone plan returns dial tone to the party left on the line (as some
PBXs do) to exercise dial-tone evidence.
"""

from __future__ import annotations

import asyncio

import pytest

from daemon1521.dsp import codecs
from daemon1521.dsp.tones import tone
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.emulator.toneplan import TonePlan
from daemon1521.modem.voice import CallEnded
from tests.voice_support import PERSONALITIES, call_in, emulated_site

EVERY_CHIP = pytest.mark.parametrize("personality", PERSONALITIES)
DIAL_TONE_AFTER_CLEAR = TonePlan(busy_cadence=(), loop_break_on_clear=False)
PROMPT_SECONDS = 8.0
HANG_UP_AFTER = 1.0

# The verdict while the driver listens (+VRX), and what a caller hanging up
# during a prompt (+VTX, when the driver hears no audio) leads to: the reason
# given during playback, or None when the chip reports nothing then and the
# verdict waits for the next listen.
LISTENING = {
    "conexant-cx93001": "busy_tone",  # software: the profile trusts no chip event
    "conexant-cx93001-v2013": "busy_tone",
    "usr-5637": "busy_tone",
    "generic-v253": "loop_break",  # DLE l
    "field-quirks": "busy_tone",  # software: the chip reports nothing
    "multitech-mt5634zpx": "busy_tone",  # software: no DLE events during +VRX
}
DURING_PROMPT = {
    "conexant-cx93001": None,  # busy reported only while recording
    "conexant-cx93001-v2013": None,
    "usr-5637": "busy_tone",  # DLE b during +VTX
    "generic-v253": "loop_break",
    "field-quirks": None,
    "multitech-mt5634zpx": "loop_break",  # DLE l during +VTX
}
DIAL_TONE_DURING_PROMPT = {
    "conexant-cx93001": None,  # DLE d is sent, but the profile trusts no chip event
    "conexant-cx93001-v2013": None,
    "usr-5637": None,  # false DLE d during play: ignored by its profile
    "generic-v253": "dial_tone",  # DLE d
    "field-quirks": None,
    "multitech-mt5634zpx": "dial_tone",  # DLE d during +VTX
}


def prompt(codec: str, seconds: float = PROMPT_SECONDS) -> bytes:
    return codecs.encode(tone([1000.0], seconds, level_dbm0=-12.0), codec)


async def hang_up_later(phone, seconds: float) -> float:
    await phone.wait(seconds)
    await phone.hang_up()
    return phone.clock.now()


@EVERY_CHIP
async def test_far_end_hangs_up_while_listening(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        hanging = asyncio.create_task(hang_up_later(phone, HANG_UP_AFTER))
        try:
            with pytest.raises(CallEnded) as ended:
                await modem.next_key(30.0)
            hung_up_at = await hanging
        finally:
            await wait_cancelled(hanging)
        assert ended.value.hung_up.reason == LISTENING[personality]
        assert rig.clock.now() - hung_up_at < 3.5
        with pytest.raises(CallEnded):  # the verdict stands until the driver hangs up
            await modem.play(prompt(modem.codec, 1.0))
        await modem.hang_up()
        assert modem.state == "idle"


@EVERY_CHIP
async def test_far_end_hangs_up_during_a_prompt(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        started = rig.clock.now()
        hanging = asyncio.create_task(hang_up_later(phone, HANG_UP_AFTER))
        try:
            expected = DURING_PROMPT[personality]
            if expected is None:
                assert await modem.play(prompt(modem.codec)) is None
                assert rig.clock.now() - started >= PROMPT_SECONDS
                with pytest.raises(CallEnded) as ended:
                    await modem.next_key(30.0)
                assert ended.value.hung_up.reason == "busy_tone"
            else:
                with pytest.raises(CallEnded) as ended:
                    await modem.play(prompt(modem.codec))
                assert ended.value.hung_up.reason == expected
                assert rig.clock.now() - started < HANG_UP_AFTER + 3.5
            await hanging
        finally:
            await wait_cancelled(hanging)
        await modem.hang_up()
        assert modem.state == "idle"


@EVERY_CHIP
async def test_dial_tone_after_the_far_end_clears(personality):
    async with emulated_site(personality, plan=DIAL_TONE_AFTER_CLEAR) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        started = rig.clock.now()
        hanging = asyncio.create_task(hang_up_later(phone, HANG_UP_AFTER))
        try:
            expected = DIAL_TONE_DURING_PROMPT[personality]
            if expected is None:
                assert await modem.play(prompt(modem.codec)) is None
            else:
                with pytest.raises(CallEnded) as ended:
                    await modem.play(prompt(modem.codec))
                assert ended.value.hung_up.reason == expected
                assert rig.clock.now() - started < HANG_UP_AFTER + 4.0
            await hanging
        finally:
            await wait_cancelled(hanging)
        if expected is None:
            with pytest.raises(CallEnded) as ended:
                await modem.next_key(30.0)
            assert ended.value.hung_up.reason == "dial_tone"
        await modem.hang_up()


@EVERY_CHIP
async def test_long_silence_ends_the_call(personality):
    async with emulated_site(personality, silence_hangup=4.0) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        # a key first: silence is counted from the last sound, not from the answer
        pressing = asyncio.create_task(phone.press("1"))
        try:
            assert await modem.next_key(5.0) == "1"
        finally:
            await wait_cancelled(pressing)
        started = rig.clock.now()
        with pytest.raises(CallEnded) as ended:
            await modem.next_key(30.0)
        assert ended.value.hung_up.reason == "silence"
        assert 4.0 <= round(rig.clock.now() - started, 6) < 6.0  # whole frames, as floats
        assert phone.off_hook  # the caller is still there, saying nothing
        await modem.hang_up()
        await phone.hang_up()


@EVERY_CHIP
@pytest.mark.parametrize("during", ["listen", "play"])
async def test_port_failure_mid_call_ends_it_promptly(personality, during):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        emulated = rig.modems[0]
        loop = asyncio.get_running_loop()

        async def unplug() -> float:
            await phone.wait(1.0)
            await emulated.vanish()
            return loop.time()

        unplugging = asyncio.create_task(unplug())
        try:
            with pytest.raises(CallEnded) as ended:
                if during == "listen":
                    await modem.next_key(30.0)
                else:
                    await modem.play(prompt(modem.codec))
            gone_at = await unplugging
        finally:
            await wait_cancelled(unplugging)
        assert ended.value.hung_up.reason == "port_failure"
        assert loop.time() - gone_at < 0.5  # real seconds: noticed, not timed out
        assert modem.state == "down"
        await modem.hang_up()  # nothing to talk to: must not hang or raise
        # the device comes back: the driver reopens it and takes the next call
        await emulated.reappear()
        await modem.close()
        info = await modem.open()
        assert info.profile
        await phone.hang_up()
        if during == "listen":  # (the faults tests take calls after reopening too)
            phone2, incoming = await call_in(rig, modem, "09350000000")
            assert incoming.number == "09350000000"
            await phone2.hang_up()
            await modem.hang_up()
