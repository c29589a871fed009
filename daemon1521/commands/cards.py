"""``daemon1521 cards``: the card numbers callers asked 1521 to remember, masked.

Only the masked form (first 6, last 4 digits) is ever printed; the numbers
themselves stay sealed in the database and no key is needed to list them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from daemon1521.billing.store import DEFAULT_STORE_PATH, STORE_ENV, Store, StoreUnavailable

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_FAILED = 2

_STORE = click.option(
    "--store",
    "store_path",
    envvar=STORE_ENV,
    default=DEFAULT_STORE_PATH,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Database file (environment: {STORE_ENV}).",
)


@click.group()
def cards() -> None:
    """Remembered cards: list them (masked), forget one."""


@cards.command("list")
@_STORE
@click.option("--json", "as_json", is_flag=True, help="One JSON object per card.")
def list_cmd(store_path: Path, as_json: bool) -> None:
    """Every remembered card: the caller's number, the card masked, when it was saved."""
    try:
        with Store.open(store_path) as store:
            rows = store.remembered_card_list()
    except StoreUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    for caller, card in rows:
        saved = card.updated_at.isoformat(timespec="seconds")
        if as_json:
            record = {"caller": caller, "card": card.masked, "saved_at": saved}
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(f"{caller}  {card.masked}  {saved}")
    if not rows and not as_json:
        click.echo("no remembered cards")


@cards.command("forget")
@click.argument("number")
@_STORE
def forget_cmd(number: str, store_path: Path) -> None:
    """Forget the card remembered for the caller NUMBER (their telephone number)."""
    try:
        with Store.open(store_path) as store:
            forgotten = store.forget_card(number)
    except ValueError as exc:
        click.echo(f"error: {number!r}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except StoreUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if not forgotten:
        click.echo(f"no card is remembered for {number}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    click.echo(f"forgot the card remembered for {number}")
