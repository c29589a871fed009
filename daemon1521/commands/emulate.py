"""``daemon1521 emulate``: an emulated exchange with voice modems on ptys.

A person can point minicom, vgetty or the daemon at a printed pty and watch
RING and caller ID arrive, answer, play and record; calls are placed with
``--call`` or by typing ``call CALLER [KEYS]`` on standard input.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
from collections.abc import Callable

import click
from loguru import logger

from daemon1521.emulator.modem import available_personalities
from daemon1521.emulator.rig import Rig, wait_cancelled


def _parse_call(text: str) -> tuple[str, str]:
    caller, _, keys = text.partition(":")
    if not caller or not all(c in "0123456789" for c in caller):
        raise click.BadParameter(f"{text!r}: expected CALLER[:KEYS], caller number in digits")
    if any(c not in "0123456789*#ABCD" for c in keys):
        raise click.BadParameter(f"{text!r}: keys may be 0-9 * # A-D")
    return caller, keys


@click.command()
@click.option("--lines", "-n", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--personality",
    "-p",
    "personalities",
    multiple=True,
    type=click.Choice(available_personalities()),
    help="Modem personality, repeated to mix them (lines cycle through).  "
    "[default: conexant-cx93001, usr-5637]",
)
@click.option("--speed", default=1.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("--link-dir", type=click.Path(file_okay=False), help="Stable names for the ptys.")
@click.option(
    "--call",
    "calls",
    multiple=True,
    metavar="CALLER[:KEYS]",
    help="Place a call into 1521 from CALLER and press KEYS once answered (repeatable).",
)
@click.option("--hold", default=20.0, show_default=True, help="Seconds a caller stays on.")
@click.option(
    "--duration", type=float, help="Exit after this many real seconds (default: run until ^C)."
)
def emulate(
    lines: int,
    personalities: tuple[str, ...],
    speed: float,
    link_dir: str | None,
    calls: tuple[str, ...],
    hold: float,
    duration: float | None,
) -> None:
    """Run an emulated exchange with voice modems on pseudo-terminals.

    Prints one JSON line per modem (line, number, personality, pty), then the
    exchange's events on standard error, until interrupted. Standard input
    takes `call CALLER [KEYS]` lines.
    """
    placed = [_parse_call(text) for text in calls]
    rig = Rig(
        lines,
        personalities or ("conexant-cx93001", "usr-5637"),
        speed=speed,
        link_dir=link_dir,
    )
    asyncio.run(_serve(rig, placed, hold, duration))


async def _serve(
    rig: Rig, placed: list[tuple[str, str]], hold: float, duration: float | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task[None]] = set()

    def call(caller: str, keys: str) -> None:
        task = asyncio.create_task(_call(rig, caller, keys, hold))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async with rig:
        for record in rig.describe():
            print(json.dumps(record), flush=True)
        for caller, keys in placed:
            call(caller, keys)
        watchers = [asyncio.create_task(_print_events(rig))]
        watchers.append(asyncio.create_task(_read_commands(call, stop)))
        try:
            if duration is None:
                await stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration)
        finally:
            for task in [*watchers, *tasks]:
                await wait_cancelled(task)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


async def _call(rig: Rig, caller: str, keys: str, hold: float) -> None:
    outcome = await rig.place_call(caller, keys, hold=hold)
    print(json.dumps({"call": caller, "keys": keys, "outcome": outcome}), flush=True)


async def _print_events(rig: Rig) -> None:
    seen = 0
    while True:
        events = rig.exchange.events
        seen = min(seen, len(events))
        for event in events[seen:]:
            logger.info("{:9.2f}s {} {}", event.time, event.line, event.event)
        seen = len(events)
        await asyncio.sleep(0.2)


async def _read_commands(call: Callable[[str, str], None], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    mode = os.fstat(sys.stdin.fileno()).st_mode if not sys.stdin.closed else 0
    if not (
        stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and sys.stdin.isatty())
    ):
        return  # a plain file or /dev/null: no commands to read
    reader = asyncio.StreamReader()
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
    except (OSError, ValueError):
        return  # standard input is a plain file or closed: no commands
    try:
        while raw := await reader.readline():
            _command(raw.decode(errors="replace"), call, stop)
    finally:
        transport.close()


def _command(line: str, call: Callable[[str, str], None], stop: asyncio.Event) -> None:
    words = line.split()
    if not words:
        return
    if words[0] == "call" and len(words) in (2, 3):
        try:
            call(*_parse_call(":".join(words[1:])))
        except click.BadParameter as exc:
            logger.warning("{}", exc.message)
    elif words[0] in ("quit", "exit"):
        stop.set()
        return
    else:
        logger.warning("unknown command {!r}: try 'call CALLER [KEYS]' or 'quit'", line.strip())
