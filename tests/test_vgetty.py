"""An unmodified vgetty (Debian's mgetty-voice) against the emulated modems.

vgetty was written for real chips, never for this emulator, so it checks the
emulator from outside: on the Conexant, the USR 5637 and the generic V.253
modem it must initialise, see the caller ID, answer, play a greeting the
caller hears, take the caller's DTMF exactly, notice the caller hanging up
during the greeting and during recording, record what the caller said, and
come back for the next call (vgetty exits after each call; init would start
it again, here the test does).

vgetty reads its configuration from ``/etc/mgetty``, logs to
``/var/log/mgetty`` and locks in ``/var/lock``. Each vgetty runs in a private
mount namespace where temporary directories stand in for those three, so
nothing of the host's is read or left behind; the device under ``/dev`` it
insists on is a symlink to the emulator's pty that the test removes. Where
that cannot be done (not root, vgetty or the pvftools missing, no mount
namespaces) the test is skipped with the reason.

``forceV253`` is set on every port: it is how Conexant users run vgetty
(``ATI`` answers ``56000``), and vgetty's guess from ``ATI`` would otherwise
pick its older vendor drivers for the USR, whose commands the 5637 lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from daemon1521.dsp.tones import tone
from daemon1521.emulator.rig import Rig
from daemon1521.emulator.toneplan import TonePlan

CHIPS = ("conexant-cx93001", "usr-5637", "generic-v253")
TOOLS = ("vgetty", "wavtopvf", "pvftormd", "unshare", "mount")
STAND_INS = {"etc": "/etc/mgetty", "log": "/var/log/mgetty", "lock": "/var/lock"}
"""Directories vgetty uses, and the name of the temporary one standing in for each."""

RATE = 8000
GREETING_HZ = 700.0
GREETING_SECONDS = 2.0
BEEP_HZ = 933.0  # vgetty's default beep_frequency
BEEP_SECONDS = 1.5  # and beep_length
PATTERN_HZ = (400.0, 1100.0, 600.0, 1500.0, 800.0, 1300.0, 500.0, 1700.0, 900.0, 2000.0)
SECRET = "4711"
NOTICE_LIMIT = 6.0
"""Seconds within which vgetty must hang up once the chip can tell it the
caller has gone (busy tone takes two cadences to be recognised)."""
HANDSET_AFTER_ANSWER = {"usr-5637"}
"""Chips that send DLE H right after AT+VLS=1 (VOICE-MODEMS.md section 3: the
USR 5637, not a hang-up). vgetty takes it for a local handset lifted: it
plays the greeting, then leaves the call to the handset and hangs up, so it
never records on these chips."""
PLAN = TonePlan(ring_cadence=((1.0, 2.0),))
"""Shorter ring gaps than the Iranian 1 s on 4 s off, so that three calls per
chip fit the time budget; caller ID still comes between the rings."""


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root: vgetty locks its line and opens a device under /dev"
    for tool in TOOLS:
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} not installed (scripts/install-system-deps installs mgetty-voice)"
    for directory in STAND_INS.values():
        if not Path(directory).is_dir():
            return f"{directory} does not exist"
    probe = subprocess.run(
        ["unshare", "-m", "mount", "--bind", "/tmp", "/tmp"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "no private mount namespace (unshare -m) to give vgetty its own /etc/mgetty"
    return None


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


# -- audio ------------------------------------------------------------------------


def pattern() -> np.ndarray:
    """What the caller says into the recording: 100 ms steps through PATTERN_HZ, twice."""
    steps = [tone([f], 0.1, level_dbm0=-10.0) for f in PATTERN_HZ * 2]
    return np.concatenate(steps)


def dominant(audio: np.ndarray, frame: int = 400) -> list[float | None]:
    """The strongest frequency of each 50 ms frame, None where it is quiet."""
    out: list[float | None] = []
    for start in range(0, len(audio) - frame + 1, frame):
        chunk = audio[start : start + frame].astype(np.float64)
        if np.sqrt(np.mean(chunk**2)) < 300:
            out.append(None)
            continue
        spectrum = np.abs(np.fft.rfft(chunk * np.hanning(frame)))
        out.append(float(np.argmax(spectrum)) * RATE / frame)
    return out


def seconds_of(audio: np.ndarray, hz: float) -> float:
    return sum(1 for f in dominant(audio) if f is not None and abs(f - hz) <= 25) * 0.05


def best_match(template: np.ndarray, recording: np.ndarray) -> float:
    """The highest normalised correlation of ``template`` anywhere in ``recording``."""
    t = template.astype(np.float64)
    r = recording.astype(np.float64)
    if len(r) < len(t):
        return 0.0
    n = 1 << int(np.ceil(np.log2(len(r) + len(t))))
    corr = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(t, n)), n)[: len(r) - len(t) + 1]
    energy = np.convolve(r**2, np.ones(len(t)), mode="valid")
    norm = np.sqrt(np.maximum(energy, 1e-9) * np.sum(t**2))
    return float(np.max(corr / norm))


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.astype("<i2").tobytes())


def read_rmd(path: Path) -> np.ndarray:
    """A vgetty recording as 16-bit samples.

    The file is vgetty's RMD: a 32-byte header (``RMD1``, the modem type,
    then compression, sample rate and bits per sample), then the bytes the
    modem sent. Every chip here records 8-bit unsigned linear.
    """
    data = path.read_bytes()
    assert data[:4] == b"RMD1", f"{path} is not an RMD file"
    rate, bits = int.from_bytes(data[22:24], "big"), data[24]
    assert (rate, bits) == (RATE, 8), f"recorded at {rate} Hz, {bits} bits"
    return (np.frombuffer(data[32:], dtype=np.uint8).astype(np.int16) - 128) * 256


# -- vgetty's surroundings ------------------------------------------------------


@dataclass
class Port:
    """One emulated modem as vgetty sees it: its /dev name and its files."""

    chip: str
    tty: str
    voice: Path
    digits: Path
    log: Path


def configure(work: Path, ports: list[Port]) -> None:
    """vgetty's stand-in directories, voice.conf, greeting and DTMF program."""
    for name in STAND_INS:
        (work / name).mkdir()
    for conf in ("mgetty.config", "login.config", "dialin.config"):
        (work / "etc" / conf).write_text("")
    write_wav(work / "greeting.wav", tone([GREETING_HZ], GREETING_SECONDS, level_dbm0=-10.0))
    subprocess.run(
        [_tool("wavtopvf"), str(work / "greeting.wav"), str(work / "greeting.pvf")],
        check=True,
        capture_output=True,
    )
    lines = [
        "part generic",
        "voice_log_level 6",
        "phone_owner root",
        "phone_group root",
        "rec_compression 0",
        "rec_speed 8000",
        "rec_max_len 30",
        "rec_silence_len 50",
        "program vgetty",
        "rings 2",
        "answer_mode voice",
        "rec_always_keep true",
        "backup_message greeting.rmd",
    ]
    for port in ports:
        (port.voice / "incoming").mkdir(parents=True)
        (port.voice / "messages").mkdir()
        # V253modem compression 8: 8-bit unsigned linear, which all three chips list
        subprocess.run(
            [
                _tool("pvftormd"),
                "V253modem",
                "8",
                str(work / "greeting.pvf"),
                str(port.voice / "messages" / "greeting.rmd"),
            ],
            check=True,
            capture_output=True,
        )
        program = port.voice / "dtmf.sh"
        program.write_text(f'#!/bin/sh\necho "$1" >> {port.digits}\n')
        program.chmod(0o755)
        lines += [
            f"port {port.tty}",
            "forceV253 TRUE",
            f"voice_dir {port.voice}",
            f"dtmf_program {program}",
        ]
    (work / "etc" / "voice.conf").write_text("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def vgetty(work: Path, port: Port) -> AsyncIterator[asyncio.subprocess.Process]:
    """One vgetty run on ``port``, ready for a call; killed on the way out if still there."""
    mounts = " && ".join(
        f"mount --bind {work / name} {target}" for name, target in STAND_INS.items()
    )
    offset = port.log.stat().st_size if port.log.exists() else 0
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "-m",
        "sh",
        "-c",
        f"{mounts} && exec {_tool('vgetty')} -x 6 {port.tty}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(20):
            while "waiting..." not in new_log(port, offset):
                if process.returncode is not None:
                    raise AssertionError(f"vgetty exited: {new_log(port, offset)[-2000:]}")
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def new_log(port: Port, offset: int) -> str:
    if not port.log.exists():
        return ""
    with port.log.open("rb") as log:
        log.seek(offset)
        return log.read().decode("latin-1")


async def until(rig: Rig, condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait (emulated time) for ``condition``; return how long it took."""
    start = rig.clock.now()
    while not condition():
        if rig.clock.now() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await rig.clock.sleep(0.05)
    return rig.clock.now() - start


# -- the calls --------------------------------------------------------------------


async def exercise(rig: Rig, index: int, port: Port, work: Path) -> None:
    """Three calls to one chip, each to a fresh vgetty, as init would start it."""
    modem, line = rig.modems[index], rig.lines[index]
    caller = f"0218877000{index}"
    phone = rig.phone(caller)

    # 1: caller ID, the greeting heard, a recording, the caller hangs up while recorded
    offset = port.log.stat().st_size if port.log.exists() else 0
    async with vgetty(work, port) as process:
        assert await phone.dial(line.number) == "answered"
        mark = len(phone.heard)
        if port.chip in HANDSET_AFTER_ANSWER:
            # the greeting plays whole, then vgetty gives the call to the
            # handset it was told of, and hangs up
            await until(rig, lambda: not modem.off_hook, 15, f"{port.chip}: vgetty to hang up")
            await phone.hang_up()
        else:

            def beep_over() -> bool:
                heard = dominant(phone.heard[mark:])
                beeps = [i for i, f in enumerate(heard) if f is not None and abs(f - BEEP_HZ) <= 25]
                return bool(beeps) and len(heard) - beeps[-1] > 10 and heard[-1] is None

            await until(rig, beep_over, 15, f"{port.chip}: the greeting and the beep")
            said = pattern()
            phone.say(said)
            await phone.wait(len(said) / RATE + 0.3)
            await phone.hang_up()
            await until(rig, lambda: not modem.off_hook, NOTICE_LIMIT, "vgetty to hang up")
        await asyncio.wait_for(process.wait(), 15)
    greeting = seconds_of(phone.heard[mark:], GREETING_HZ)
    assert greeting >= GREETING_SECONDS - 0.3, f"{port.chip}: heard {greeting} s of greeting"
    log = new_log(port, offset)
    assert f"CALLER_ID={caller}" in log, f"{port.chip}: no caller ID in vgetty's log"
    recordings = sorted((port.voice / "incoming").glob("*.rmd"))
    if port.chip not in HANDSET_AFTER_ANSWER:
        assert len(recordings) == 1, recordings
        recorded = read_rmd(recordings[0])
        # vgetty starts recording a moment after its beep: compare the last 1.5 s
        match = best_match(said[len(said) // 4 :], recorded)
        assert match > 0.9, f"{port.chip}: the recording matches what was said only {match:.2f}"

    # 2: the caller's keys, exactly, to vgetty's DTMF program (*digits#)
    async with vgetty(work, port) as process:
        assert await phone.dial(line.number) == "answered"
        await phone.wait(0.8)
        await phone.press(f"*{SECRET}#")
        await until(rig, port.digits.exists, 10, "vgetty's DTMF program")
        await asyncio.wait_for(process.wait(), 15)
        await phone.hang_up()
    assert port.digits.read_text() == f"{SECRET}\n"

    # 3: the caller hangs up during the greeting; vgetty notices and ends the call
    async with vgetty(work, port) as process:
        assert await phone.dial(line.number) == "answered"
        await phone.wait(0.5)
        await phone.hang_up()
        # a chip that reports nothing while playing (the Conexant) lets the
        # greeting and the beep finish; vgetty notices once it records
        limit = GREETING_SECONDS + BEEP_SECONDS + NOTICE_LIMIT
        await until(rig, lambda: not modem.off_hook, limit, "vgetty to hang up")
        await asyncio.wait_for(process.wait(), 15)


async def test_vgetty_on_every_chip(tmp_path: Path) -> None:
    work = tmp_path
    async with asyncio.timeout(85):
        async with Rig(len(CHIPS), CHIPS, plan=PLAN) as rig:
            stem = f"ttyE{os.getpid() % 100000}"
            ports = [
                Port(
                    chip,
                    f"{stem}{index}",
                    work / f"voice{index}",
                    work / f"digits{index}",
                    work / "log" / f"vg_{stem}{index}.log",
                )
                for index, chip in enumerate(CHIPS)
            ]
            configure(work, ports)
            links = [Path("/dev", port.tty) for port in ports]
            try:
                for link, modem in zip(links, rig.modems, strict=True):
                    link.symlink_to(str(modem.pty_path))
                # each chip to its end, failed or not, so that every vgetty is reaped
                outcomes = await asyncio.gather(
                    *(exercise(rig, index, port, work) for index, port in enumerate(ports)),
                    return_exceptions=True,
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
            finally:
                for link in links:
                    with contextlib.suppress(FileNotFoundError):
                        link.unlink()
    assert not list((work / "lock").iterdir()), "vgetty left a lock file"
