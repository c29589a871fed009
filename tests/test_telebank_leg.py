"""The bank leg on the emulator: a caller's modem, an outbound modem, the emulated bank.

Judged by the leg's result, what the bank's ledger and call log say, and
both lines back on hook and idle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import pytest

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.cards import luhn_ok
from daemon1521.billing.ids import make_bill_id, make_payment_id
from daemon1521.emulator.bank import TelephoneBank
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.phone import Phone
from daemon1521.emulator.rig import Rig, wait_cancelled
from daemon1521.modem.voice import VoiceModem
from daemon1521.telebank.leg import BankLeg, LegResult, PaymentOutcome
from daemon1521.telebank.profile import TelebankProfile, load_profile

SPEED = 8.0
LEAD = 0.6
CALLER = "02177778888"
BILL = make_bill_id(4_711, 123)
PAYMENT = make_payment_id(BILL, 250_000, 4, 12)
PROFILE = load_profile()


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")
PIN = "83917"


@pytest.fixture(scope="module")
def prompts() -> PromptLibrary:
    return PromptLibrary(PromptCatalog("fa"))


def bank_recordings() -> dict:
    voice = bank_voice()
    return {n: voice.samples(n) for n in voice.catalog.names() if n != "bank_pause"}


class Site:
    def __init__(self, rig: Rig, inbound: VoiceModem, outbound: VoiceModem, bank: TelephoneBank):
        self.rig, self.inbound, self.outbound, self.bank = rig, inbound, outbound, bank
        self.leases = 0

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[VoiceModem | None]:
        self.leases += 1
        yield self.outbound


@contextlib.asynccontextmanager
async def site(personality: str) -> AsyncIterator[Site]:
    async with asyncio.timeout(120):
        async with Rig(2, [personality], speed=SPEED) as rig:
            bank = TelephoneBank.on_exchange(rig.exchange, PROFILE.dial.number)
            bank.add_account(CARD, 10_000_000, PIN)
            inbound = VoiceModem(str(rig.modems[0].link), clock=rig.clock)
            outbound = VoiceModem(str(rig.modems[1].link), clock=rig.clock)
            try:
                await inbound.open()
                await outbound.open()
                async with bank:
                    yield Site(rig, inbound, outbound, bank)
            finally:
                await inbound.close()
                await outbound.close()


async def run_leg(
    s: Site, prompts: PromptLibrary, script, profile: TelebankProfile = PROFILE
) -> tuple[LegResult, Phone]:
    phone = s.rig.phone(CALLER, recordings=bank_recordings())
    dialling = asyncio.create_task(phone.dial(s.rig.service_number))
    incoming = await s.inbound.wait_for_call(timeout=30)
    assert incoming is not None
    await s.inbound.answer()
    assert await dialling == "answered"
    leg = BankLeg(s.inbound, s.lease, profile, prompts, name="test", clock=s.rig.clock, lead=LEAD)
    caller = asyncio.create_task(script(phone))
    try:
        result = await leg.run(BILL, PAYMENT)
    finally:
        if not caller.done():
            await wait_cancelled(caller)
    with contextlib.suppress(Exception):
        await s.inbound.hang_up()
    if phone.off_hook:
        await phone.hang_up()
    return result, phone


def quick_profile(**dial: float) -> TelebankProfile:
    return msgspec.structs.replace(PROFILE, dial=msgspec.structs.replace(PROFILE.dial, **dial))


async def idle_caller(phone: Phone) -> None:
    await asyncio.sleep(3600)


async def assert_lines_free(s: Site) -> None:
    await asyncio.sleep(0.5)
    assert s.outbound.state == "idle"
    assert s.rig.exchange.line_state(s.rig.lines[1]) == "idle"
    assert s.rig.exchange.line_state(PROFILE.dial.number) in ("idle", "busy", "parked")


@pytest.mark.parametrize("personality", ["conexant-cx93001", "usr-5637"])
async def test_no_outbound_line_free(prompts, personality: str):
    async with site(personality) as s:

        @contextlib.asynccontextmanager
        async def none_free() -> AsyncIterator[VoiceModem | None]:
            yield None

        s.lease = none_free  # type: ignore[method-assign]
        result, _ = await run_leg(s, prompts, idle_caller)
        assert result.outcome is PaymentOutcome.BANK_BUSY
        assert s.bank.calls == [] and s.bank.ledger == []


@pytest.mark.parametrize("personality", ["conexant-cx93001", "usr-5637"])
async def test_bank_never_answers(prompts, personality: str):
    async with site(personality) as s:
        s.bank.faults.no_answer = True
        profile = quick_profile(attempts=2, answer_timeout=12.0, retry_pause=1.0)
        result, _ = await run_leg(s, prompts, idle_caller, profile=profile)
        assert result.outcome is PaymentOutcome.BANK_UNREACHABLE
        assert s.bank.ledger == [] and s.leases == 1
        await assert_lines_free(s)
