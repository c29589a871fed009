"""``daemon1521 demo``: the daemon's call handling on an emulated line, with scripted callers.

A new caller dials 1521, types a bill ID, has it remembered and hears the
debt; then calls again from the same number and confirms the remembered bill
ID. On the third call he pays it: 1521 dials the emulated telephone bank on
its outbound line and relays him to it; he types his card and PIN to the bank
and has the card remembered. On the fourth he pays his other bill with the
remembered card, giving only the PIN. Everything runs for real below the
script: the daemon itself (as ``daemon1521 run --emulated``) supervises the
lines, its attendant drives the voice modems through the driver over
pseudo-terminals, the emulated modems put the audio on an emulated exchange,
and what each caller heard (from 1521 and from the bank) is recognised from
the audio that reached their phone. Cards are printed masked, PINs as *.

:class:`EmulatedSite` and :class:`Caller` are the harness the end-to-end flow
tests use.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.cards import mask_card
from daemon1521.billing.store import CallRecord, Store
from daemon1521.emulator.modem import available_personalities
from daemon1521.logs import setup_logging
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.site import DEMO_CALLER, DemoBill, EmulatedSite, sample_bills

DEFAULT_SPEED = 8.0
"""Emulated seconds per real second: quick, yet a person can follow along."""
DEFAULT_PERSONALITY = "conexant-cx93001"
DEMO_CARD = "6221061234567891"
"""A Bank Parsian card (Luhn-valid) with an account at the emulated bank."""
DEMO_PIN = "83917"
BANK_WAIT = 150.0
"""Emulated seconds a caller may wait on hold for the bank's question."""


class SpeedType(click.ParamType):
    """Emulated seconds per real second, or ``max``: as fast as the host allows."""

    name = "speed"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if value is None or str(value).lower() == "max":
            return None
        try:
            speed = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'max'", param, ctx)
        if not 1.0 <= speed <= 50.0:
            self.fail(f"{speed:g} is not between 1 and 50 (or 'max')", param, ctx)
        return speed


async def _first_call(caller: Caller, bill: DemoBill) -> None:
    await caller.dial()
    await caller.answer("ask_bill_id", bill.bill_id + "#")
    await caller.answer("bill_entered_confirm", "1")
    await caller.answer("offer_remember_bill", "1")
    await caller.answer("offer_payment", "2")
    await caller.until_line_hangs_up()


async def _second_call(caller: Caller) -> None:
    await caller.dial()
    await caller.answer("remembered_bill_confirm", "1")
    await caller.answer("offer_payment", "2")
    await caller.until_line_hangs_up()


PIN_SHOWN = "*" * len(DEMO_PIN) + "#"


async def _third_call(caller: Caller) -> None:
    """Pays the remembered bill with a card typed at the bank, and has it remembered."""
    await caller.dial()
    await caller.answer("remembered_bill_confirm", "1")
    await caller.answer("offer_payment", "1")
    await caller.answer("bank_ask_card", DEMO_CARD, BANK_WAIT, shown=mask_card(DEMO_CARD))
    await caller.answer("bank_card_confirm", "1")
    await caller.answer("bank_ask_pin", DEMO_PIN + "#", shown=PIN_SHOWN)
    await caller.answer("offer_remember_card", "1")
    await caller.until_line_hangs_up()


async def _fourth_call(caller: Caller, other: DemoBill) -> None:
    """Pays another bill with the remembered card: only the PIN is typed."""
    await caller.dial()
    await caller.answer("remembered_bill_confirm", "2")
    await caller.answer("ask_bill_id", other.bill_id + "#")
    await caller.answer("bill_entered_confirm", "1")
    await caller.answer("offer_remember_bill", "2")
    await caller.answer("offer_payment", "1")
    await caller.answer("remembered_card_confirm", "1")
    await caller.answer("bank_ask_pin", DEMO_PIN + "#", BANK_WAIT, shown=PIN_SHOWN)
    await caller.until_line_hangs_up()


def _print_call(title: str, caller: Caller, record: CallRecord, store: Store) -> None:
    click.echo(title)
    for kind, text in caller.transcript(cards=[DEMO_CARD]):
        label = "heard  " if kind == "heard" else "pressed"
        click.echo(f"  {label} {text}")
    click.echo(
        f"  record: outcome {record.outcome}, last state {record.last_state}, "
        f"bill {record.bill_id}, amount announced {record.amount_announced}"
    )
    click.echo(f"  states: {' > '.join(record.states)}")
    for payment in store.payments_of_calls([record.id]).get(record.id, []):
        click.echo(
            f"  payment: {payment.result}, bill {payment.bill_id}, {payment.amount} rials, "
            f"card {payment.card_masked}, tracking {payment.tracking}"
        )
    click.echo("")


async def run_demo(speed: float | None, personality: str) -> None:
    prompts = PromptLibrary(PromptCatalog("fa"))
    bills = sample_bills()
    bill, other = bills[0], bills[2]
    with tempfile.TemporaryDirectory(prefix="daemon1521-demo-") as tmp:
        async with EmulatedSite(
            Path(tmp) / "daemon1521.db",
            prompts=prompts,
            bills=bills,
            speed=speed,
            personality=personality,
            telebank=True,
            outbound=1,
        ) as site:
            assert site.bank is not None
            site.bank.add_account(DEMO_CARD, 10_000_000, DEMO_PIN)
            modem = site.line.snapshot().get("modem") or {}
            pace = "as fast as the host allows" if speed is None else f"at {speed:g}x real time"
            click.echo(
                f"daemon1521 on an emulated line ({modem.get('model') or personality}, "
                f"codec {modem.get('codec', '?')}) and an outbound line to the emulated "
                f"telephone bank, clock {pace}."
            )
            click.echo(
                f"Store seeded with {len(bills)} bills; caller {DEMO_CALLER} owes on "
                f"bill {bill.bill_id} (payment ID {bill.payment_id}) and on bill "
                f"{other.bill_id}; his card {mask_card(DEMO_CARD)} has an account at "
                f"the bank.\n"
            )
            caller = site.caller(DEMO_CALLER)
            calls = (
                (
                    _first_call(caller, bill),
                    "a new caller, types the bill ID and has it remembered",
                ),
                (_second_call(caller), "again, confirms the remembered bill ID"),
                (_third_call(caller), "pays it at the bank with his card, and has it remembered"),
                (_fourth_call(caller, other), "pays his other bill with the remembered card"),
            )
            for number, (script, title) in enumerate(calls, start=1):
                if number > 1:
                    await caller.wait(2.0)
                await script
                await site.wait_idle(calls=number, timeout=300.0)
                _print_call(
                    f"Call {number}: {DEMO_CALLER} {title}", caller, site.last_call(), site.store
                )
            remembered = site.store.remembered_bill(DEMO_CALLER)
            card = site.store.remembered_card(DEMO_CALLER)
            click.echo(
                f"Remembered for {DEMO_CALLER}: bill {remembered}, card {card and card.masked}"
            )
            click.echo(
                "The bank's ledger: "
                + "; ".join(
                    f"{d.amount} rials from {d.card} for bill {d.bill_id}" for d in site.bank.ledger
                )
            )


@click.command()
@click.option(
    "--speed",
    default=str(DEFAULT_SPEED),
    show_default=True,
    type=SpeedType(),
    help="Emulated seconds per real second (1 is real time), or max.",
)
@click.option(
    "--personality",
    default=DEFAULT_PERSONALITY,
    show_default=True,
    type=click.Choice(available_personalities()),
    help="Which emulated voice modem answers the line.",
)
@click.pass_context
def demo(ctx: click.Context, speed: float | None, personality: str) -> None:
    """Four scripted calls to 1521 on an emulated line, two of them paying at the
    emulated telephone bank, and what the caller heard."""
    parent = ctx.parent
    if parent is None or (
        parent.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT
    ):
        # the daemon's own INFO lines would interleave with the transcripts
        setup_logging("WARNING")
    asyncio.run(run_demo(speed, personality))
