"""The load callers' paying style, on the test-bed site: a caller goes through the
1521 flow, accepts the payment offer, pays through the daemon's bank leg and
the emulated telephone bank, and both sides agree on the payment.

The rack benchmark (benchmarks/rack.py) runs the same callers at real time;
its smoke test is too short to reach a payment, so this one pays on the
flat-out clock. The caller is the eighth of a rack split over test-bed
processes (``first``), whose bank holds every caller's account.
"""

from __future__ import annotations

import asyncio

import pytest

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.cards import mask_card
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.meter import LineMeter
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.load import FIRST_CALLER, LoadCallers, payable_bills, paying_card
from daemon1521.testbed.site import EmulatedSite


@pytest.fixture(scope="module")
def ears() -> Ears:
    return Ears(PromptLibrary(PromptCatalog("fa")), [bank_voice()])


async def test_a_paying_load_caller_is_debited_once_and_recorded_paid(tmp_path, ears):
    bills = payable_bills(3)
    site = EmulatedSite(tmp_path / "calls.db", ears=ears, bills=bills, telebank=True, outbound=1)
    async with site:
        assert site.bank is not None
        meter = LineMeter()
        site.rig.modems[0].meter = meter
        callers = LoadCallers(
            site.rig,
            ears,
            [bills[-1].bill_id],
            callers=1,
            bank=site.bank,
            pay_bills=[b.bill_id for b in bills[:2]],
            styles=[("pay", 1.0)],
            wrong_pin=0.0,
            first=7,
            accounts=range(8),
        )
        assert len(site.bank.accounts) == 8
        run = asyncio.create_task(callers.run())
        try:
            async with site.rig.clock.timeout(900.0):
                while not callers.results:
                    await site.rig.clock.sleep(1.0)
        finally:
            await wait_cancelled(run)
        for line in range(len(site.lines)):
            await site.wait_idle(line=line, timeout=120.0)

        result = callers.results[0]
        assert (result.style, result.ended, result.payment) == ("pay", "done", "paid")
        card, _ = paying_card(7)
        [debit] = site.bank.ledger
        assert (debit.card, debit.bill_id, debit.amount) == (
            mask_card(card),
            bills[0].bill_id,
            bills[0].amount_rials,
        )
        record = site.last_call()
        assert record.outcome == "paid"
        assert record.caller_number == f"0{FIRST_CALLER + 7}"
        payments = site.store.payments_of_calls([record.id])[record.id]
        assert [(p.result, p.bill_id, p.tracking) for p in payments] == [
            ("paid", bills[0].bill_id, debit.tracking)
        ]
        # the card and PIN keys were answered by the bank through the relay, the
        # bill ID and the offers by 1521: counted apart
        figures, relay = meter.figures, meter.relay_figures
        assert len(relay.key_to_prompt) >= 2
        assert len(figures.key_to_prompt) >= 3
        assert relay.prompts > 0 and figures.prompts > 0
