"""VoiceModem dialling out, against every emulated personality: each call-progress outcome.

The far ends are emulated phones on the same exchange: one that answers, one
already off hook (busy), one that never answers; "no dial tone" is a line
whose exchange sends no audible dial tone (a dead pair), made with a tone plan
whose tones are far below any detector's threshold. Answered calls carry the
driver's DTMF to the far phone, judged by a DTMF receiver on what it heard.
"""

from __future__ import annotations

import asyncio

import pytest

from daemon1521.emulator.rig import wait_cancelled
from daemon1521.emulator.toneplan import TonePlan
from tests.voice_support import PERSONALITIES, dtmf_heard, emulated_site

FAR = "5550002"
CARD_KEYS = "6037991234567890*#"
DEAD_LINE = TonePlan(tone_level_dbm0=-70.0)

EVERY_CHIP = pytest.mark.parametrize("personality", PERSONALITIES)


@EVERY_CHIP
async def test_dial_answered_and_dtmf_reaches_the_far_phone(personality):
    async with emulated_site(personality) as (rig, modem):
        far = rig.phone(FAR)

        async def pick_up() -> None:
            assert await far.wait_for_ring(60) is not None
            await far.answer()

        answering = asyncio.create_task(pick_up())
        try:
            assert await modem.dial(FAR) == "answered"
            await answering
        finally:
            await wait_cancelled(answering)
        assert modem.in_call
        mark = len(far.heard)
        # a card number and more: longer than the shortest command buffer allows
        await modem.send_dtmf(CARD_KEYS)
        await far.wait(0.3)
        assert dtmf_heard(far.heard[mark:]) == CARD_KEYS
        await modem.hang_up()
        assert modem.state == "idle"
        await far.wait(0.5)
        assert far.state == "busy"  # the exchange cleared the far end
        await far.hang_up()


@EVERY_CHIP
async def test_dial_busy_then_no_answer_then_dials_again(personality):
    async with emulated_site(personality) as (rig, modem):
        far = rig.phone(FAR)
        far.lift()  # off hook: busy to callers
        assert await modem.dial(FAR) == "busy"
        assert modem.state == "idle"
        await far.hang_up()
        started = rig.clock.now()
        # rings on and on: the driver's own limit ends it, the line goes back on hook
        assert await modem.dial(FAR, timeout=12.0) == "no_answer"
        assert 12.0 <= rig.clock.now() - started < 20.0
        assert modem.state == "idle"
        await far.wait(0.2)
        assert far.state == "idle"  # ringing stopped: the modem abandoned the call
        # and the modem dials again at once
        far.lift()
        assert await modem.dial(FAR) == "busy"
        await far.hang_up()


@EVERY_CHIP
async def test_dial_on_a_line_without_dial_tone(personality):
    async with emulated_site(personality, plan=DEAD_LINE) as (_rig, modem):
        assert await modem.dial(FAR) == "no_dialtone"
        assert modem.state == "idle"


async def test_dial_no_answer_reported_by_the_chip_itself():
    """The chip's no-answer timer (S7 = 60 s on the USR) against the driver's default limit."""
    async with emulated_site("usr-5637", real_limit=30.0) as (rig, modem):
        rig.phone(FAR)
        assert await modem.dial(FAR) == "no_answer"
        assert modem.state == "idle"
