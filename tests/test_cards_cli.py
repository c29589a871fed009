"""``daemon1521 cards list`` / ``forget``: masked numbers only."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from daemon1521.billing.cards import luhn_ok, mask_card
from daemon1521.billing.store import Store
from daemon1521.billing.vault import KEY_FILE, open_vault
from daemon1521.cli import main

CALLER = "02133334444"


def with_luhn(prefix15: str) -> str:
    return next(prefix15 + d for d in "0123456789" if luhn_ok(prefix15 + d))


CARD = with_luhn("622106123456789")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_and_forget(tmp_path: Path):
    db = tmp_path / "d.db"
    vault = open_vault(tmp_path / KEY_FILE, [])
    with Store.open(db) as store:
        store.remember_card(CALLER, vault.seal(CARD, CALLER), mask_card(CARD))
    listed = run("cards", "list", "--store", str(db))
    assert listed.exit_code == 0
    assert mask_card(CARD) in listed.output and CALLER in listed.output
    assert CARD not in listed.output and CARD[6:12] not in listed.output
    as_json = run("cards", "list", "--store", str(db), "--json")
    assert f'"card": "{mask_card(CARD)}"' in as_json.output and CARD not in as_json.output
    forgot = run("cards", "forget", CALLER, "--store", str(db))
    assert forgot.exit_code == 0
    again = run("cards", "forget", CALLER, "--store", str(db))
    assert again.exit_code == 1 and "no card" in again.output
    assert "no remembered cards" in run("cards", "list", "--store", str(db)).output


def test_forget_refuses_a_non_number(tmp_path: Path):
    result = run("cards", "forget", "P", "--store", str(tmp_path / "d.db"))
    assert result.exit_code == 2 and "caller number" in result.output
