"""A full rack at real time: the daemon in one process, the emulated site in others.

The test bed (rack_testbed.py, one or more processes: by default about 32 lines
each, at most one per core) runs the emulated exchange, N voice modems on pseudo-terminals, K
more modems that are the daemon's outbound lines to the emulated telephone
bank (one per 4 inbound lines by default), the bank itself and N scripted
callers (daemon1521.testbed.load); the real daemon runs as ``daemon1521 run
--config FILE`` in a child process whose lines are the modems' stable pty
links, with its bank leg on. All run at real time. The callers go through
the 1521 flow again and again (plain, barge-in, type-ahead, hang-up
mid-call) up to the payment offer; about one call in five accepts it and pays
through the bank leg (now and then with a wrong PIN). The banks' ledgers are
checked against the payments the daemon recorded.

What callers feel is measured at the emulated modems (ground truth at the
line, daemon1521.emulator.meter): key-to-prompt latency, barge-in stop time,
answer latency, transmit underruns. Keys the caller gives the bank are
answered by the bank, so the bank leg's stretch of a call (hold audio, the
bank's words relayed, 1521's outcome) is counted apart from 1521's prompts,
and so are the outbound lines' own figures. The daemon's cost is read from
/proc: CPU (user + sys) per wall second, RSS (idle, steady, peak), open fds,
and their slopes. The emulator's lag behind wall time says whether the test bed
kept up; a run where it did not is flagged.

Run: ``.venv/bin/python benchmarks/rack.py --lines 8 --duration 60 [--outbound K]
[--testbeds P] [--json]``. Not a test: it prints figures and asserts nothing
about speed; only a bank ledger that disagrees with the daemon's paid records
makes it exit 1. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rack_testbed import ANSWER_RING, LAG_LIMIT, Part

from daemon1521.billing.store import Store
from daemon1521.emulator.meter import MeterFigures
from daemon1521.emulator.modem import available_personalities
from daemon1521.emulator.rig import wait_cancelled
from daemon1521.logs import setup_logging
from daemon1521.testbed.load import NO_OUTBOUND_LINE, payable_bills
from daemon1521.testbed.site import DemoBill, sample_bills

PERSONALITIES = ("conexant-cx93001", "usr-5637")
TESTBED = Path(__file__).with_name("rack_testbed.py")
LINES_PER_TESTBED = 32
"""Default 1521 lines per test-bed process: with payments, 32 lines take about
half a core of emulation, which leaves each process room for bursts."""
SAMPLE_EVERY = 1.0
"""Real seconds between readings of the daemon's /proc figures."""
READY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0
"""Seconds the daemon gets, once the callers are cut off, to end its calls: a bank
leg whose caller hung up after the PIN stays for the bank's result."""
INBOUND_PER_OUTBOUND = 4
"""Default outbound lines: one per this many inbound lines, at least one."""
PAY_CALL_SECONDS = 40.0
"""Less than any paying call takes (about three minutes): bills to pay are seeded
for every line paying back to back (each bill is paid once: the bank refuses a
second time)."""
BUSY = "1521 did not answer: busy"
"""Every line engaged (a caller per line redials while its last line clears):
the exchange's busy, counted apart from failures."""
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the daemon's process, from /proc ------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: wall time, CPU seconds, RSS and peak RSS (bytes), fds."""

    wall: float
    cpu: float
    rss: int
    hwm: int
    fds: int
    wakeups: int
    """Voluntary context switches of the main thread: how often it slept and woke."""
    in_call: int
    """Emulated inbound lines off hook at the time (calls the daemon is serving)."""
    legs: int = 0
    """Outbound lines off hook at the time (bank legs of those calls)."""


def read_proc(pid: int, in_call: int, legs: int = 0) -> ProcSample:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    status: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                status[key] = int(value.split()[0]) * 1024
            elif key == "voluntary_ctxt_switches":
                status[key] = int(value)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcSample(
        time.monotonic(),
        cpu,
        status["VmRSS"],
        status["VmHWM"],
        fds,
        status["voluntary_ctxt_switches"],
        in_call,
        legs,
    )


def slope(samples: Sequence[ProcSample], attr: str) -> float:
    """Least-squares slope of ``attr`` per hour over ``samples``."""
    if len(samples) < 3:
        return 0.0
    xs = [s.wall for s in samples]
    ys = [float(getattr(s, attr)) for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return 0.0 if den == 0 else 3600 * num / den


# -- the run --------------------------------------------------------------------------------


@dataclass
class RackRun:
    """Everything one run measured."""

    lines: int
    duration: float
    personalities: list[str]
    outbound: int = 0
    idle: list[ProcSample] = field(default_factory=list)
    load: list[ProcSample] = field(default_factory=list)
    meter: MeterFigures = field(default_factory=MeterFigures)
    """The inbound lines' meters: what 1521's callers feel."""
    relay_meter: MeterFigures = field(default_factory=MeterFigures)
    """The inbound lines' meters while a call was relayed to the bank."""
    outbound_meter: MeterFigures = field(default_factory=MeterFigures)
    """The outbound lines' meters: the daemon's side of the calls to the bank."""
    calls: Counter[str] = field(default_factory=Counter)
    styles: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    payments: Counter[str] = field(default_factory=Counter)
    """Payments as the callers heard them: paid, declined, failed."""
    payments_why: Counter[str] = field(default_factory=Counter)
    """Declined and failed payments by reason ("declined: wrong PIN")."""
    daemon_payments: Counter[str] = field(default_factory=Counter)
    """The daemon's payment records by result."""
    daemon_paid: list[str] = field(default_factory=list)
    """Tracking numbers of the daemon's paid records."""
    ledger: list[str] = field(default_factory=list)
    """Tracking numbers of the bank's debits."""
    payments_cut: int = 0
    """Calls cut at the end of the run after accepting the payment offer (what became
    of their payments is in the daemon's records and the bank's ledger)."""
    settled: bool = True
    """Every line was idle again before the daemon was stopped."""
    lag_worst: float = 0.0
    lag_end: float = 0.0
    testbeds: int = 1
    testbed_cpu: float = 0.0
    """CPU seconds of all the test-bed processes over the load."""
    testbed_cpu_max: float = 0.0
    """CPU seconds of the busiest test-bed process over the load."""
    wall: float = 0.0
    daemon_exit: int | None = None


@dataclass(frozen=True)
class Port:
    """A modem's stable pty link, as the daemon's config names it."""

    link: str
    personality: str


def write_config(scratch: Path, inbound: Sequence[Port], outbound: Sequence[Port]) -> Path:
    """The daemon's config: the ``inbound`` modems answer 1521, the ``outbound``
    ones are its lines to the bank."""
    lines = "".join(
        f'\n[lines.line{i}]\nport = "{p.link}"\nrings = {ANSWER_RING}\nlabel = "{p.personality}"\n'
        for i, p in enumerate(inbound, start=1)
    ) + "".join(
        f'\n[lines.bank{i}]\nport = "{p.link}"\nrole = "outbound"\n'
        f'label = "{p.personality}: the bank line"\n'
        for i, p in enumerate(outbound, start=1)
    )
    path = scratch / "daemon1521.toml"
    path.write_text(
        f'[daemon]\ndrain_timeout = 5\n\n[store]\npath = "{scratch / "d.db"}"\n\n'
        f"[telebank]\nenabled = true\n\n"
        f'[prompts]\ndir = "{scratch / "prompts"}"\n\n'
        f'[control]\nsocket = "{scratch / "c.sock"}"\n\n'
        f'[logging]\nlevel = "WARNING"\n{lines}'
    )
    return path


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("daemon1521")), *args]


def seed_store(scratch: Path, to_pay: list[DemoBill]) -> list[str]:
    """Bills with a debt, and the bills ``to_pay``, into the daemon's store; the IDs
    of the former (callers who decline type them)."""
    bills = [b for b in sample_bills() if b.amount_rials > 0]
    csv = scratch / "bills.csv"
    csv.write_text(
        "bill_id,payment_id,amount\n"
        + "".join(f"{b.bill_id},{b.payment_id},{b.amount_rials}\n" for b in [*bills, *to_pay])
    )
    subprocess.run(
        cli("bills", "import", str(csv), "--store", str(scratch / "d.db")),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return [b.bill_id for b in bills]


async def control(config: Path, *args: str) -> Any:
    """A control-socket command through the CLI; its JSON reply, or None."""
    proc = await asyncio.create_subprocess_exec(
        *cli(*args, "--config", str(config), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        return None
    return json.loads(out)


async def all_idle(
    config: Path, daemon: asyncio.subprocess.Process, lines: int, timeout: float
) -> bool:
    """Wait until the daemon shows all ``lines`` idle; False if they were not in time
    (or the daemon exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.returncode is not None:
            return False
        reply = await control(config, "status")
        if reply is not None:
            states = [line.get("state") for line in reply.get("lines", [])]
            if len(states) == lines and all(s == "idle" for s in states):
                return True
        await asyncio.sleep(0.5)
    return False


async def wait_ready(config: Path, daemon: asyncio.subprocess.Process, lines: int) -> None:
    if not await all_idle(config, daemon, lines, READY_TIMEOUT + lines * 0.5):
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode} while starting")
        raise RuntimeError("the daemon's lines did not all become idle in time")


class TestBed:
    """One test-bed process (rack_testbed.py) and what it last reported."""

    def __init__(self, part: Part, proc: asyncio.subprocess.Process) -> None:
        self.part = part
        self.index = part.index
        self.proc = proc
        self.in_call = 0
        self.legs = 0
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, part: Part) -> TestBed:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TESTBED),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=2**24,
        )
        bed = cls(part, proc)
        await bed.send(json.dumps(dataclasses.asdict(part)))
        return bed

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            message = json.loads(raw)
            status = message.get("status")
            if status is not None:
                self.in_call, self.legs = status["in_call"], status["legs"]
            else:
                await self._replies.put(message)
        await self._replies.put({"exited": await self.proc.wait()})

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def reply(self, kind: str, timeout: float) -> dict[str, Any]:
        """The process's next reply, which must be ``kind``."""
        try:
            message = await asyncio.wait_for(self._replies.get(), timeout)
        except TimeoutError:
            what = f"test bed {self.index} did not say {kind!r} in {timeout} s"
            raise RuntimeError(what) from None
        if kind not in message:
            raise RuntimeError(f"test bed {self.index} said {message} instead of {kind!r}")
        return dict(message[kind])

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await wait_cancelled(self._reader)


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares as even as can be, the larger first."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def reading(pid: int, beds: Sequence[TestBed]) -> ProcSample:
    return read_proc(pid, sum(b.in_call for b in beds), sum(b.legs for b in beds))


async def sample_proc(pid: int, beds: Sequence[TestBed], into: list[ProcSample]) -> None:
    while True:
        into.append(reading(pid, beds))
        await asyncio.sleep(SAMPLE_EVERY)


def read_payments(store_path: Path, run: RackRun) -> None:
    """The daemon's payment records, read from its database once it has stopped."""
    with Store.open(store_path) as store:
        for payment in store.recent_payments(limit=1_000_000):
            run.daemon_payments[payment.result] += 1
            if payment.result == "paid":
                run.daemon_paid.append(payment.tracking or "(no tracking number)")


async def start_testbeds(
    args: argparse.Namespace, run: RackRun, scratch: Path, bill_ids: list[str], to_pay: list[str]
) -> list[TestBed]:
    """The test-bed processes, each with its share of lines, outbound lines and bills."""
    # by default no more processes than cores: each more only takes the daemon's
    # share of the CPU (the scheduler shares it per process), and 8 of them at 256
    # lines on 2 cores starved it
    count = args.testbeds or min(os.cpu_count() or 1, -(-args.lines // LINES_PER_TESTBED))
    count = min(count, args.lines)
    lines, outs = split(args.lines, count), split(run.outbound, count)
    pays = split(len(to_pay), count)
    beds: list[TestBed] = []
    try:
        for index in range(count):
            first = sum(lines[:index])
            paid_from = sum(pays[:index])
            part = Part(
                index=index,
                lines=lines[index],
                outbound=outs[index],
                first=first,
                callers_total=args.lines,
                personalities=run.personalities,
                link_dir=str(scratch / "ports" / f"bed{index}"),
                bill_ids=bill_ids,
                pay_bills=to_pay[paid_from : paid_from + pays[index]],
                stagger=min(0.5, args.ramp / lines[index]),
                seed=args.seed,
            )
            beds.append(await TestBed.start(part))
    except BaseException:
        for bed in beds:
            await bed.close()
        raise
    return beds


async def rack(args: argparse.Namespace) -> RackRun:
    personalities = args.personality or list(PERSONALITIES)
    outbound = args.outbound
    if outbound is None:
        outbound = max(1, args.lines // INBOUND_PER_OUTBOUND)
    run = RackRun(args.lines, args.duration, personalities, outbound)
    with tempfile.TemporaryDirectory(prefix="d1521-rack-") as tmp:  # short: socket path limit
        scratch = Path(tmp)
        to_pay = payable_bills(round(args.lines * args.duration / PAY_CALL_SECONDS) + 10)
        bill_ids = seed_store(scratch, to_pay)
        beds = await start_testbeds(args, run, scratch, bill_ids, [b.bill_id for b in to_pay])
        run.testbeds = len(beds)
        tasks: list[asyncio.Task[None]] = []
        daemon: asyncio.subprocess.Process | None = None
        try:
            inbound_ports: list[Port] = []
            outbound_ports: list[Port] = []
            for bed in beds:
                ready = await bed.reply("ready", READY_TIMEOUT)
                ports = [Port(*p) for p in zip(ready["links"], ready["personalities"], strict=True)]
                inbound_ports += ports[: bed.part.lines]
                outbound_ports += ports[bed.part.lines :]
            config = write_config(scratch, inbound_ports, outbound_ports)
            lines = len(inbound_ports) + len(outbound_ports)
            daemon = await asyncio.create_subprocess_exec(
                *cli("run", "--config", str(config)), stdin=subprocess.DEVNULL
            )
            await wait_ready(config, daemon, lines)
            tasks.append(asyncio.create_task(sample_proc(daemon.pid, beds, run.idle)))
            await asyncio.sleep(args.idle)
            await wait_cancelled(tasks.pop())
            for bed in beds:
                await bed.send("go")
            wall0 = time.monotonic()
            tasks.append(asyncio.create_task(sample_proc(daemon.pid, beds, run.load)))
            await asyncio.sleep(args.duration)
            run.load.append(reading(daemon.pid, beds))
            run.wall = time.monotonic() - wall0
            await wait_cancelled(tasks.pop())
            for bed in beds:
                await bed.send("stop")
            for bed in beds:
                await bed.reply("stopped", SETTLE_TIMEOUT)
            # calls cut off mid-payment end on the daemon's side (and the bank's)
            run.settled = await all_idle(config, daemon, lines, SETTLE_TIMEOUT)
            records = await control(config, "calls", "--limit", "1000")
            for record in records or []:
                run.records[record.get("outcome") or "in progress"] += 1
            await stop_daemon(daemon)
            run.daemon_exit = daemon.returncode
            for bed in beds:
                await bed.send("end")
            for bed in beds:
                take_part(run, await bed.reply("done", SETTLE_TIMEOUT))
        finally:
            for task in tasks:
                await wait_cancelled(task)
            if daemon is not None:
                await stop_daemon(daemon)
                run.daemon_exit = daemon.returncode
            for bed in beds:
                await bed.close()
        read_payments(scratch / "d.db", run)
    return run


async def stop_daemon(daemon: asyncio.subprocess.Process) -> None:
    if daemon.returncode is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(daemon.wait(), 30)
    except TimeoutError:
        daemon.kill()
        await daemon.wait()


def take_part(run: RackRun, done: dict[str, Any]) -> None:
    """Add one test-bed process's figures to the run's."""
    for result in done["results"]:
        run.calls[result["ended"]] += 1
        run.styles[result["style"]] += 1
        if result["payment"] is not None:
            run.payments[result["payment"]] += 1
            if result["payment"] != "paid":
                run.payments_why[f"{result['payment']}: {result['payment_why']}"] += 1
    run.calls["cut at the end of the run"] += done["cut"]
    run.payments_cut += done["cut_paying"]
    run.ledger += done["ledger"]
    run.meter.merge(MeterFigures.from_json(done["meter"]))
    run.relay_meter.merge(MeterFigures.from_json(done["relay_meter"]))
    run.outbound_meter.merge(MeterFigures.from_json(done["outbound_meter"]))
    run.lag_worst = max(run.lag_worst, done["lag_worst"])
    run.lag_end = max(run.lag_end, done["lag_end"])
    run.testbed_cpu += done["cpu"]
    run.testbed_cpu_max = max(run.testbed_cpu_max, done["cpu"])


# -- figures ----------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread_ms(values: Sequence[float]) -> dict[str, float | int | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(1000 * v, 1)

    return {
        "n": len(values),
        "p50": ms(pct(values, 0.5)),
        "p99": ms(pct(values, 0.99)),
        "max": ms(max(values) if values else None),
    }


def figures(run: RackRun) -> dict[str, Any]:
    idle, load = run.idle, run.load
    mib = 1024 * 1024
    idle_cpu = (idle[-1].cpu - idle[0].cpu) / (idle[-1].wall - idle[0].wall) if len(idle) > 1 else 0
    load_cpu = (load[-1].cpu - load[0].cpu) / (load[-1].wall - load[0].wall)
    line_seconds = sum(a.in_call * (b.wall - a.wall) for a, b in itertools.pairwise(load))
    in_call_cpu = load[-1].cpu - load[0].cpu - idle_cpu * (load[-1].wall - load[0].wall)
    wakeups = load[-1].wakeups - load[0].wakeups
    half = load[len(load) // 2 :]
    idle_rss = statistics.median(s.rss for s in idle) if idle else load[0].rss
    steady_rss = statistics.median(s.rss for s in half)
    busy = statistics.fmean(s.in_call for s in half) if half else 0.0
    legs = statistics.fmean(s.legs for s in half) if half else 0.0
    m, r, o = run.meter, run.relay_meter, run.outbound_meter
    done = run.calls.get("done", 0)
    all_busy = run.calls.get(BUSY, 0)
    failed = {
        k: v
        for k, v in run.calls.items()
        if k not in ("done", "caller hung up mid-call", "cut at the end of the run", BUSY)
    }
    return {
        "lines": run.lines,
        "outbound_lines": run.outbound,
        "duration_s": round(run.wall, 1),
        "personalities": run.personalities,
        "flow": (
            "up to the payment offer; about 1 call in 5 pays through the bank leg "
            "(the emulated telephone bank), the others decline"
        ),
        "calls": {
            "completed": done,
            "hung_up_by_caller": run.calls.get("caller hung up mid-call", 0),
            "cut_at_end": run.calls.get("cut at the end of the run", 0),
            "busy_redialled": all_busy,
            "failed": sum(failed.values()),
            "failed_why": failed,
            "styles": dict(run.styles),
            "daemon_records": dict(run.records),
        },
        "key_to_prompt_ms": spread_ms(m.key_to_prompt),
        "barge_in_stop_ms": spread_ms(m.barge_in_stop),
        "ring_to_off_hook_ms": spread_ms(m.ring_to_off_hook),
        "ring_to_welcome_audio_ms": spread_ms(m.ring_to_audio),
        "underruns": {
            "count": m.underruns,
            "while_test_bed_behind": m.underruns_behind,
            "prompt_ends_short": m.tails,
            "gap_ms": round(1000 * m.underrun_samples / 8000, 1),
            "prompts": m.prompts,
        },
        "payments": {
            "attempted": sum(run.payments.values()) + run.payments_cut,
            "cut_at_end": run.payments_cut,
            "paid": run.payments.get("paid", 0),
            "declined": run.payments.get("declined", 0),
            "failed": run.payments.get("failed", 0),
            "no_outbound_line_free": run.payments_why.get(f"failed: {NO_OUTBOUND_LINE}", 0),
            "why": dict(run.payments_why),
            "daemon_records": dict(run.daemon_payments),
            "bank_debits": len(run.ledger),
            "daemon_paid": len(run.daemon_paid),
            "ledger_agrees": sorted(run.ledger) == sorted(run.daemon_paid),
            "lines_idle_before_stop": run.settled,
        },
        "bank_leg": {
            "key_to_bank_audio_ms": spread_ms(r.key_to_prompt),
            "barge_in_stop_ms": spread_ms(r.barge_in_stop),
            "streams": r.prompts,
            "underruns": r.underruns,
            "while_test_bed_behind": r.underruns_behind,
            "gap_ms": round(1000 * r.underrun_samples / 8000, 1),
        },
        "outbound_lines_meter": {
            "streams": o.prompts,
            "underruns": o.underruns,
            "gap_ms": round(1000 * o.underrun_samples / 8000, 1),
        },
        "emulator": {
            "lag_worst_ms": round(1000 * run.lag_worst, 1),
            "lag_end_ms": round(1000 * run.lag_end, 1),
            "kept_real_time": run.lag_worst <= LAG_LIMIT,
            "processes": run.testbeds,
            "cpu_pct": round(100 * run.testbed_cpu / run.wall, 1) if run.wall else None,
            "cpu_pct_busiest_process": (
                round(100 * run.testbed_cpu_max / run.wall, 1) if run.wall else None
            ),
        },
        "daemon": {
            "cpu_idle_pct": round(100 * idle_cpu, 2),
            "cpu_load_pct": round(100 * load_cpu, 2),
            "lines_in_call_mean": round(busy, 1),
            "bank_legs_mean": round(legs, 1),
            "cpu_per_line_in_call_pct": (
                round(100 * in_call_cpu / line_seconds, 3) if line_seconds > 0 else None
            ),
            "wakeups_per_line_second": (
                round(wakeups / line_seconds, 1) if line_seconds > 0 else None
            ),
            "rss_idle_mib": round(idle_rss / mib, 1),
            "rss_steady_mib": round(steady_rss / mib, 1),
            "rss_peak_mib": round(max(s.hwm for s in load) / mib, 1),
            "rss_per_line_in_call_mib": (
                round((steady_rss - idle_rss) / mib / busy, 3) if busy >= 1 else None
            ),
            "fds_idle": idle[-1].fds if idle else None,
            "fds_end": load[-1].fds,
            "rss_slope_mib_per_h": round(slope(_after_warmup(load), "rss") / mib, 2),
            "fds_slope_per_h": round(slope(_after_warmup(load), "fds"), 2),
            "rss_trace_mib": [round(s.rss / mib, 1) for s in _tenths(load)],
            "fds_trace": [s.fds for s in _tenths(load)],
            "exit_code": run.daemon_exit,
        },
    }


def _tenths(samples: Sequence[ProcSample]) -> list[ProcSample]:
    """Eleven samples spread evenly over the run, first and last included."""
    last = len(samples) - 1
    return [samples[round(i * last / 10)] for i in range(11)] if samples else []


def _after_warmup(samples: Sequence[ProcSample]) -> Sequence[ProcSample]:
    """The samples after the ramp-up: the last two thirds of the run."""
    return samples[len(samples) // 3 :]


def print_table(f: dict[str, Any]) -> None:
    def lat(d: dict[str, Any]) -> str:
        return f"p50 {d['p50']}  p99 {d['p99']}  max {d['max']} ms  (n={d['n']})"

    c, d, e, u = f["calls"], f["daemon"], f["emulator"], f["underruns"]
    p, b, o = f["payments"], f["bank_leg"], f["outbound_lines_meter"]
    rows = [
        (
            "lines",
            f"{f['lines']} ({', '.join(f['personalities'])}) and {f['outbound_lines']} "
            f"outbound, {f['duration_s']} s",
        ),
        ("flow", f["flow"]),
        (
            "calls",
            f"{c['completed']} completed, {c['hung_up_by_caller']} hung up by the caller, "
            f"{c['failed']} failed, {c['cut_at_end']} cut at the end; "
            f"{c['busy_redialled']} found every line busy",
        ),
        ("failed, why", json.dumps(c["failed_why"], ensure_ascii=False) if c["failed"] else "-"),
        ("daemon records", json.dumps(c["daemon_records"])),
        (
            "payments",
            f"{p['attempted']} attempted: {p['paid']} paid, {p['declined']} declined, "
            f"{p['failed']} failed ({p['no_outbound_line_free']} found no outbound line free), "
            f"{p['cut_at_end']} cut at the end; the daemon's records "
            f"{json.dumps(p['daemon_records'])}",
        ),
        ("payments, why", json.dumps(p["why"], ensure_ascii=False) if p["why"] else "-"),
        ("bank ledger", ledger_row(p)),
        ("key to prompt", lat(f["key_to_prompt_ms"])),
        ("barge-in stop", lat(f["barge_in_stop_ms"])),
        ("ring to off-hook", lat(f["ring_to_off_hook_ms"])),
        ("ring to welcome", lat(f["ring_to_welcome_audio_ms"])),
        (
            "underruns",
            f"{u['count']} ({u['gap_ms']} ms of gap) in {u['prompts']} streams; "
            f"{u['while_test_bed_behind']} of them while the test bed lagged "
            f"({u['prompt_ends_short']} prompts ended mid-frame: not gaps)",
        ),
        (
            "bank leg",
            f"key to the bank's answer {lat(b['key_to_bank_audio_ms'])}; "
            f"{b['underruns']} underruns ({b['gap_ms']} ms of gap, "
            f"{b['while_test_bed_behind']} while the test bed lagged) in {b['streams']} "
            "streams (hold, the bank relayed, the outcome): not in the rows above",
        ),
        (
            "outbound lines",
            f"{o['underruns']} underruns ({o['gap_ms']} ms of gap) in {o['streams']} streams "
            "the daemon sent the bank: not 1521's prompts",
        ),
        (
            "emulator",
            f"lag worst {e['lag_worst_ms']} ms, end {e['lag_end_ms']} ms "
            f"({'kept real time' if e['kept_real_time'] else 'FELL BEHIND: figures suspect'}); "
            f"test bed CPU {e['cpu_pct']} % of a core in {e['processes']} process(es), "
            f"the busiest {e['cpu_pct_busiest_process']} %",
        ),
        (
            "daemon CPU",
            f"idle {d['cpu_idle_pct']} %, under load {d['cpu_load_pct']} % of a core; "
            f"{d['cpu_per_line_in_call_pct']} % per line in a call "
            f"({d['lines_in_call_mean']} in calls, {d['bank_legs_mean']} bank legs on average); "
            f"{d['wakeups_per_line_second']} wake-ups per line-second in a call",
        ),
        (
            "daemon RSS",
            f"idle {d['rss_idle_mib']} MiB, steady {d['rss_steady_mib']}, peak "
            f"{d['rss_peak_mib']}; {d['rss_per_line_in_call_mib']} MiB per line in a call",
        ),
        (
            "daemon fds",
            f"idle {d['fds_idle']}, end {d['fds_end']}; slopes: RSS "
            f"{d['rss_slope_mib_per_h']} MiB/h, fds {d['fds_slope_per_h']}/h",
        ),
        ("machine", f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"),
    ]
    for name, value in rows:
        print(f"{name:<18} {value}")


def ledger_row(p: dict[str, Any]) -> str:
    row = f"{p['bank_debits']} debits; the daemon recorded {p['daemon_paid']} paid: "
    if p["ledger_agrees"]:
        row += "they agree"
    else:
        row += "MISMATCH: THE BANK'S LEDGER AND THE DAEMON'S RECORDS DISAGREE"
    if not p["lines_idle_before_stop"]:
        row += " (a line was still busy when the daemon was stopped)"
    return row


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=8, help="1521 lines and callers (default 8)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--personality",
        action="append",
        choices=available_personalities(),
        help=f"modem personality; repeat to cycle (default {' / '.join(PERSONALITIES)})",
    )
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle daemon first")
    parser.add_argument(
        "--ramp", type=float, default=20.0, help="seconds over which callers start (default 20)"
    )
    parser.add_argument(
        "--outbound",
        type=int,
        default=None,
        help=f"the daemon's outbound lines to the bank (default: one per "
        f"{INBOUND_PER_OUTBOUND} lines, at least 1)",
    )
    parser.add_argument(
        "--testbeds",
        type=int,
        default=None,
        help=f"test-bed processes the lines are split over (default: one per "
        f"{LINES_PER_TESTBED} lines, at most one per core)",
    )
    parser.add_argument("--seed", type=int, default=1521)
    args = parser.parse_args(argv)
    if args.lines < 1 or args.duration < 2 or args.idle < 1 or args.ramp < 0:
        parser.error("--lines >= 1, --duration >= 2, --idle >= 1, --ramp >= 0")
    if args.outbound is not None and args.outbound < 0:
        parser.error("--outbound >= 0")
    if args.testbeds is not None and args.testbeds < 1:
        parser.error("--testbeds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging("ERROR")
    run = asyncio.run(rack(args))
    result = figures(run)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    print_table(result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    payments = result["payments"]
    if not payments["ledger_agrees"]:
        print(
            f"rack.py: the bank's ledger has {payments['bank_debits']} debits, the daemon "
            f"recorded {payments['daemon_paid']} paid payments: they must agree",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
