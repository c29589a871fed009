"""Serial ports opened by URL, with an asyncio interface.

Every line of the daemon is a :class:`Port`, whatever carries it: a USB modem
(``/dev/ttyACM0``), the emulator's pseudo-terminal (``/dev/pts/N``), a terminal
server (``rfc2217://host:port``, ``socket://host:port``) through pyserial, or
a VISA resource (``ASRL/dev/ttyS0::INSTR``, ``TCPIP::host::port::SOCKET``)
through pyvisa with the pyvisa-py backend, for sites that manage their lines
that way. The driver above never knows which.

Ports with a file descriptor are driven by the event loop (non-blocking, with
``add_reader``/``add_writer``); the others by one reader and one writer
thread per port, both stopped and joined by :meth:`Port.close`.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import errno
import os
import queue
import re
import socket
import termios
import threading
from collections.abc import Callable
from typing import Any

import serial
import serial.serialposix
from loguru import logger
from serial.tools import list_ports

from daemon1521.modem.dle import CodeSpotter
from daemon1521.modem.errors import PortClosed, PortError

READ_SIZE = 65536
BATCH_BYTES_MAX = 4096
"""Batched reads are handed over once this much has come, whatever the time."""
CallLater = Callable[[float, Callable[[], None]], Any]
RX_BUFFER_LIMIT = 1 << 20  # a thread port stops reading when this much is unread
POLL_S = 0.05  # how often blocking backends look at the stop flag
DRAIN_POLL_S = 0.005
# errno values that mean the device is gone (USB unplugged, pty master closed)
_GONE_ERRNOS = frozenset(
    {errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF, errno.EPIPE, errno.ECONNRESET}
)
_VISA_RESOURCE = re.compile(r"^(ASRL\S*::INSTR|TCPIP\d*::[^:]+::\d+::SOCKET)$", re.IGNORECASE)
_DTR_SCHEMES = frozenset({"rfc2217"})  # pyserial URL handlers that really drive DTR


def is_visa_resource(url: str) -> bool:
    """True for names this module opens through pyvisa rather than pyserial."""
    return bool(_VISA_RESOURCE.match(url.strip()))


def usb_id_for(device: str, ports: list[Any] | None = None) -> tuple[int, int] | None:
    """(vendor, product) of a USB serial device from pyserial's port list, else None.

    ``ports`` defaults to ``serial.tools.list_ports.comports()``; symlinks such
    as ``/dev/serial/by-id/...`` are resolved before comparing.
    """
    if not device.startswith("/dev/") or device.startswith("/dev/pts/"):
        return None
    real = os.path.realpath(device)
    for info in list_ports.comports() if ports is None else ports:
        if os.path.realpath(info.device) == real and info.vid is not None:
            return int(info.vid), int(info.pid or 0)
    return None


def _gone(exc: OSError) -> bool:
    return exc.errno in _GONE_ERRNOS


class Port(abc.ABC):
    """An open serial line: bytes in, bytes out, and DTR where the line has it."""

    def __init__(self, url: str, usb_id: tuple[int, int] | None = None) -> None:
        self.url = url
        self.usb_id = usb_id
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @abc.abstractmethod
    async def read(self) -> bytes:
        """What has arrived (at least one byte); PortClosed/PortError when gone."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Returns once the OS (or backend) has accepted every byte."""

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait until earlier writes have left this side of the line."""

    @abc.abstractmethod
    async def pulse_dtr(self, seconds: float) -> bool:
        """Drop DTR for ``seconds`` (a hardware reset); False where the line has no DTR."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the port; safe to call twice. Pending reads raise PortClosed."""

    def batch_reads(self, seconds: float, call_later: CallLater | None = None) -> None:
        """Hand received bytes over at most every ``seconds`` (``call_later`` on
        the caller's clock), at once when they hold a DLE code; 0 turns it off.

        For a line listening only for keys: the chip reports keys as DLE codes,
        so they still come at once, and the audio around them, which nobody
        waits for, costs one pass through the driver every ``seconds`` instead
        of one per chunk the device sends (fifty a second on a USB modem, more
        on a UART). Ports without their own readiness callback ignore it.
        """
        return None  # optional: only event-loop ports batch

    async def __aenter__(self) -> Port:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.url} {state}>"


class FdPort(Port):
    """A pyserial posix port (tty, USB CDC-ACM, pty) driven by the event loop.

    While a caller keeps reading, the fd stays registered with the loop and
    the readiness callback reads for it: a line streaming audio is readable
    fifty times a second, and registering and unregistering the fd around
    every read cost more than the read itself. The callback reads only for a
    waiting caller; with none it unregisters, so bytes nobody asks for stay in
    the kernel, where the device sees the back-pressure.
    """

    def __init__(self, ser: serial.serialposix.Serial, url: str, usb_id: tuple[int, int] | None):
        super().__init__(url, usb_id)
        self._serial = ser
        self._fd = ser.fileno()
        os.set_blocking(self._fd, False)
        _block_until_a_byte(self._fd)
        self._loop = asyncio.get_running_loop()
        self._write_lock = asyncio.Lock()
        self._waiters: set[asyncio.Future[None]] = set()
        self._unread = bytearray()
        self._read_failure: PortError | None = None
        self._reader_on = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._batch = 0.0
        self._batch_later: CallLater | None = None
        self._batch_timer: Any = None
        self._codes = CodeSpotter()

    def batch_reads(self, seconds: float, call_later: CallLater | None = None) -> None:
        self._batch = max(0.0, seconds) if call_later is not None else 0.0
        self._batch_later = call_later
        if not self._batch:
            self._release_batch()

    async def read(self) -> bytes:
        while True:
            self._check_open()
            if self._unread and self._batch_timer is None:
                data = bytes(self._unread)
                self._unread.clear()
                # and whatever came since: fewer, larger reads for the caller
                # (nothing more, or a failure, shows on the next read)
                if not self._batch:
                    with contextlib.suppress(OSError):
                        data += self._scanned(os.read(self._fd, READ_SIZE))
                return data
            if self._read_failure is not None:
                raise self._read_failure
            if self._batch or self._unread:
                await self._readable()  # the readiness callback reads and batches
                continue
            try:
                data = os.read(self._fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                await self._readable()
                continue
            except OSError as exc:
                raise self._error(exc, "read") from exc
            if not data:
                raise PortClosed(f"{self.url}: end of file (the other side hung up)")
            return self._scanned(data)

    def _scanned(self, data: bytes) -> bytes:
        """``data``, seen by the code spotter (which must see every byte read)."""
        self._codes.feed(data)
        return data

    async def _readable(self) -> None:
        """Sleep until bytes arrive (read by :meth:`_on_readable`) or the port closes."""
        waiter = self._loop.create_future()
        self._read_waiter = waiter
        self._waiters.add(waiter)
        if not self._reader_on:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reader_on = True
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            self._read_waiter = None

    def _on_readable(self) -> None:
        """Bytes arrived: read them for the waiting reader; with none waiting, stop
        watching (the fd would stay readable and the loop would spin)."""
        waiter = self._read_waiter
        if self._closed or waiter is None or waiter.done():
            self._unwatch_readable()
            return
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._read_failed(self._error(exc, "read"))
            return
        if not data:
            self._read_failed(PortClosed(f"{self.url}: end of file (the other side hung up)"))
            return
        self._unread += data
        code = self._codes.feed(data)
        if self._batch and not code and len(self._unread) < BATCH_BYTES_MAX:
            if self._batch_timer is None and self._batch_later is not None:
                self._batch_timer = self._batch_later(self._batch, self._batch_due)
            return
        self._release_batch()

    def _batch_due(self) -> None:
        self._batch_timer = None
        self._wake_reader()

    def _release_batch(self) -> None:
        """Hand what is unread over now."""
        self._stop_batch_timer()
        if self._unread:
            self._wake_reader()

    def _stop_batch_timer(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None

    def _read_failed(self, failure: PortError) -> None:
        self._read_failure = failure
        self._unwatch_readable()
        self._stop_batch_timer()  # what came before the failure is read first
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _unwatch_readable(self) -> None:
        if self._reader_on:
            self._loop.remove_reader(self._fd)
            self._reader_on = False

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        async with self._write_lock:
            while view:
                self._check_open()
                try:
                    sent = os.write(self._fd, view)
                except (BlockingIOError, InterruptedError):
                    await self._wait(self._loop.add_writer, self._loop.remove_writer)
                    continue
                except OSError as exc:
                    raise self._error(exc, "write") from exc
                view = view[sent:]

    async def drain(self) -> None:
        async with self._write_lock:
            while not self._closed:
                try:
                    waiting = self._serial.out_waiting
                except (OSError, serial.SerialException):
                    return
                if not waiting:
                    return
                await asyncio.sleep(DRAIN_POLL_S)

    async def pulse_dtr(self, seconds: float) -> bool:
        self._check_open()
        try:
            self._serial.dtr = False
        except (OSError, serial.SerialException):
            return False
        try:
            await asyncio.sleep(seconds)
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                self._serial.dtr = True
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader_on = False
        self._stop_batch_timer()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        with contextlib.suppress(OSError, serial.SerialException):
            self._serial.close()

    async def _wait(
        self,
        add: Callable[..., None],
        remove: Callable[[int], bool],
    ) -> None:
        """Sleep until the fd is readable/writable (or the port is closed)."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(waiter)
        add(self._fd, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            if not self._closed:
                remove(self._fd)

    def _check_open(self) -> None:
        if self._closed:
            raise PortClosed(f"{self.url}: port is closed")

    def _error(self, exc: OSError, what: str) -> PortError:
        if _gone(exc):
            return PortClosed(f"{self.url}: device gone during {what} ({exc.strerror})")
        return PortError(f"{self.url}: {what} failed ({exc.strerror})")


def _block_until_a_byte(fd: int) -> None:
    """VMIN=1, VTIME=0: an empty non-blocking read is then EAGAIN, and 0 bytes means EOF.

    pyserial leaves VMIN=0 (it waits in select), where a read of nothing
    returns 0 bytes and a hang-up cannot be told from silence.
    """
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Backend(abc.ABC):
    """Blocking I/O for a :class:`ThreadPort`; every call may take up to ``POLL_S``."""

    @abc.abstractmethod
    def read_some(self) -> bytes:
        """Bytes that arrived, or b"" after about POLL_S of silence; raises when gone."""

    @abc.abstractmethod
    def write_all(self, data: bytes) -> None: ...

    def set_dtr(self, state: bool) -> bool:
        return False

    @abc.abstractmethod
    def close(self) -> None: ...


class _PyserialBackend(_Backend):
    def __init__(self, ser: serial.SerialBase, scheme: str) -> None:
        self._serial = ser
        self._scheme = scheme

    def read_some(self) -> bytes:
        self._serial.timeout = POLL_S
        first = self._serial.read(1)
        if not first:
            return b""
        self._serial.timeout = 0
        return first + self._serial.read(READ_SIZE)

    def write_all(self, data: bytes) -> None:
        self._serial.write(data)

    def set_dtr(self, state: bool) -> bool:
        if self._scheme not in _DTR_SCHEMES:
            return False
        self._serial.dtr = state
        return True

    def close(self) -> None:
        self._serial.close()


class _VisaBackend(_Backend):
    """pyvisa-py session: ASRL (pyserial underneath) or a raw TCPIP socket."""

    def __init__(self, manager: Any, resource: Any) -> None:
        from pyvisa import constants

        self._constants = constants
        self._manager = manager
        self._resource = resource
        self._serial = resource.interface_type == constants.InterfaceType.asrl

    def read_some(self) -> bytes:
        from pyvisa import errors as visa_errors

        res = self._resource
        try:
            if self._serial:
                data = res.read_bytes(1)
                more = res.bytes_in_buffer
                return data + res.read_bytes(more) if more else data
            return bytes(res.read_raw(READ_SIZE))
        except visa_errors.VisaIOError as exc:
            if exc.error_code != self._constants.StatusCode.error_timeout:
                raise
        if not self._serial:
            self._check_socket_alive()
        return b""

    def _check_socket_alive(self) -> None:
        # pyvisa-py reports an orderly close of a TCPIP SOCKET as a timeout, so
        # look at its socket: readable with nothing to read is the peer's EOF.
        session = self._resource.visalib.sessions.get(self._resource.session)
        sock = getattr(session, "interface", None)
        if not isinstance(sock, socket.socket):
            return
        try:
            peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not peeked:
            raise PortClosed("VISA socket closed by the other side")

    def write_all(self, data: bytes) -> None:
        self._resource.write_raw(data)

    def set_dtr(self, state: bool) -> bool:
        attr = self._constants.ResourceAttribute.asrl_dtr_state
        states = self._constants.LineState
        value = states.asserted if state else states.unasserted
        try:
            self._resource.set_visa_attribute(attr, value)
        except Exception:  # pyvisa-py answers "not supported" in several ways
            return False
        return True

    def close(self) -> None:
        try:
            self._resource.close()
        finally:
            self._manager.close()


class ThreadPort(Port):
    """A port whose I/O blocks (sockets, RFC 2217, VISA): one reader, one writer thread."""

    def __init__(self, backend: _Backend, url: str, usb_id: tuple[int, int] | None = None):
        super().__init__(url, usb_id)
        self._backend = backend
        self._loop = asyncio.get_running_loop()
        self._rx: collections.deque[bytes] = collections.deque()
        self._rx_size = 0
        self._rx_lock = threading.Lock()
        self._rx_space = threading.Condition(self._rx_lock)
        self._rx_ready = asyncio.Event()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._tx: queue.Queue[tuple[bytes, asyncio.Future[None]] | None] = queue.Queue()
        self._tx_pending: set[asyncio.Future[None]] = set()
        self._threads_done = asyncio.Event()
        self._running = 2
        name = f"port {url}"
        self._reader = threading.Thread(target=self._read_loop, name=f"{name} rx", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"{name} tx", daemon=True)
        self._reader.start()
        self._writer.start()

    async def read(self) -> bytes:
        while True:
            with self._rx_lock:
                if self._rx:
                    data = b"".join(self._rx)
                    self._rx.clear()
                    self._rx_size = 0
                    self._rx_space.notify_all()
                    return data
                error = self._error
            if self._closed:
                raise PortClosed(f"{self.url}: port is closed")
            if error is not None:
                raise _as_port_error(self.url, error)
            self._rx_ready.clear()
            await self._rx_ready.wait()

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise PortClosed(f"{self.url}: port is closed")
        if self._error is not None:
            raise _as_port_error(self.url, self._error)
        done: asyncio.Future[None] = self._loop.create_future()
        self._tx_pending.add(done)
        self._tx.put((bytes(data), done))
        try:
            await done
        finally:
            self._tx_pending.discard(done)

    async def drain(self) -> None:
        pending = [f for f in self._tx_pending if not f.done()]
        if pending:
            await asyncio.wait(pending)

    async def pulse_dtr(self, seconds: float) -> bool:
        if self._closed:
            raise PortClosed(f"{self.url}: port is closed")
        try:
            if not self._backend.set_dtr(False):
                return False
        except (OSError, serial.SerialException):
            return False
        try:
            await asyncio.sleep(seconds)
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                self._backend.set_dtr(True)
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with self._rx_lock:
            self._rx_space.notify_all()
        while True:  # writes not started yet are dropped, not sent
            try:
                job = self._tx.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _settle(job[1], PortClosed(f"{self.url}: port closed before write"))
        self._tx.put(None)
        self._rx_ready.set()
        await self._threads_done.wait()
        self._reader.join()
        self._writer.join()
        for fut in self._tx_pending:
            if not fut.done():
                fut.set_exception(PortClosed(f"{self.url}: port closed before write finished"))
        try:
            await _in_thread(self._backend.close, f"port {self.url} close")
        except Exception as exc:
            logger.debug("closing {}: {}", self.url, type(exc).__name__)

    # -- threads -------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._rx_lock:
                    while self._rx_size >= RX_BUFFER_LIMIT and not self._stop.is_set():
                        self._rx_space.wait(POLL_S)
                if self._stop.is_set():
                    break
                data = self._backend.read_some()
                if data:
                    with self._rx_lock:
                        self._rx.append(data)
                        self._rx_size += len(data)
                    self._notify(self._rx_ready.set)
        except BaseException as exc:
            if not self._stop.is_set():
                self._error = exc
                self._notify(self._rx_ready.set)
        finally:
            self._notify(self._thread_ended)

    def _write_loop(self) -> None:
        try:
            while True:
                job = self._tx.get()
                if job is None:
                    return
                data, done = job
                try:
                    self._backend.write_all(data)
                except BaseException as exc:
                    self._notify(_settle, done, _as_port_error(self.url, exc))
                    continue
                self._notify(_settle, done, None)
        finally:
            self._notify(self._thread_ended)

    def _thread_ended(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._threads_done.set()

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(callback, *args)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _as_port_error(url: str, exc: BaseException) -> PortError:
    if isinstance(exc, PortError):
        return exc
    if isinstance(exc, OSError) and _gone(exc):
        return PortClosed(f"{url}: connection gone ({type(exc).__name__})")
    text = str(exc).lower()
    if "disconnected" in text or "died" in text or "closed" in text:
        return PortClosed(f"{url}: connection gone ({type(exc).__name__})")
    return PortError(f"{url}: I/O failed ({type(exc).__name__}: {exc})")


async def _in_thread(
    func: Callable[[], Any], name: str, discard: Callable[[Any], None] | None = None
) -> Any:
    """Run a blocking call (connect, close) in a short-lived, joined thread.

    If the caller is cancelled first, the thread still finishes and ``discard``
    releases what it produced (an opened port nobody will use).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def work() -> None:
        outcome: tuple[bool, Any]
        try:
            outcome = (True, func())
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_deliver, done, outcome)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        return await asyncio.shield(done)
    finally:
        if done.done():
            thread.join()
        else:
            done.add_done_callback(lambda fut: _orphaned(fut, thread, discard))


def _deliver(done: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    ok, value = outcome
    if done.done():
        return
    if ok:
        done.set_result(value)
    else:
        done.set_exception(value)


def _orphaned(
    fut: asyncio.Future[Any], thread: threading.Thread, discard: Callable[[Any], None] | None
) -> None:
    thread.join()
    if discard is not None and not fut.cancelled() and fut.exception() is None:
        discard(fut.result())


def _close_quietly(thing: Any) -> None:
    with contextlib.suppress(Exception):
        thing.close()


def _open_pyserial(
    url: str, baudrate: int, rtscts: bool, *, exclusive: bool = False
) -> serial.SerialBase:
    ser = serial.serial_for_url(url, do_not_open=True)
    if exclusive:
        ser.exclusive = True  # a second daemon on the same modem fails to open it
    ser.baudrate = baudrate
    ser.rtscts = rtscts
    ser.timeout = POLL_S
    ser.write_timeout = None
    ser.open()
    return ser


def _open_visa(name: str, baudrate: int, rtscts: bool) -> _VisaBackend:
    import pyvisa
    from pyvisa import constants

    manager = pyvisa.ResourceManager("@py")
    try:
        resource = manager.open_resource(name)
        resource.timeout = int(POLL_S * 1000)
        if resource.interface_type == constants.InterfaceType.asrl:
            resource.baud_rate = baudrate
            resource.end_input = constants.SerialTermination.none
            resource.flow_control = (
                constants.ControlFlow.rts_cts if rtscts else constants.ControlFlow.none
            )
        else:
            resource.set_visa_attribute(constants.ResourceAttribute.suppress_end_enabled, False)
    except BaseException:
        manager.close()
        raise
    return _VisaBackend(manager, resource)


def _visa_device(name: str) -> str | None:
    match = re.match(r"^ASRL(/dev/\S+?)::INSTR$", name, re.IGNORECASE)
    return match.group(1) if match else None


async def open_port(url: str, baudrate: int = 115200, rtscts: bool = False) -> Port:
    """Open a line by URL: a device path, a pyserial URL or a VISA resource name.

    Modem-control ioctls that a pty refuses are not errors. Raises
    :class:`PortError` when the port cannot be opened.
    """
    url = url.strip()
    try:
        if is_visa_resource(url):
            backend = await _in_thread(
                lambda: _open_visa(url, baudrate, rtscts), f"open {url}", _close_quietly
            )
            device = _visa_device(url)
            return ThreadPort(backend, url, usb_id_for(device) if device else None)
        if "://" not in url:
            ser = _open_pyserial(url, baudrate, rtscts, exclusive=True)
            if isinstance(ser, serial.serialposix.Serial):
                return FdPort(ser, url, usb_id_for(url))
            return ThreadPort(_PyserialBackend(ser, ""), url)
        scheme = url.split("://", 1)[0].lower()
        ser = await _in_thread(
            lambda: _open_pyserial(url, baudrate, rtscts), f"open {url}", _close_quietly
        )
        return ThreadPort(_PyserialBackend(ser, scheme), url)
    except PortError:
        raise
    except (OSError, ValueError, serial.SerialException) as exc:
        raise PortError(f"cannot open {url}: {exc}") from exc
    except Exception as exc:  # pyvisa raises its own and plain Exception types
        raise PortError(f"cannot open {url}: {type(exc).__name__}: {exc}") from exc
