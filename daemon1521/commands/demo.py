"""``daemon1521 demo``: the daemon's call handling on an emulated line, with scripted callers.

A new caller dials 1521, types a bill ID, has it remembered and hears the
debt; then calls again from the same number and confirms the remembered bill
ID. Everything runs for real below the script: the daemon itself (as
``daemon1521 run --emulated 1``) supervises the line, and its attendant drives
a voice modem through the driver over a pseudo-terminal, the emulated modem
puts the prompts' audio on an emulated exchange line, and what each caller
heard is recognised from the audio that reached their phone.

:class:`EmulatedSite` and :class:`Caller` are the harness the end-to-end flow
tests use.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.store import CallRecord
from daemon1521.emulator.modem import available_personalities
from daemon1521.logs import setup_logging
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.site import DEMO_CALLER, DemoBill, EmulatedSite, sample_bills

DEFAULT_SPEED = 8.0
"""Emulated seconds per real second: quick, yet a person can follow along."""
DEFAULT_PERSONALITY = "conexant-cx93001"


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


def _print_call(title: str, caller: Caller, record: CallRecord) -> None:
    click.echo(title)
    for kind, text in caller.transcript():
        label = "heard  " if kind == "heard" else "pressed"
        click.echo(f"  {label} {text}")
    click.echo(
        f"  record: outcome {record.outcome}, last state {record.last_state}, "
        f"bill {record.bill_id}, amount announced {record.amount_announced}"
    )
    click.echo(f"  states: {' > '.join(record.states)}")
    click.echo("")


async def run_demo(speed: float, personality: str) -> None:
    prompts = PromptLibrary(PromptCatalog("fa"))
    bills = sample_bills()
    bill = bills[0]
    with tempfile.TemporaryDirectory(prefix="daemon1521-demo-") as tmp:
        async with EmulatedSite(
            Path(tmp) / "daemon1521.db",
            prompts=prompts,
            bills=bills,
            speed=speed,
            personality=personality,
        ) as site:
            modem = site.line.snapshot().get("modem") or {}
            click.echo(
                f"daemon1521 on one emulated line ({modem.get('model') or personality}, "
                f"codec {modem.get('codec', '?')}), clock at {speed:g}x real time."
            )
            click.echo(
                f"Store seeded with {len(bills)} bills; caller {DEMO_CALLER} owes on "
                f"bill {bill.bill_id} (payment ID {bill.payment_id}).\n"
            )
            caller = site.caller(DEMO_CALLER)
            await _first_call(caller, bill)
            await site.wait_idle(calls=1)
            _print_call(
                f"Call 1: {DEMO_CALLER}, a new caller, types the bill ID and has it remembered",
                caller,
                site.last_call(),
            )
            await caller.wait(2.0)
            await _second_call(caller)
            await site.wait_idle(calls=2)
            _print_call(
                f"Call 2: {DEMO_CALLER} again, confirms the remembered bill ID",
                caller,
                site.last_call(),
            )
            remembered = site.store.remembered_bill(DEMO_CALLER)
            click.echo(f"Remembered for {DEMO_CALLER}: {remembered}")


@click.command()
@click.option(
    "--speed",
    default=DEFAULT_SPEED,
    show_default=True,
    type=click.FloatRange(min=1.0, max=50.0),
    help="Emulated seconds per real second (1 is real time).",
)
@click.option(
    "--personality",
    default=DEFAULT_PERSONALITY,
    show_default=True,
    type=click.Choice(available_personalities()),
    help="Which emulated voice modem answers the line.",
)
@click.pass_context
def demo(ctx: click.Context, speed: float, personality: str) -> None:
    """Two scripted calls to 1521 on an emulated line, and what each caller heard."""
    parent = ctx.parent
    if parent is None or (
        parent.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT
    ):
        # the daemon's own INFO lines would interleave with the transcripts
        setup_logging("WARNING")
    asyncio.run(run_demo(speed, personality))
