"""Shared by the daemon tests: a small call handler, a systemd notify listener, configs.

The handler stands in for the 1521 flow where a test is about the daemon
(lines, faults, drain, the socket), not the script: it answers, plays a
prompt or a tone, waits for one key and records the call.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon1521.billing.store import CallOutcome
from daemon1521.daemon.call import Call
from daemon1521.dsp import codecs
from daemon1521.dsp.tones import tone
from daemon1521.modem.errors import ModemError
from daemon1521.modem.voice import CallEnded

KEY_WAIT = 60.0
"""Line seconds the handler waits for a key after its greeting."""


async def short_call(call: Call, prompt: str | None = "welcome") -> None:
    """Answer, play ``prompt`` (a 440 Hz tone when None), wait for a key; the line hangs up."""
    store, modem = call.store, call.modem
    assert store is not None
    call_id = store.open_call(call.line, call.caller)
    call.report(call_id=call_id)
    outcome, reason = CallOutcome.NO_INPUT, "no key"
    try:
        await modem.answer()
        call.report(state="greeting")
        if prompt is not None and call.prompts is not None:
            audio = call.prompts.encoded(prompt, modem.codec)
        else:
            audio = codecs.encode(tone([440.0], 0.5), modem.codec)
        key = await modem.play(audio, barge_in=True)
        call.report(state="waiting_for_key")
        if key is None:
            key = await modem.next_key(KEY_WAIT)
        if key is not None:
            outcome, reason = CallOutcome.NO_DEBT, "a key was pressed"
            call.report(state="goodbye")
    except CallEnded as exc:
        outcome, reason = (
            CallOutcome.HUNG_UP,
            f"hung up in {call.flow_state} ({exc.hung_up.reason})",
        )
    except ModemError:
        outcome, reason = CallOutcome.ERROR, f"line failed in {call.flow_state}"
        raise
    finally:
        store.close_call(call_id, outcome, reason)


class ToneCalls:
    """A call handler: :func:`short_call` with a tone instead of a prompt."""

    async def take_call(self, call: Call) -> None:
        await short_call(call, prompt=None)


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        # read as datagrams arrive: the kernel queues only a few (net.unix.max_dgram_qlen)
        self._loop: asyncio.AbstractEventLoop | None = None
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loop.add_reader(self.sock.fileno(), self._drain)

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        self._drain()
        return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    async def wait_for(
        self,
        predicate: Callable[[dict[str, str]], bool],
        timeout: float = 20.0,
        start: int = 0,
    ) -> dict[str, str]:
        """The first message from index ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            for message in self.messages[start:]:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no such notification; got {self.messages}")
            await asyncio.sleep(0.01)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


def write_prompt_tone(path: Path, freqs: list[float], seconds: float = 0.4) -> np.ndarray:
    """A distinctive prompt: one tone per frequency, written as an 8 kHz WAV; its samples."""
    from daemon1521.audio.soundfile_io import write_wav

    samples = np.concatenate([tone([f], seconds) for f in freqs])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, samples)
    return samples


def config_text(
    tmp: Path,
    ports: list[str],
    *,
    roles: list[str] | None = None,
    drain: float = 60.0,
    health_check: float = 0.0,
) -> str:
    """A daemon config for a test: state under ``tmp``, fast recovery, given ports."""
    roles = roles or ["inbound"] * len(ports)
    lines = "\n".join(
        f'[lines.line{i + 1}]\nport = "{port}"\nrole = "{role}"\n'
        for i, (port, role) in enumerate(zip(ports, roles, strict=True))
    )
    return f"""
[daemon]
drain_timeout = {drain}

[store]
path = "{tmp / "store.db"}"

[prompts]
dir = "{tmp / "prompts"}"

[control]
socket = "{tmp / "control.sock"}"

[recovery]
backoff_initial = 0.5
backoff_max = 2.0
failures_before_out_of_service = 2
out_of_service_retry = 3.0
health_check = {health_check}

{lines}
"""
