"""The whole daemon under load: N emulated modem lines, many scripted callers.

The daemon (the same :class:`~daemon1521.daemon.app.Daemon` that ``daemon1521
run --emulated N`` starts) supervises every line of an emulated site in this
process; callers dial 1521 again and again and go through a full call by ear:
they wait for the bill question, type a 13-digit bill ID and #, confirm it,
decline having it remembered, hear the debt, decline to pay and wait for the
line to hang up. Their phones hang up the moment the line clears.

Printed: how many calls were placed and how the call records ended, emulated
and wall time, CPU, calls per emulated hour, whether the emulated clock kept
up with wall time x speed, where the CPU went (sampled stacks: daemon and
driver against emulator and callers), and how soon a line was idle again
after each caller hung up. A short run at real time follows on the same
lines, for the load at speed 1: a full call lasts over a minute, so there
the callers hang up mid-call after a few seconds, which also shows how long
the daemon takes to notice a caller who left.

Run: ``.venv/bin/python benchmarks/daemon_load.py`` (about a minute).
Not a test: it prints figures, it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.billing.store import CallOutcome, CallRecord, Store
from daemon1521.daemon.call import Call
from daemon1521.daemon.supervisor import Line as SupervisedLine
from daemon1521.emulator.clock import FRAME_SECONDS, EmuClock
from daemon1521.emulator.modem import available_personalities
from daemon1521.logs import setup_logging
from daemon1521.testbed.caller import Caller
from daemon1521.testbed.ears import Ears
from daemon1521.testbed.site import DemoBill, EmulatedSite, sample_bills

PERSONALITIES = ("conexant-cx93001", "usr-5637")
FIRST_CALLER = 9_121_000_000
"""Callers' numbers (0912 100 0000 on), far from the modems' own block."""
STAGGER = 2.0
"""Line seconds between one caller's first call and the next caller's."""
REALTIME_STAGGER = 0.5
"""The same at real time, where the run is short and answering takes ~7 s."""
PAUSE_BETWEEN_CALLS = 3.0
"""Line seconds a caller stays on hook before calling again."""
CLEAR_WAIT = 30.0
"""Line seconds a caller waits for 1521 to hang up after declining payment."""
REALTIME_SECONDS = 12.0
"""Wall seconds of the run at real time (the callers hang up mid-call after it)."""
ABANDON_WAIT = 15.0
"""Real seconds the daemon gets to notice callers who hung up mid-call."""
SAMPLE_INTERVAL = 0.001
"""Mean real seconds between samples of where the event loop's thread is."""
WATCH_INTERVAL = 0.05
"""Real seconds between readings of the emulated clock and the lines' states."""

PARTS: tuple[tuple[str, str], ...] = (
    ("/daemon1521/emulator/phone.py", "callers"),
    ("/daemon1521/emulator/recognizer.py", "callers"),
    ("/daemon1521/testbed/", "callers"),
    ("/benchmarks/daemon_load.py", "callers"),
    ("/daemon1521/emulator/", "emulator"),
    ("/daemon1521/modem/", "driver"),
    ("/daemon1521/ivr/", "daemon"),
    ("/daemon1521/daemon/", "daemon"),
    ("/daemon1521/billing/", "daemon"),
)
"""Where a stack sample's time goes: the innermost frame whose file matches
decides (shared helpers such as audio/ count for whoever called them)."""
LOOP_FILES = ("/asyncio/events.py", "/asyncio/base_events.py", "/selectors.py")
"""Where the event loop runs callbacks and waits: nothing outside of them is a part's."""
PART_LABELS = {
    "driver": "daemon: modem driver (AT, DLE, audio I/O)",
    "daemon": "daemon: supervisor, IVR flow, store",
    "emulator": "emulator: exchange, modems, ptys",
    "callers": "callers: phones, listening, script",
    "loop": "event loop and I/O waits (asyncio)",
}


# -- the site ---------------------------------------------------------------------


class LoadSite(EmulatedSite):
    """N lines of an emulated site, each supervised by the daemon: the demo's
    and the tests' :class:`~daemon1521.testbed.site.EmulatedSite`, with what
    the load figures need on top."""

    def __init__(
        self,
        scratch: Path,
        *,
        lines: int,
        personalities: Sequence[str],
        speed: float,
        ears: Ears,
        bills: Sequence[DemoBill],
    ) -> None:
        super().__init__(
            scratch / "daemon1521.db",
            bills=bills,
            speed=speed,
            ears=ears,
            lines=lines,
            personalities=personalities,
        )

    @property
    def clock(self) -> EmuClock:
        return self.rig.clock

    def serving(self, number: str) -> tuple[SupervisedLine, Call] | None:
        """The line whose call in progress is from ``number``, and that call."""
        for line in self.lines:
            call = line.current
            if call is not None and call.caller == number:
                return line, call
        return None

    async def abandon_calls(self, wait: float) -> tuple[list[float], int]:
        """Every caller hangs up at once, mid-call: line seconds until each line
        that was in a call is idle again, and how many were not after ``wait``
        real seconds (those calls are cut when the daemon stops)."""
        assert self.daemon is not None
        calls = [(line, line.current) for line in self.lines if line.current is not None]
        for phone in self.rig.phones.values():
            await phone.hang_up()
        start = self.clock.now()

        async def idle(line: SupervisedLine, call: Call | None) -> float | None:
            if await line.wait_for(lambda line: line.current is not call, wait):
                return self.clock.now() - start
            return None

        times = await asyncio.gather(*(idle(line, call) for line, call in calls))
        self.daemon.cut_calls.set()
        freed = [t for t in times if t is not None]
        return freed, len(times) - len(freed)

    def records(self) -> list[CallRecord]:
        with Store.open(self.config.store) as store:
            return store.recent_calls(limit=100_000)


# -- what a run measures ------------------------------------------------------------


class CpuSampler:
    """Where the event loop's thread spends its time, sampled about every millisecond.

    Daemon, emulator and callers share one thread, so their CPU cannot be
    told apart by thread. A wall-clock timer (SIGALRM) interrupts the thread
    and the handler, which runs on that same thread, notes where it was:
    waiting in the selector (idle) or in which part of the program. The
    intervals are random (exponential): the loop's own timers wake it on
    millisecond boundaries, and a regular sampling clock would lock onto
    them and see only the selector. Busy samples split the thread's CPU
    seconds between the parts.
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL, seed: int = 1521) -> None:
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.own_cpu = 0.0
        self._random = random.Random(seed)
        self._previous: Any = None
        self._running = False

    def __enter__(self) -> CpuSampler:
        self._previous = signal.signal(signal.SIGALRM, self._sample)
        self._running = True
        self._arm()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._running = False
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, self._previous)

    @property
    def busy(self) -> int:
        return sum(n for part, n in self.counts.items() if part != "idle")

    def shares(self) -> dict[str, float]:
        busy = self.busy
        return {p: n / busy for p, n in self.counts.items() if p != "idle"} if busy else {}

    def _arm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(1e-5, self._random.expovariate(1 / self.interval)))

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        start = time.thread_time()
        if frame is not None:
            self.counts[_part(frame)] += 1
        if self._running:
            self._arm()
        self.own_cpu += time.thread_time() - start


def _part(frame: FrameType) -> str:
    """The part the innermost matching frame belongs to: ``idle`` in the
    selector's wait, ``loop`` in the event loop's own code."""
    code = frame.f_code
    if code.co_name == "select" and code.co_filename.endswith("/selectors.py"):
        return "idle"
    current: FrameType | None = frame
    while current is not None:
        filename = current.f_code.co_filename
        if filename.endswith(LOOP_FILES):
            return "loop"
        for fragment, part in PARTS:
            if fragment in filename:
                return part
        current = current.f_back
    return "loop"


@dataclass(frozen=True)
class Spent:
    """Time and CPU from the start of a run; the clock's lag then, in line seconds."""

    wall: float
    cpu: float
    loop_cpu: float
    emulated: float
    lag: float


class SiteWatch:
    """How far the emulated clock falls behind wall time x speed, how many
    line seconds the lines spent in calls, and the time and CPU spent.

    Create and read it on the event loop's thread: that thread's CPU is
    measured apart from the process's (numpy's BLAS has threads of its own).
    """

    def __init__(self, site: LoadSite) -> None:
        self.site = site
        self.clock = site.clock
        self.wall0 = time.monotonic()
        self.cpu0 = time.process_time()
        self.loop_cpu0 = time.thread_time()
        self.emulated0 = self.clock.now()
        self.worst = 0.0
        self.in_call = 0.0

    def spent(self) -> Spent:
        wall = time.monotonic() - self.wall0
        emulated = self.clock.now() - self.emulated0
        return Spent(
            wall=wall,
            cpu=time.process_time() - self.cpu0,
            loop_cpu=time.thread_time() - self.loop_cpu0,
            emulated=emulated,
            lag=wall * self.clock.speed - emulated,
        )

    async def run(self) -> None:
        before = self.clock.now()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = self.clock.now()
            busy = sum(1 for line in self.site.lines if line.state == "in_call")
            self.in_call += busy * (now - before)
            before = now
            self.worst = max(self.worst, self.spent().lag)


@dataclass
class CallResult:
    """One scripted call as its caller saw it (times in line seconds)."""

    number: str
    dialled_at: float
    ended: str
    """``done`` when the script ran to the line's hang-up; else what went wrong."""
    hung_up_at: float | None = None
    idle_after: float | None = None
    """From the caller's hang-up to the line idle again (negative: it was idle first)."""


@dataclass
class RunFigures:
    """What one run measured; times in line seconds unless named wall or CPU."""

    lines: int
    speed: float
    personalities: list[str]
    calls: list[CallResult]
    records: list[CallRecord]
    emulated: float
    wall: float
    cpu: float
    """CPU seconds of the process, all threads (the sampler's own time taken off)."""
    loop_cpu: float
    """Of which the event loop's thread: daemon, emulator and callers."""
    in_call: float
    """Line seconds the lines spent in calls, all lines together."""
    end_lag: float
    worst_lag: float
    shares: dict[str, float]
    samples: int
    """Samples that found the thread busy (not waiting in the selector)."""
    abandoned_idle: list[float] = field(default_factory=list)
    """Line seconds from callers hanging up mid-call to their lines idle again."""
    abandoned_held: int = 0
    """Lines still in the call :data:`ABANDON_WAIT` after its caller hung up."""


# -- the callers ---------------------------------------------------------------------


async def full_call(site: LoadSite, caller: Caller, bill: DemoBill) -> CallResult:
    """One call through the 1521 script to ``not_paid``, timed at the line's end."""
    clock = site.clock
    result = CallResult(caller.phone.number, clock.now(), "not answered")
    try:
        await caller.dial()
    except RuntimeError:
        await caller.hang_up()
        return result
    served = site.serving(caller.phone.number)
    idle: asyncio.Task[float] | None = None
    if served is not None:
        line, call = served
        idle = asyncio.create_task(_idle_again(site, line, call))
    try:
        await caller.answer("ask_bill_id", bill.bill_id + "#")
        await caller.answer("bill_entered_confirm", "1")
        await caller.answer("offer_remember_bill", "2")
        await caller.answer("offer_payment", "2")
        waited = 0.0
        while caller.phone.state == "connected" and waited < CLEAR_WAIT:
            await caller.wait(FRAME_SECONDS)
            waited += FRAME_SECONDS
        result.ended = "done" if caller.phone.state != "connected" else "line never hung up"
    except AssertionError as exc:
        result.ended = f"script broke off: {exc}"
    finally:
        result.hung_up_at = clock.now()
        await caller.hang_up()
        if idle is not None:
            if result.ended == "done":
                result.idle_after = await idle - result.hung_up_at
            else:
                idle.cancel()
                await asyncio.gather(idle, return_exceptions=True)
    return result


async def _idle_again(site: LoadSite, line: SupervisedLine, call: Call) -> float:
    """Line time at which ``line`` is done with ``call`` (it is idle in the same step)."""
    await line.wait_for(lambda line: line.current is not call, 600.0 / site.speed + 10.0)
    return site.clock.now()


async def subscriber(
    site: LoadSite,
    index: int,
    calls: int,
    bill: DemoBill,
    results: list[CallResult],
    stagger: float = STAGGER,
) -> None:
    """One caller's calls, back to back; results go to ``results`` as they end."""
    caller = site.caller(f"0{FIRST_CALLER + index}")
    await caller.wait(index * stagger)
    for number in range(calls):
        if number:
            await caller.wait(PAUSE_BETWEEN_CALLS)
        results.append(await full_call(site, caller, bill))


async def run_site(
    ears: Ears,
    *,
    lines: int,
    calls: int,
    speed: float,
    personalities: Sequence[str],
    cut_after: float | None = None,
    stagger: float = STAGGER,
) -> RunFigures:
    """One site under load; with ``cut_after`` (wall seconds) callers hang up then."""
    bills = [bill for bill in sample_bills() if bill.amount_rials > 0]
    results: list[CallResult] = []
    with tempfile.TemporaryDirectory(prefix="d1521-load-") as tmp:  # short: socket path limit
        async with LoadSite(
            Path(tmp),
            lines=lines,
            personalities=personalities,
            speed=speed,
            ears=ears,
            bills=bills,
        ) as site:

            async def callers() -> None:
                async with asyncio.TaskGroup() as group:
                    for i in range(lines):
                        bill = bills[i % len(bills)]
                        group.create_task(subscriber(site, i, calls, bill, results, stagger))

            with CpuSampler() as sampler:
                watch = SiteWatch(site)
                watching = asyncio.create_task(watch.run())
                try:
                    if cut_after is None:
                        await callers()
                    else:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(callers(), cut_after)
                    spent = watch.spent()
                finally:
                    watching.cancel()
                    await asyncio.gather(watching, return_exceptions=True)
            abandoned: tuple[list[float], int] = ([], 0)
            if cut_after is not None:
                abandoned = await site.abandon_calls(ABANDON_WAIT)
        records = site.records()
    return RunFigures(
        lines=lines,
        speed=speed,
        personalities=list(site.rig.personalities),
        calls=results,
        records=records,
        emulated=spent.emulated,
        wall=spent.wall,
        cpu=spent.cpu - sampler.own_cpu,
        loop_cpu=spent.loop_cpu - sampler.own_cpu,
        in_call=watch.in_call,
        end_lag=spent.lag,
        worst_lag=max(watch.worst, spent.lag),
        shares=sampler.shares(),
        samples=sampler.busy,
        abandoned_idle=abandoned[0],
        abandoned_held=abandoned[1],
    )


# -- printing -------------------------------------------------------------------------


def print_load(r: RunFigures) -> None:
    completed = [
        rec for rec in r.records if rec.ended_at is not None and rec.outcome == CallOutcome.NOT_PAID
    ]
    done = [c for c in r.calls if c.ended == "done" and c.hung_up_at is not None]
    lengths = [c.hung_up_at - c.dialled_at for c in done if c.hung_up_at is not None]
    per_hour = len(completed) / (r.emulated / 3600.0)
    print(f"lines                  {r.lines} ({_kinds(r.personalities)})")
    print(f"speed                  {r.speed:g}x real time; line figures in line seconds")
    print(f"calls placed           {len(r.calls)}")
    print(f"calls completed        {len(completed)} (record closed with outcome not_paid)")
    print(f"call records           {len(r.records)}: {_outcomes(r.records)}")
    print(f"callers' scripts       {_counts(Counter(c.ended for c in r.calls))}")
    if lengths:
        print(f"call length            mean {statistics.mean(lengths):.1f} s, dial to hang-up")
    print(f"emulated seconds       {r.emulated:.1f}")
    print(f"wall seconds           {r.wall:.1f}")
    print(f"CPU seconds            {r.cpu:.1f} ({100 * r.cpu / r.wall:.0f}% of one core)")
    print(
        f"calls per hour         {per_hour / r.lines:.1f} per line, {per_hour:.1f} in total "
        f"(emulated hour, callers back to back)"
    )
    _print_clock(r)
    _print_cpu(r)
    idle = [c.idle_after for c in done if c.idle_after is not None]
    print(f"hang-up to line idle   {_spread(idle)}")
    print("                       (from the caller's hang-up, which follows the line's own")
    print("                       within a 20 ms frame; negative: the line was idle first)")


def print_realtime(r: RunFigures) -> None:
    print(f"lines                  {r.lines} ({_kinds(r.personalities)}), one caller each")
    answered = sum(1 for rec in r.records if rec.answered_at is not None)
    print(f"calls answered         {answered}; callers hung up mid-call after {r.wall:.1f} s")
    print(f"call records           {len(r.records)}: {_outcomes(r.records)}")
    print(f"emulated seconds       {r.emulated:.1f} in {r.wall:.1f} wall seconds")
    print(f"CPU seconds            {r.cpu:.2f} ({100 * r.cpu / r.wall:.1f}% of one core)")
    _print_clock(r)
    _print_cpu(r, capacity=False)
    held = (
        f", {r.abandoned_held} still in the call after {ABANDON_WAIT:g} s"
        if r.abandoned_held
        else ""
    )
    print(f"abandoned to idle      {_spread(r.abandoned_idle)}{held}")
    print("                       (callers hang up mid-call; the daemon notices by the")
    print("                       busy tone, which some modems report only while recording)")


def _print_clock(r: RunFigures) -> None:
    kept = r.emulated / (r.wall * r.speed)
    verdict = "kept up" if r.worst_lag < 1.0 else "fell behind"
    print(
        f"emulated clock         {kept:.4f} of wall x speed; behind by {r.end_lag:+.3f} s "
        f"at the end, {r.worst_lag:+.3f} s at worst ({verdict})"
    )


def _print_cpu(r: RunFigures, capacity: bool = True) -> None:
    print(
        f"CPU by part            (the event loop's thread, {r.loop_cpu:.2f} CPU s, split by "
        f"{r.samples} samples of it busy)"
    )
    for part, label in PART_LABELS.items():
        share = r.shares.get(part, 0.0)
        print(f"  {label:<42} {100 * share:5.1f}%  {share * r.loop_cpu:6.2f} CPU s")
    daemon = r.shares.get("driver", 0.0) + r.shares.get("daemon", 0.0)
    daemon_cpu = daemon * r.loop_cpu
    print(
        f"  {'the daemon in all (driver included)':<42} {100 * daemon:5.1f}%  "
        f"{daemon_cpu:6.2f} CPU s = {100 * daemon_cpu / r.cpu:.1f}% of the process"
    )
    other = max(0.0, r.cpu - r.loop_cpu)
    print(
        f"  {'other threads (numpy BLAS workers)':<42} {'':6}  {other:6.2f} CPU s = "
        f"{100 * other / r.cpu:.1f}% of the process"
    )
    if other > 0.1 * r.cpu:
        print(f"  {'':<42} (they spin between matrix products; OPENBLAS_NUM_THREADS=1 saves it)")
    if r.in_call <= 0 or daemon_cpu <= 0:
        return
    site_rate = r.in_call / r.cpu
    daemon_rate = r.in_call / daemon_cpu
    print(
        f"line seconds in calls  {r.in_call:.1f}: per call {100 / site_rate:.2f}% of a core "
        f"for the whole site, {100 / daemon_rate:.2f}% for the daemon"
    )
    if not capacity:
        return
    print(
        f"capacity               about {site_rate:.0f} simultaneous calls per core at real "
        f"time for the whole site, {daemon_rate:.0f} for the daemon's thread alone"
    )
    print("                       (CPU-bound extrapolation; a site needs a modem per call)")


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "none measured"
    return (
        f"min {min(values):+.2f}  median {statistics.median(values):+.2f}  "
        f"max {max(values):+.2f} s  (n={len(values)})"
    )


def _kinds(personalities: Sequence[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in Counter(personalities).items())


def _outcomes(records: Sequence[CallRecord]) -> str:
    return _counts(Counter(rec.outcome or "still open" for rec in records))


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"


# -- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=4, help="modem lines (default 4)")
    parser.add_argument("--calls", type=int, default=3, help="calls per line (default 3)")
    parser.add_argument(
        "--speed", type=float, default=4.0, help="emulated seconds per real second (default 4)"
    )
    parser.add_argument(
        "--personality",
        action="append",
        choices=available_personalities(),
        help=f"modem personality; repeat to cycle several (default {' / '.join(PERSONALITIES)})",
    )
    parser.add_argument(
        "--realtime",
        type=float,
        default=REALTIME_SECONDS,
        metavar="SECONDS",
        help=f"wall seconds of the run at real time, 0 to skip (default {REALTIME_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    if args.lines < 1 or args.calls < 1 or args.speed <= 0 or args.realtime < 0:
        parser.error("--lines and --calls must be at least 1, --speed positive, --realtime >= 0")
    return args


async def main(args: argparse.Namespace) -> None:
    setup_logging("ERROR")
    personalities = args.personality or list(PERSONALITIES)
    ears = Ears(PromptLibrary(PromptCatalog("fa")))
    print(f"== {args.lines} lines x {args.calls} calls, at {args.speed:g}x real time")
    print_load(
        await run_site(
            ears,
            lines=args.lines,
            calls=args.calls,
            speed=args.speed,
            personalities=personalities,
        )
    )
    if args.realtime > 0:
        print()
        print(f"== the same {args.lines} lines at real time (speed 1) for {args.realtime:g} s")
        print("   A full call lasts over a minute, longer than this run: the callers hang")
        print("   up mid-call. These figures are the load at real time; no call completes.")
        print_realtime(
            await run_site(
                ears,
                lines=args.lines,
                calls=1,
                speed=1.0,
                personalities=personalities,
                cut_after=args.realtime,
                stagger=REALTIME_STAGGER,
            )
        )


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
