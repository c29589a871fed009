"""``daemon1521 demo``: four scripted calls on an emulated line, two paying at the
emulated bank, printed as heard, with the card masked and the PIN as *."""

from __future__ import annotations

from click.testing import CliRunner

from daemon1521.audio.prompts import PromptCatalog
from daemon1521.billing.cards import mask_card
from daemon1521.cli import main
from daemon1521.commands.demo import DEMO_CARD, DEMO_PIN
from daemon1521.emulator.bank_voice import bank_catalog
from daemon1521.testbed.site import DEMO_CALLER, sample_bills


def test_demo_prints_four_calls_two_paying_and_exits_cleanly() -> None:
    result = CliRunner().invoke(main, ["demo", "--speed", "max", "--personality", "usr-5637"])
    assert result.exit_code == 0, result.output
    out = result.output
    catalog, bank = PromptCatalog("fa"), bank_catalog()
    _, _, rest = out.partition("Call 1:")
    first, _, rest = rest.partition("Call 2:")
    second, _, rest = rest.partition("Call 3:")
    third, _, fourth = rest.partition("Call 4:")
    assert "as fast as the host allows" in out and fourth
    assert catalog.text("welcome") in first and catalog.text("welcome") in second
    assert catalog.text("offer_remember_bill") in first
    assert catalog.text("remembered_bill_is") in second
    assert catalog.text("remembered_bill_is") not in first
    assert f"pressed {sample_bills()[0].bill_id}#" in first
    assert out.count("record: outcome not_paid, last state goodbye") == 2
    # the third call types the card at the bank and has it remembered
    assert bank.text("bank_ask_card") in third and catalog.text("card_saved") in third
    assert f"pressed {mask_card(DEMO_CARD)}" in third
    # the fourth uses the remembered card: 1521 reads it back, the bank asks the PIN only
    assert catalog.text("remembered_card_is") in fourth
    assert bank.text("bank_ask_card") not in fourth and bank.text("bank_ask_pin") in fourth
    assert out.count(f"pressed {'*' * len(DEMO_PIN)}#") == 2
    assert out.count("record: outcome paid, last state goodbye") == 2
    assert out.count(f"card {mask_card(DEMO_CARD)}, tracking 1") == 2
    assert f"card {mask_card(DEMO_CARD)}" in out.rsplit("Remembered for", 1)[1]
    # secrets: the PIN nowhere, the card only masked
    assert DEMO_PIN not in out and DEMO_CARD not in out
    assert f"Remembered for {DEMO_CALLER}: bill {sample_bills()[0].bill_id}" in out


def test_demo_speed_is_a_number_or_max() -> None:
    result = CliRunner().invoke(main, ["demo", "--speed", "0"])
    assert result.exit_code == 2 and "not between 1 and 50" in result.output
    result = CliRunner().invoke(main, ["demo", "--speed", "fast"])
    assert result.exit_code == 2 and "neither a number nor 'max'" in result.output
