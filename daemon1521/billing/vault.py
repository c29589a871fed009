"""The card vault: remembered card numbers encrypted at rest.

AES-256-GCM from ``cryptography`` with the caller's number bound in as
associated data, so a ciphertext copied to another caller's row does not
decrypt. The key lives in its own file in the state directory (never in the
database), created on first start readable by the daemon's user only.

A key that is missing (while cards are stored), unreadable, too open or not
the one the cards were sealed with makes the vault *unavailable*: the error
names the file, remembering and using cards stop, and the stored cards are
left exactly as they are, so that restoring the right key brings them back.

Each blob is ``version (1) | key id (4) | nonce (12) | ciphertext+tag``; the
key id (a hash prefix of the key) tells a wrong key from a damaged blob.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon1521.billing.cards import CARD_LENGTH, clean_card_number

KEY_FILE = "card-vault.key"
"""The key file's name in the state directory (beside the database)."""
KEY_BYTES = 32
VERSION = 1
KEY_ID_BYTES = 4
NONCE_BYTES = 12
_HEADER = 1 + KEY_ID_BYTES + NONCE_BYTES


class VaultError(Exception):
    """The vault cannot be used, or a blob cannot be opened; never holds a card number."""


class VaultUnavailable(VaultError):
    """No usable key: remembering and using cards is off until an operator fixes ``path``."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; remembered cards cannot be used or saved")


class CardUnreadable(VaultError):
    """One stored blob does not open (damaged, or sealed for another caller)."""


def key_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / KEY_FILE


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"daemon1521 card vault\x00" + key).digest()[:KEY_ID_BYTES]


class Vault:
    """Seals and opens card numbers with one key; see the module docstring."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a vault key has {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.key_id = _key_id(key)
        self.path = path

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r})"

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Vault:
        """The vault with the key at ``path``; a new key is written there when
        the file does not exist and ``create`` is true (first start)."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise VaultUnavailable(path, "the card vault key file is missing")
            return cls(_create_key(path), path)
        return cls(_read_key(path), path)

    def seal(self, number: str, caller: str) -> bytes:
        """Encrypt a 16-digit card number for ``caller``."""
        digits = clean_card_number(number)
        if digits is None or len(digits) != CARD_LENGTH:
            raise ValueError("only a 16-digit card number can be sealed")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, digits.encode("ascii"), _aad(caller))
        return bytes([VERSION]) + self.key_id + nonce + sealed

    def opens(self, blob: bytes) -> bool:
        """True if ``blob`` was sealed with this vault's key."""
        return (
            len(blob) > _HEADER
            and blob[0] == VERSION
            and blob[1 : _HEADER - NONCE_BYTES] == (self.key_id)
        )

    def open_card(self, blob: bytes, caller: str) -> str:
        """The card number sealed in ``blob`` for ``caller``; :class:`CardUnreadable`
        when it was sealed with another key, for another caller, or is damaged."""
        if len(blob) <= _HEADER or blob[0] != VERSION:
            raise CardUnreadable("the stored card is damaged (unknown format)")
        if not self.opens(blob):
            raise CardUnreadable("the stored card was sealed with another vault key")
        nonce = blob[1 + KEY_ID_BYTES : _HEADER]
        try:
            plain = self._aead.decrypt(nonce, blob[_HEADER:], _aad(caller))
        except InvalidTag:
            raise CardUnreadable(
                "the stored card does not open: damaged, or stored for another number"
            ) from None
        number = plain.decode("ascii", "replace")
        if len(number) != CARD_LENGTH or not number.isdigit():
            raise CardUnreadable("the stored card is damaged (not a card number)")
        return number

    def check(self, blobs: list[bytes]) -> None:
        """Refuse a key that opens none of the stored cards (the wrong key file)."""
        if blobs and not any(self.opens(blob) for blob in blobs):
            assert self.path is not None
            raise VaultUnavailable(
                self.path,
                f"this key is not the one the {len(blobs)} remembered card(s) were saved with",
            )


def open_vault(path: str | Path, stored: list[bytes]) -> Vault:
    """The daemon's vault at start: creates the key only while no card is
    stored (a new key would orphan them), and checks it fits the cards."""
    path = Path(path)
    if not path.exists() and stored:
        raise VaultUnavailable(
            path, f"the card vault key file is missing while {len(stored)} card(s) are stored"
        )
    vault = Vault.open(path, create=True)
    vault.check(stored)
    return vault


def _aad(caller: str) -> bytes:
    if not caller or not any(ch.isdigit() for ch in caller):
        raise ValueError("a card is sealed for a caller number")
    return b"daemon1521 card for " + caller.strip().encode("utf-8")


def _create_key(path: Path) -> bytes:
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)  # another process created it first
    except OSError as exc:
        raise VaultUnavailable(path, f"cannot create the key file: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def _read_key(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise VaultUnavailable(path, "the key file is not a regular file")
        if info.st_mode & 0o077:
            raise VaultUnavailable(
                path,
                f"the key file is readable by others (mode {info.st_mode & 0o777:o}); chmod 600 it",
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise VaultUnavailable(path, f"cannot read the key file: {exc.strerror}") from None
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultUnavailable(path, "the key file does not hold a key (not base64)") from None
    if len(key) != KEY_BYTES:
        raise VaultUnavailable(path, f"the key file holds {len(key)} bytes, not {KEY_BYTES}")
    return key
