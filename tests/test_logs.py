"""Logging: card numbers never reach a log line in clear."""

from loguru import logger

from daemon1521.logs import mask_cards, setup_logging


def test_mask_cards_keeps_first_six_and_last_four():
    assert mask_cards("card 6221061234567890 ok") == "card 622106******7890 ok"
    # longer digit runs (a 26-digit barcode) and shorter ones are not cards
    assert mask_cards("12345678901234567890123456") == "12345678901234567890123456"
    assert mask_cards("bill 7748317800142") == "bill 7748317800142"


def test_log_lines_are_masked(capsys):
    setup_logging("DEBUG")
    try:
        logger.info("caller typed {}", "6037991234567893")
        err = capsys.readouterr().err
        assert "603799******7893" in err
        assert "6037991234567893" not in err
    finally:
        setup_logging("INFO")
