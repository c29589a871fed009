"""Ports by URL over real pseudo-terminals and local sockets: bytes, back-pressure, hang-ups."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from daemon1521.clock import LoopClock
from daemon1521.modem.errors import PortClosed, PortError
from daemon1521.modem.transport import (
    FdPort,
    Port,
    ThreadPort,
    is_visa_resource,
    open_port,
    usb_id_for,
)

EVERY_BYTE = bytes(range(256))


class PtyPeer:
    """The far end of a pty (what the emulator holds), driven by the test's loop."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._slave: int | None = slave
        os.set_blocking(self.master, False)
        self.loop = asyncio.get_running_loop()

    def release_slave(self) -> None:
        """Once the port has the slave open, the test's copy is not needed."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    async def read_exactly(self, count: int, chunk: int = 65536) -> bytes:
        data = bytearray()
        while len(data) < count:
            try:
                data += os.read(self.master, min(chunk, count - len(data)))
            except BlockingIOError:
                ready = self.loop.create_future()
                self.loop.add_reader(self.master, ready.set_result, None)
                try:
                    await ready
                finally:
                    self.loop.remove_reader(self.master)
        return bytes(data)

    async def read_some(self) -> bytes:
        """What the port has sent so far (at least one byte); b"" once it has closed."""
        while True:
            try:
                return os.read(self.master, 65536)
            except BlockingIOError:
                ready = self.loop.create_future()
                self.loop.add_reader(self.master, ready.set_result, None)
                try:
                    await ready
                finally:
                    self.loop.remove_reader(self.master)
            except OSError:
                return b""

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        self.release_slave()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


@pytest.fixture
async def peer() -> AsyncIterator[PtyPeer]:
    pty = PtyPeer()
    yield pty
    pty.close()


async def read_exactly(port: Port, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await port.read()
    return bytes(data)


async def test_pty_bytes_both_ways(peer: PtyPeer) -> None:
    async with await open_port(peer.path) as port:
        peer.release_slave()
        assert isinstance(port, FdPort)
        assert port.usb_id is None and port.url == peer.path
        await port.write(EVERY_BYTE)
        assert await peer.read_exactly(256) == EVERY_BYTE
        peer.write(EVERY_BYTE[::-1])
        assert await read_exactly(port, 256) == EVERY_BYTE[::-1]
    assert port.closed


AUDIO = b"\x7f" * 160 + b"\x10\x10"  # 20 ms of silence and a shielded DLE


async def test_batched_reads_hold_audio_and_hand_dle_codes_over_at_once(peer: PtyPeer) -> None:
    async with await open_port(peer.path) as port:
        peer.release_slave()
        # a batch far longer than the test: whatever comes early came for a code
        port.batch_reads(30.0, LoopClock().call_later)
        reading = asyncio.create_task(port.read())
        for _ in range(5):
            peer.write(AUDIO)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert not reading.done()
        # a DLE ending a chunk may begin a code: handed over (early, never late)
        peer.write(b"\x7f\x10")
        data = await asyncio.wait_for(reading, 10.0)
        reading = asyncio.create_task(port.read())
        peer.write(b"\x10" + b"\x7f" * 20)  # it was a shielded DLE: held again
        await asyncio.sleep(0.2)
        assert not reading.done()
        peer.write(b"\x7f\x105")  # a key
        data += await asyncio.wait_for(reading, 10.0)
        while len(data) < 5 * len(AUDIO) + 26:
            data += await asyncio.wait_for(port.read(), 10.0)
        assert data == AUDIO * 5 + b"\x7f\x10\x10" + b"\x7f" * 20 + b"\x7f\x105"
        # held bytes go at once when batching stops (a stream ending)
        reading = asyncio.create_task(port.read())
        peer.write(b"\x7f" * 10)
        await asyncio.sleep(0.2)
        assert not reading.done()
        port.batch_reads(0)
        assert await asyncio.wait_for(reading, 10.0) == b"\x7f" * 10


async def test_a_batch_is_handed_over_when_due(peer: PtyPeer) -> None:
    async with await open_port(peer.path) as port:
        peer.release_slave()
        port.batch_reads(0.5, LoopClock().call_later)
        reading = asyncio.create_task(port.read())
        for _ in range(3):
            peer.write(AUDIO)
            await asyncio.sleep(0.01)
        data = await asyncio.wait_for(reading, 10.0)
        while len(data) < 3 * len(AUDIO):
            data += await asyncio.wait_for(port.read(), 10.0)
        assert data == AUDIO * 3


async def test_a_hang_up_during_a_batch_delivers_the_bytes_before_it(peer: PtyPeer) -> None:
    async with await open_port(peer.path) as port:
        peer.release_slave()
        port.batch_reads(30.0, LoopClock().call_later)
        reading = asyncio.create_task(port.read())
        peer.write(AUDIO)
        await asyncio.sleep(0.1)
        peer.close()
        assert await asyncio.wait_for(reading, 10.0) == AUDIO
        with pytest.raises(PortClosed):
            await asyncio.wait_for(port.read(), 10.0)


async def test_dtr_pulse_is_refused_on_a_pty(peer: PtyPeer) -> None:
    async with await open_port(peer.path) as port:
        assert await port.pulse_dtr(0.01) is False


async def test_large_write_waits_for_a_slow_reader(peer: PtyPeer) -> None:
    payload = random.Random(1521).randbytes(256 * 1024)
    async with await open_port(peer.path) as port:
        peer.release_slave()
        writing = asyncio.create_task(port.write(payload))
        await asyncio.sleep(0.05)
        assert not writing.done()  # the pty is full: the write waits, it does not spin
        received = bytearray()
        while len(received) < len(payload):
            received += await peer.read_exactly(min(8192, len(payload) - len(received)))
            await asyncio.sleep(0)  # a slow reader: small bites, the writer runs in between
        await writing
        await port.drain()
        assert bytes(received) == payload


async def test_peer_hangup_raises_port_closed(peer: PtyPeer) -> None:
    port = await open_port(peer.path)
    try:
        peer.release_slave()
        reading = asyncio.create_task(port.read())
        await asyncio.sleep(0.02)
        assert not reading.done()  # silence is not a hang-up
        peer.close()
        async with asyncio.timeout(5):
            with pytest.raises(PortClosed):
                await reading
            with pytest.raises(PortClosed):
                await port.write(b"AT\r")
    finally:
        await port.close()


async def test_close_wakes_a_pending_read(peer: PtyPeer) -> None:
    port = await open_port(peer.path)
    reading = asyncio.create_task(port.read())
    await asyncio.sleep(0.02)
    assert not reading.done()
    await port.close()
    await port.close()  # twice is fine
    with pytest.raises(PortClosed):
        await reading
    with pytest.raises(PortClosed):
        await port.read()


async def test_open_failure_is_a_port_error(tmp_path: object) -> None:
    with pytest.raises(PortError, match="cannot open"):
        await open_port("/dev/does-not-exist-1521")
    with pytest.raises(PortError):
        await open_port("socket://127.0.0.1:1")  # nothing listens on port 1


def test_usb_id_from_the_port_list() -> None:
    fake = SimpleNamespace(device="/dev/ttyACM7", vid=0x0572, pid=0x1340)
    assert usb_id_for("/dev/ttyACM7", [fake]) == (0x0572, 0x1340)
    assert usb_id_for("/dev/ttyACM8", [fake]) is None
    assert usb_id_for("/dev/pts/3", [fake]) is None
    assert usb_id_for("socket://host:1", [fake]) is None
    no_usb = SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None)
    assert usb_id_for("/dev/ttyS0", [no_usb]) is None


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm for a /dev symlink")
def test_usb_id_follows_by_id_links() -> None:
    target = f"/dev/shm/ttyACM-test-{os.getpid()}"
    link = f"/dev/shm/usb-USR-test-{os.getpid()}"
    with open(target, "w"):
        pass
    try:
        os.symlink(target, link)
        fake = SimpleNamespace(device=target, vid=0x0BAF, pid=0x0303)
        assert usb_id_for(link, [fake]) == (0x0BAF, 0x0303)
    finally:
        for path in (link, target):
            if os.path.lexists(path):
                os.unlink(path)


def test_visa_names() -> None:
    assert is_visa_resource("ASRL/dev/ttyS0::INSTR")
    assert is_visa_resource("asrl3::instr")
    assert is_visa_resource("TCPIP::10.0.0.5::4001::SOCKET")
    assert is_visa_resource("TCPIP0::modems.local::4001::SOCKET")
    assert not is_visa_resource("/dev/ttyACM0")
    assert not is_visa_resource("socket://10.0.0.5:4001")


class Server:
    """A terminal server stand-in: one TCP connection, bytes both ways."""

    def __init__(self) -> None:
        self.connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set_result((reader, writer))

    async def stop(self) -> None:
        if self.connected.done():
            writer = self.connected.result()[1]
            writer.close()
            await writer.wait_closed()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def exchange_over_tcp(url_for: str) -> None:
    server = Server()
    port_number = await server.start()
    try:
        port = await open_port(url_for.format(port=port_number))
        try:
            assert isinstance(port, ThreadPort)
            reader, writer = await asyncio.wait_for(server.connected, 5)
            await port.write(EVERY_BYTE)
            assert await asyncio.wait_for(reader.readexactly(256), 5) == EVERY_BYTE
            writer.write(EVERY_BYTE[::-1])
            await writer.drain()
            assert await asyncio.wait_for(read_exactly(port, 256), 5) == EVERY_BYTE[::-1]
            assert await port.pulse_dtr(0.01) is False
            writer.close()
            await writer.wait_closed()
            async with asyncio.timeout(5):
                with pytest.raises(PortClosed):
                    while True:
                        await port.read()
        finally:
            await port.close()
    finally:
        await server.stop()


async def test_socket_url() -> None:
    await exchange_over_tcp("socket://127.0.0.1:{port}")


async def test_visa_tcpip_socket() -> None:
    await exchange_over_tcp("TCPIP::127.0.0.1::{port}::SOCKET")


async def test_visa_serial_on_a_pty(peer: PtyPeer) -> None:
    port = await open_port(f"ASRL{peer.path}::INSTR", baudrate=115200)
    try:
        peer.release_slave()
        assert isinstance(port, ThreadPort)
        await port.write(EVERY_BYTE)
        assert await asyncio.wait_for(peer.read_exactly(256), 5) == EVERY_BYTE
        peer.write(b"\r\nOK\r\n" + EVERY_BYTE)
        got = await asyncio.wait_for(read_exactly(port, 262), 5)
        assert got == b"\r\nOK\r\n" + EVERY_BYTE
        assert await port.pulse_dtr(0.01) is False
        peer.close()
        async with asyncio.timeout(5):
            with pytest.raises(PortClosed):
                while True:
                    await port.read()
    finally:
        await port.close()


async def test_thread_port_large_write_and_close_while_reading() -> None:
    server = Server()
    port_number = await server.start()
    try:
        port = await open_port(f"socket://127.0.0.1:{port_number}")
        reader, _ = await asyncio.wait_for(server.connected, 5)
        payload = random.Random(5).randbytes(512 * 1024)
        writing = asyncio.create_task(port.write(payload))
        received = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        await writing
        assert received == payload
        pending = asyncio.create_task(port.read())
        await asyncio.sleep(0.02)
        assert not pending.done()
        await port.close()
        with pytest.raises(PortClosed):
            await pending
    finally:
        await server.stop()
