"""An emulated voice modem served on a pseudo-terminal, with injectable faults.

The host (the daemon, or a test) opens ``pty_path`` or the stable ``link``
exactly as it opens ``/dev/ttyACM0``. The master side is non-blocking and
driven by the event loop's reader/writer callbacks:

- reading follows the modem's back-pressure: when its transmit buffer is
  full the reader is removed, the kernel buffer fills and the host's writes
  block, as a USB CDC-ACM modem does;
- writing goes through a queue; what the kernel will not take yet waits for
  the writer callback, and that queue's length is what the modem measures
  to report a receive overrun;
- while no one holds the slave open, the master reads EIO: the port is
  "closed", the modem behaves as on DTR drop, discards its output (nobody
  listens) and the server polls until the host opens the port again. On a
  close, output the host never read is drained from the slave so that a
  later open does not read stale bytes.

Faults: :meth:`EmulatedModem.stop_answering` / :meth:`~EmulatedModem.resume`,
:meth:`~EmulatedModem.inject` (garbage), :meth:`~EmulatedModem.vanish` /
:meth:`~EmulatedModem.reappear` (USB device gone and re-enumerated: a fresh
pty, the symlink moved to it, the modem powered on again), and
:meth:`~EmulatedModem.split_writes` (output in small delayed pieces).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import termios
import tty
from pathlib import Path

from loguru import logger

from daemon1521.clock import Cancellable
from daemon1521.emulator.clock import EmuClock
from daemon1521.emulator.modem.personality import Personality
from daemon1521.emulator.modem.voicemodem import VoiceModem, guarded

POLL_INTERVAL = 0.005
"""Real seconds between checks for the host opening a closed port."""
READ_SIZE = 65536


class EmulatedModem(VoiceModem):
    """A :class:`VoiceModem` on a pseudo-terminal; attach it with ``exchange.add_line``."""

    def __init__(
        self,
        clock: EmuClock,
        personality: Personality | str | Path,
        link: Path | str | None = None,
        *,
        cid_scheme: str | None = None,
    ) -> None:
        super().__init__(clock, personality, cid_scheme=cid_scheme)
        self.link = Path(link) if link is not None else None
        self._fd: int | None = None
        self._pty_path: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = bytearray()
        self._reading = False
        self._writing = False
        self._host_open = False
        self._poll_handle: asyncio.TimerHandle | None = None
        self._delay_handle: Cancellable | None = None
        self._chunk: int | None = None
        self._chunk_delay = 0.0
        self._present = False
        self._wrote_to_host = False
        self.connect_port(self._queue_out, lambda: len(self._out), self._resume_reading)

    # -- what the host sees ----------------------------------------------------------

    @property
    def pty_path(self) -> str | None:
        """``/dev/pts/N`` while the port exists."""
        return self._pty_path

    @property
    def path(self) -> str:
        """What a host should open: the stable link if there is one, else the pty."""
        if self.link is not None:
            return str(self.link)
        if self._pty_path is None:
            raise RuntimeError("the modem's port is not open")
        return self._pty_path

    @property
    def host_connected(self) -> bool:
        """Whether a host holds the port open (as far as the server has noticed)."""
        return self._host_open

    @property
    def present(self) -> bool:
        """False between :meth:`vanish` and :meth:`reappear` (and before :meth:`open`)."""
        return self._present

    # -- life cycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Create the port (and the link). The modem is in its power-on state."""
        if self._fd is not None:
            raise RuntimeError("modem port already open")
        self._loop = asyncio.get_running_loop()
        self.resume()
        self.power_on()
        self._create_port()

    async def close(self) -> None:
        """Hang up and remove the port and the link."""
        self._destroy_port()
        self._end_activity()
        self._hang_up()
        self.stop_answering()
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None

    async def __aenter__(self) -> EmulatedModem:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- faults ----------------------------------------------------------------------------

    def inject(self, data: bytes) -> None:
        """Put bytes into the host's input as if the modem had sent them."""
        if data and self._notice_host():
            self._out += data
            self._flush_out()

    def split_writes(self, max_chunk: int | None, delay: float = 0.0) -> None:
        """Deliver output in pieces of at most ``max_chunk`` bytes, ``delay``
        emulated seconds apart (None: whole, at once)."""
        if max_chunk is not None and max_chunk < 1:
            raise ValueError("max_chunk must be at least 1")
        self._chunk = max_chunk
        self._chunk_delay = max(0.0, delay)
        self._flush_out()

    async def vanish(self) -> None:
        """The USB device goes away: the pty closes (the host gets EIO/hang-up),
        the link disappears, the line goes on hook."""
        self._destroy_port()
        self._end_activity()
        self._hang_up()
        self.stop_answering()

    async def reappear(self) -> None:
        """The device comes back: a fresh pty, the link pointing at it, power-on state."""
        if self._fd is not None:
            raise RuntimeError("modem port is already present")
        self._loop = asyncio.get_running_loop()
        self.resume()
        self.power_on()
        self._create_port()

    # -- the pty --------------------------------------------------------------------------

    def _create_port(self) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            name = os.ttyname(slave)
        except (OSError, termios.error):
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._fd = master
        self._pty_path = name
        self._present = True
        self._host_open = False
        self._out.clear()
        self.clock.add_probe(self._bytes_on_their_way)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(name, tmp)
            os.replace(tmp, self.link)
        self._poll_host()

    def _destroy_port(self) -> None:
        self.clock.remove_probe(self._bytes_on_their_way)
        loop = self._loop
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None
        if self._delay_handle is not None:
            self._delay_handle.cancel()
            self._delay_handle = None
        fd, self._fd = self._fd, None
        if fd is not None and loop is not None:
            if self._reading:
                loop.remove_reader(fd)
            if self._writing:
                loop.remove_writer(fd)
        self._reading = self._writing = False
        if fd is not None:
            os.close(fd)
        self._host_open = False
        self._present = False
        self._out.clear()
        self._pty_path = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def _bytes_on_their_way(self) -> bool:
        """The clock's probe: has the host just opened the port, or are bytes on
        their way between it and this modem?

        A closed port is otherwise watched on real time, which a clock running
        flat out would outrun. A pty hands bytes to the other side in a kernel
        worker, which a busy host runs late; polling a side (not epoll, which
        only hears the worker's wake-up) makes the kernel hand them over now:
        the host's side after this modem wrote, this side while it reads.
        """
        fd = self._fd
        if fd is None:
            return False
        if not self._host_open:
            return self._notice_host()
        if self._wrote_to_host and self._pty_path is not None:
            self._wrote_to_host = False
            with contextlib.suppress(OSError):
                host = os.open(self._pty_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
                try:
                    select.select([host], [], [], 0)
                finally:
                    os.close(host)
        if not self._reading:
            return False
        return bool(select.select([fd], [], [], 0)[0])

    def _slave_open(self) -> bool:
        """Whether someone holds the slave side open (no POLLHUP on the master)."""
        if self._fd is None:
            return False
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLOUT)
        return not any(mask & select.POLLHUP for _, mask in poller.poll(0))

    def _notice_host(self) -> bool:
        """Catch up with a host that opened the port since the last check."""
        if not self._host_open and self._slave_open():
            self._host_open = True
            self._resume_reading()
        return self._host_open

    @guarded()
    def _poll_host(self) -> None:
        """While the port is closed: has the host opened it?"""
        self._poll_handle = None
        if self._fd is None or self._loop is None:
            return
        if not self._notice_host():
            self._poll_handle = self._loop.call_later(POLL_INTERVAL, self._poll_host)

    def _host_gone(self) -> None:
        """The host closed the port (the master reads EIO)."""
        fd = self._fd
        loop = self._loop
        if fd is None or loop is None:
            return
        if self._reading:
            loop.remove_reader(fd)
            self._reading = False
        if self._writing:
            loop.remove_writer(fd)
            self._writing = False
        if self._delay_handle is not None:
            self._delay_handle.cancel()
            self._delay_handle = None
        self._host_open = False
        self._out.clear()
        self._drain_slave()
        logger.debug("modem {}: host closed the port", self._label)
        self.host_closed()
        self._poll_handle = loop.call_later(POLL_INTERVAL, self._poll_host)

    def _drain_slave(self) -> None:
        """Throw away output the host never read, so a new open starts clean."""
        if self._pty_path is None:
            return
        try:
            slave = os.open(self._pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(slave, termios.TCIFLUSH)
        except termios.error:
            pass
        finally:
            os.close(slave)

    # -- reading ------------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if self._fd is None or self._loop is None or not self._host_open or self._reading:
            return
        self._loop.add_reader(self._fd, self._on_readable)
        self._reading = True

    def _pause_reading(self) -> None:
        if self._reading and self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._reading = False

    @guarded()
    def _on_readable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        room = self.input_room()
        if room == 0:
            self._pause_reading()
            return
        try:
            data = os.read(fd, READ_SIZE if room is None else min(room, READ_SIZE))
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                self._host_gone()
                return
            raise
        if not data:
            self._host_gone()
            return
        self.host_bytes(data)
        if self.input_room() == 0:
            self._pause_reading()

    # -- writing -------------------------------------------------------------------------------

    def _queue_out(self, data: bytes) -> None:
        if not self._notice_host():
            return
        self._out += data
        self._flush_out()

    @guarded()
    def _flush_out(self) -> None:
        fd = self._fd
        loop = self._loop
        if fd is None or loop is None or self._delay_handle is not None:
            return
        while self._out:
            size = len(self._out) if self._chunk is None else min(self._chunk, len(self._out))
            try:
                written = os.write(fd, self._out[:size])
            except BlockingIOError:
                written = 0
            except OSError as exc:
                if exc.errno == errno.EIO:
                    self._host_gone()
                    return
                raise
            if written == 0:
                if not self._writing:
                    loop.add_writer(fd, self._flush_out)
                    self._writing = True
                return
            del self._out[:written]
            self._wrote_to_host = True
            if self._chunk is not None and self._out:
                self._stop_writer()
                # the pause is line time: a clock running flat out keeps it too
                self._delay_handle = (
                    self.clock.call_later(self._chunk_delay, self._after_delay)
                    if self._chunk_delay > 0
                    else loop.call_soon(self._after_delay)
                )
                return
        self._stop_writer()

    def _after_delay(self) -> None:
        self._delay_handle = None
        self._flush_out()

    def _stop_writer(self) -> None:
        if self._writing and self._fd is not None and self._loop is not None:
            self._loop.remove_writer(self._fd)
        self._writing = False
