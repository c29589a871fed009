"""The spool: journal entries the database could not take yet, kept on disk.

An append-only file of JSON lines beside the database (``daemon1521.db.spool``),
written only while the database refuses writes (locked, disk full, gone), so
that a restart, or a kill, loses nothing: the next start replays it and
removes it once every entry is in the database. It holds what the database
holds (masked cards, no PIN) and is readable by the daemon's user only.
A line cut short by a crash mid-write is skipped, with a warning.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec
from loguru import logger

from daemon1521.billing.journal import Entry

SUFFIX = ".spool"
MODE = 0o600
MAX_SPOOL_BYTES = 256 << 20
"""A spool bigger than this is not read whole: something else wrote it."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Entry)


def spool_path(database: str | Path) -> Path:
    return Path(f"{database}{SUFFIX}")


class Spool:
    """The spool file of one database."""

    def __init__(self, database: str | Path) -> None:
        self.path = spool_path(database)

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, entries: Iterable[Entry], *, make_directory: bool = False) -> None:
        """Add entries, synced to disk; OSError when that cannot be done (disk
        full, directory gone). ``make_directory`` recreates a deleted directory
        (owner only), for the last write at shutdown."""
        data = b"".join(_encoder.encode(entry) + b"\n" for entry in entries)
        if not data:
            return
        if make_directory:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[Entry]:
        """Every entry in the spool, in order ([] without a spool)."""
        try:
            with open(self.path, "rb") as file:
                data = file.read(MAX_SPOOL_BYTES + 1)
        except FileNotFoundError:
            return []
        if len(data) > MAX_SPOOL_BYTES:
            raise OSError(f"{self.path} is larger than {MAX_SPOOL_BYTES} bytes; not replayed")
        entries: list[Entry] = []
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append(_decoder.decode(line))
            except msgspec.DecodeError as exc:
                logger.warning("{}: line {} skipped: {}", self.path, number, exc)
        return entries

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
