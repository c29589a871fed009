"""Fault: a bill ID in full in the DEBUG log (issue 9, item 9).

A whole call is run with every module at DEBUG; no line of the log may hold
the bill ID the caller typed, the caller's number, or the read-back spelling
its digits. The unit keeps the store's directory to the daemon's user.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.audio.say_fa import say_digits
from daemon1521.billing.ids import bill_id_groups
from daemon1521.daemon.privacy import mask_bill_id
from daemon1521.logs import mask_tail
from daemon1521.testbed.site import EmulatedSite, sample_bills
from tests.test_systemd_unit import unit_settings

CALLER = "09121234567"
EMULATION = ("daemon1521.emulator", "daemon1521.testbed")


@pytest.fixture
def debug_log() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="DEBUG",
        # the emulated exchange and phones are the outside world, not the daemon
        filter=lambda record: not record["name"].startswith(EMULATION),
    )
    yield lines
    logger.remove(sink)


async def test_a_whole_call_at_debug_leaves_no_bill_id_or_number_in_the_log(
    tmp_path: Path, debug_log: list[str]
) -> None:
    bill = sample_bills()[0]
    async with EmulatedSite(
        tmp_path / "store.db",
        prompts=PromptLibrary(PromptCatalog("fa")),
        bills=[bill],
    ) as site:
        caller = site.caller(CALLER)
        await caller.dial()
        await caller.answer("ask_bill_id", bill.bill_id + "#")
        await caller.answer("bill_entered_confirm", "1")
        await caller.answer("offer_remember_bill", "1")
        await caller.answer("offer_payment", "2")
        assert await caller.until_line_hangs_up()
        await site.wait_idle(calls=1)
        record = site.last_call()
        assert record.amount_announced == bill.amount_rials  # the caller heard the debt
    log = "\n".join(debug_log)
    assert "bill ID" in log  # the dialog did log the entry, masked
    spelled = " ".join(say_digits(bill.bill_id, bill_id_groups(len(bill.bill_id))))
    digits_only = re.sub(r"\D", "", log)
    for secret in (bill.bill_id, bill.bill_id.lstrip("0"), CALLER, spelled):
        assert secret not in log, secret
    assert bill.bill_id[:9] not in digits_only
    assert mask_tail(bill.bill_id) in log


def test_masks_keep_at_most_the_last_four_digits() -> None:
    assert mask_tail("0100000012321") == "*********2321"
    assert mask_tail("123456") == "****56"
    assert mask_tail("12") == "**"
    assert mask_bill_id("0100000012321") == mask_tail("0100000012321")


def test_the_unit_keeps_the_store_to_the_daemon_user() -> None:
    settings = unit_settings()
    assert settings["Service.StateDirectoryMode"] == ["0700"]
    assert settings["Service.UMask"] == ["0077"]
