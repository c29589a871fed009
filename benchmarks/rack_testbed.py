"""One test-bed process of the rack: an exchange, its modems, callers and the bank.

``benchmarks/rack.py`` starts one or more of these and the daemon beside them.
The emulation costs about three quarters of a core per 128 lines with
payments (per-line Python at 50 frames a second: mostly the modems' DTMF and
tone detectors and their receive path), and one process that busy misses
its 20 ms deadlines, so a rack of 128 lines is split over several
processes, each serving its share of the lines on its own exchange. The
daemon cannot tell: its lines are pty links, wherever they lead.

Each process has a telephone bank on the bank's number holding every caller's
account, since the daemon's outbound pool does not care which exchange a line
hangs on: a caller's payment may reach the bank of any process. Each bank
counts its own tracking numbers, so the ledgers add up to one.

The parent talks to a process over its stdin and stdout, one JSON object per
line. The process reads its part of the run (:class:`Part`, as JSON) first and
prints ``{"ready": ...}`` with its modems' links. On ``go`` it starts its
callers and prints ``{"status": ...}`` (lines off hook) every half second. On
``stop`` it cuts its callers, hangs up their phones and prints ``{"stopped":
...}``. On ``end`` (the daemon has stopped) it stops its bank, prints ``{"done":
...}`` with everything it measured and exits. End of input at any point also
ends it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.emulator.bank import FIRST_TRACKING, TelephoneBank
from daemon1521.emulator.bank_voice import bank_voice
from daemon1521.emulator.meter import LineMeter, MeterFigures
from daemon1521.emulator.rig import Rig, wait_cancelled
from daemon1521.logs import setup_logging
from daemon1521.telebank.profile import load_profile
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.load import LoadCallers

ANSWER_RING = 2
"""Rings before answering, as configured for every line."""
LAG_EVERY = 0.1
"""Real seconds between readings of the emulator's lag."""
LAG_LIMIT = 0.1
"""Worst lag (seconds) beyond which the test bed is said to have fallen behind."""
STATUS_EVERY = 0.5
"""Real seconds between reports of the lines off hook."""
TRACKING_SERIES = 1_000_000
"""Tracking numbers between one process's bank and the next one's."""


@dataclass(frozen=True)
class Part:
    """One process's share of a rack run."""

    index: int
    lines: int
    """1521 lines (modems on this exchange's hunt group), one caller each."""
    outbound: int
    """The daemon's outbound lines on this exchange (modems after the 1521 lines)."""
    first: int
    """Global index of this process's first caller."""
    callers_total: int
    """Callers in the whole rack: each bank holds all their accounts."""
    personalities: list[str]
    link_dir: str
    bill_ids: list[str]
    pay_bills: list[str]
    stagger: float
    seed: int


class Lag:
    """How far the emulated clock is behind wall time (speed 1) since :meth:`start`."""

    def __init__(self, rig: Rig) -> None:
        self.clock = rig.clock
        self.worst = 0.0
        self.end = 0.0
        self.start()

    def start(self) -> None:
        self.wall0, self.emu0 = time.monotonic(), self.clock.now()

    def now(self) -> float:
        return (time.monotonic() - self.wall0) - (self.clock.now() - self.emu0)

    def behind(self) -> bool:
        return self.now() > LAG_LIMIT

    async def watch(self) -> None:
        self.start()
        while True:
            await asyncio.sleep(LAG_EVERY)
            self.end = self.now()
            self.worst = max(self.worst, self.end)


def say(kind: str, **values: Any) -> None:
    sys.stdout.write(json.dumps({kind: values}) + "\n")
    sys.stdout.flush()


async def expect(commands: asyncio.StreamReader, word: str) -> None:
    line = (await commands.readline()).decode().strip()
    if line != word:
        raise SystemExit(f"rack test bed: expected {word!r} from the rack, got {line or 'EOF'!r}")


async def report(rig: Rig, inbound: int) -> None:
    while True:
        say(
            "status",
            in_call=sum(1 for m in rig.modems[:inbound] if m.off_hook),
            legs=sum(1 for m in rig.modems[inbound:] if m.off_hook),
        )
        await asyncio.sleep(STATUS_EVERY)


async def serve(part: Part, commands: asyncio.StreamReader) -> None:
    ears = Ears(PromptLibrary(PromptCatalog("fa")), [bank_voice()])
    rig = Rig(
        part.lines,
        part.personalities,
        speed=1.0,
        link_dir=part.link_dir,
        outbound=part.outbound,
    )
    # as many bank lines as the daemon has outbound lines here: a real telephone
    # bank answers many calls at once, and the rack measures 1521, not the bank
    bank = TelephoneBank.on_exchange(
        rig.exchange,
        load_profile().dial.number,
        lines=max(1, part.outbound),
        first_tracking=FIRST_TRACKING + part.index * TRACKING_SERIES,
    )
    lag = Lag(rig)
    meters = [LineMeter(ANSWER_RING, behind=lag.behind) for _ in rig.modems]
    for modem, meter in zip(rig.modems, meters, strict=True):
        modem.meter = meter
    # callers recognise prompts on a thread: at 10-40 ms a time, in the loop it
    # would hold up every line of this process (see CallerSite)
    listening = ThreadPoolExecutor(1, thread_name_prefix="rack-ears")
    callers: LoadCallers | None = None
    tasks: list[asyncio.Task[None]] = []
    cpu = 0.0
    cut = cut_paying = 0
    async with rig:
        bank.start()
        try:
            say("ready", links=[str(m.link) for m in rig.modems], personalities=rig.personalities)
            await expect(commands, "go")
            callers = LoadCallers(
                rig,
                ears,
                part.bill_ids,
                callers=part.lines,
                stagger=part.stagger,
                seed=part.seed,
                bank=bank,
                pay_bills=part.pay_bills,
                first=part.first,
                accounts=range(part.callers_total),
                listening=listening,
            )
            cpu0 = time.process_time()
            tasks += [
                asyncio.create_task(lag.watch()),
                asyncio.create_task(report(rig, part.lines)),
                asyncio.create_task(callers.run()),
            ]
            await expect(commands, "stop")
            cpu = time.process_time() - cpu0
            cut, cut_paying = callers.in_progress, callers.paying
            for task in reversed(tasks):
                await wait_cancelled(task)
            tasks.clear()
            for phone in rig.phones.values():
                await phone.hang_up()
            say("stopped")
            # calls cut off mid-payment end on the daemon's side (and the bank's)
            await expect(commands, "end")
        finally:
            for task in tasks:
                await wait_cancelled(task)
            await bank.stop()
            listening.shutdown(cancel_futures=True)
    inbound, relay, outbound = MeterFigures(), MeterFigures(), MeterFigures()
    for meter in meters[: part.lines]:
        inbound.merge(meter.figures)
        relay.merge(meter.relay_figures)
    for meter in meters[part.lines :]:
        outbound.merge(meter.figures)
        outbound.merge(meter.relay_figures)
    say(
        "done",
        results=[dataclasses.asdict(r) for r in callers.results] if callers else [],
        cut=cut,
        cut_paying=cut_paying,
        ledger=[debit.tracking for debit in bank.ledger],
        meter=inbound.to_json(),
        relay_meter=relay.to_json(),
        outbound_meter=outbound.to_json(),
        lag_worst=lag.worst,
        lag_end=lag.end,
        cpu=cpu,
    )


async def main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    part = Part(**json.loads(await commands.readline()))
    await serve(part, commands)


if __name__ == "__main__":
    setup_logging("ERROR")
    # the loop gets the GIL back from the listening thread within 1 ms, not 5
    sys.setswitchinterval(0.001)
    asyncio.run(main())
