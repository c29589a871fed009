"""The card vault and the book of remembered cards: keys, tampering, and what is stored."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon1521.billing.async_store import AsyncStore
from daemon1521.billing.cardbook import CardBook
from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.billing.store import Store
from daemon1521.billing.vault import (
    KEY_FILE,
    CardUnreadable,
    Vault,
    VaultUnavailable,
    key_path,
    open_vault,
)

CALLER = "02133334444"
OTHER = "02155556666"


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")
CARD2 = with_luhn("502229987654321")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "d.db")
    yield s
    s.close()


def test_key_created_on_first_start_owner_only(tmp_path: Path):
    path = key_path(tmp_path)
    assert path.name == KEY_FILE
    vault = Vault.open(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600
    # the same key is read back on the next start
    again = Vault.open(path)
    assert again.open_card(vault.seal(CARD, CALLER), CALLER) == CARD


def test_sealed_blob_holds_no_card_digits(tmp_path: Path):
    vault = Vault.open(tmp_path / KEY_FILE)
    blob = vault.seal(CARD, CALLER)
    assert CARD.encode() not in blob
    assert CARD[6:12].encode() not in blob
    assert CARD not in repr(vault)
    # a fresh nonce each time
    assert vault.seal(CARD, CALLER) != blob


def test_caller_number_is_bound_in(tmp_path: Path):
    vault = Vault.open(tmp_path / KEY_FILE)
    blob = vault.seal(CARD, CALLER)
    with pytest.raises(CardUnreadable, match="another number") as info:
        vault.open_card(blob, OTHER)
    assert CARD not in str(info.value)


@pytest.mark.parametrize("where", [0, 3, 10, 20, -1])
def test_corrupted_ciphertext_is_refused(tmp_path: Path, where: int):
    vault = Vault.open(tmp_path / KEY_FILE)
    blob = bytearray(vault.seal(CARD, CALLER))
    blob[where] ^= 0x01
    with pytest.raises(CardUnreadable) as info:
        vault.open_card(bytes(blob), CALLER)
    assert CARD not in str(info.value)


def test_truncated_ciphertext_is_refused(tmp_path: Path):
    vault = Vault.open(tmp_path / KEY_FILE)
    blob = vault.seal(CARD, CALLER)
    for cut in (0, 5, 17, len(blob) - 1):
        with pytest.raises(CardUnreadable):
            vault.open_card(blob[:cut], CALLER)


def test_wrong_key_is_told_apart(tmp_path: Path):
    blob = Vault.open(tmp_path / "a.key").seal(CARD, CALLER)
    other = Vault.open(tmp_path / "b.key")
    with pytest.raises(CardUnreadable, match="another vault key"):
        other.open_card(blob, CALLER)
    with pytest.raises(VaultUnavailable) as info:
        other.check([blob])
    assert str(tmp_path / "b.key") in str(info.value)


def test_missing_key_with_stored_cards_is_not_replaced(tmp_path: Path):
    path = tmp_path / KEY_FILE
    blob = Vault.open(path).seal(CARD, CALLER)
    path.unlink()
    with pytest.raises(VaultUnavailable) as info:
        open_vault(path, [blob])
    assert str(path) in str(info.value) and "missing" in str(info.value)
    assert not path.exists()  # no new key that would orphan the cards


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"not base64 !!\n", "not base64"), (b"c2hvcnQ=\n", "5 bytes"), (b"", "0 bytes")],
)
def test_bad_key_files(tmp_path: Path, content: bytes, problem: str):
    path = tmp_path / KEY_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(VaultUnavailable, match=problem) as info:
        Vault.open(path)
    assert str(path) in str(info.value)


def test_key_readable_by_others_is_refused(tmp_path: Path):
    path = tmp_path / KEY_FILE
    Vault.open(path)
    path.chmod(0o644)
    with pytest.raises(VaultUnavailable, match="chmod 600"):
        Vault.open(path)


@settings(max_examples=50, deadline=None)
@given(st.text("0123456789", min_size=15, max_size=15), st.text("0123456789", min_size=4))
def test_seal_open_round_trip(prefix: str, caller: str):
    vault = Vault(os.urandom(32))
    card = with_luhn(prefix)
    assert vault.open_card(vault.seal(card, caller), caller) == card


# ------------------------------------------------------------------ the book
#
# The book reads and writes through the daemon's AsyncStore; ``store`` (a
# plain connection to the same file) checks and tampers with what is stored.


@pytest.fixture
async def live(store: Store, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "d.db") as opened:
        yield opened


async def test_book_remembers_and_opens(tmp_path: Path, store: Store, live: AsyncStore):
    book = await CardBook.open(live, tmp_path / KEY_FILE)
    assert book.on and await book.card_for(CALLER) is None
    assert book.remember(CALLER, CARD)
    known = await book.card_for(CALLER)
    assert known is not None and known.number == CARD and known.masked == mask_card(CARD)
    assert CARD not in repr(known)
    assert await book.card_for(OTHER) is None and await book.card_for(None) is None
    assert await live.flush(10)
    row = store.remembered_card(CALLER)
    assert row is not None and CARD.encode() not in row.ciphertext
    book.forget(CALLER)
    assert await book.card_for(CALLER) is None  # at once, before it is written
    assert await live.flush(10)
    assert store.remembered_card(CALLER) is None


async def test_book_with_wrong_key_is_off_and_keeps_the_cards(
    tmp_path: Path, store: Store, live: AsyncStore
):
    path = tmp_path / KEY_FILE
    (await CardBook.open(live, path)).remember(CALLER, CARD)
    assert await live.flush(10)
    before = store.remembered_card(CALLER)
    path.unlink()
    Vault.open(path)  # an operator's mistake: a new, different key
    book = await CardBook.open(live, path)
    assert not book.on
    assert book.problem is not None and str(path) in book.problem
    assert await book.card_for(CALLER) is None
    assert not book.remember(CALLER, CARD2)  # nothing overwritten
    assert not book.remember(OTHER, CARD2)  # nor added under another key
    assert await live.flush(10)
    assert store.remembered_card(CALLER) == before
    assert store.remembered_card(OTHER) is None


async def test_book_with_missing_key_is_off_and_keeps_the_cards(
    tmp_path: Path, store: Store, live: AsyncStore
):
    path = tmp_path / KEY_FILE
    (await CardBook.open(live, path)).remember(CALLER, CARD)
    assert await live.flush(10)
    key = path.read_bytes()
    path.unlink()
    book = await CardBook.open(live, path)
    assert not book.on and await book.card_for(CALLER) is None
    assert not path.exists()
    assert store.remembered_card(CALLER) is not None
    # the right key restored: the card is back
    path.write_bytes(key)
    path.chmod(0o600)
    restored = await (await CardBook.open(live, path)).card_for(CALLER)
    assert restored is not None and restored.number == CARD


async def test_book_skips_a_corrupted_card_without_deleting_it(
    tmp_path: Path, store: Store, live: AsyncStore
):
    book = await CardBook.open(live, tmp_path / KEY_FILE)
    book.remember(CALLER, CARD)
    assert await live.flush(10)
    row = store.remembered_card(CALLER)
    assert row is not None
    damaged = bytearray(row.ciphertext)
    damaged[-3] ^= 0xFF
    store.remember_card(CALLER, bytes(damaged), row.masked)
    assert await book.card_for(CALLER) is None
    assert store.remembered_card(CALLER) is not None


async def test_book_offers_no_card_when_the_store_cannot_be_read(
    tmp_path: Path, store: Store, live: AsyncStore
):
    book = await CardBook.open(live, tmp_path / KEY_FILE)
    book.remember(CALLER, CARD)
    assert await live.flush(10)
    await live.close()  # reads now fail: the caller types a card instead
    assert await book.card_for(CALLER) is None
